package publish

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPublishNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	os.WriteFile(filepath.Join(dir, "b"), []byte("old"), 0o600)
	os.WriteFile(filepath.Join(dir, "b-2"), []byte("old 2"), 0o600)
	if got := FreeName(root, ".", "b"); got != "b-3" {
		t.Fatalf("FreeName = %q", got)
	}
	f, tmp, err := CreateTemp(root, ".", "b")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Fatalf("temporary file mode %v", fi.Mode().Perm())
	}
	f.WriteString("new")
	f.Close()
	name, err := Publish(root, ".", tmp, "b")
	if err != nil || name != "b-3" {
		t.Fatalf("Publish = %q, %v", name, err)
	}
	if err := SyncDir(root, "."); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"b", "b-2", "b-3"}) {
		t.Fatalf("directory holds %q", names)
	}
	for name, want := range map[string]string{"b": "old", "b-2": "old 2", "b-3": "new"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s holds %q", name, got)
		}
	}
}

// RemoveStale takes only what a dead writer left: an unlocked ".part"
// holding nothing or the start of an archive, and ".new" files an hour
// old. A live writer's file (locked), someone else's file and young
// ".new" files stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	live, liveName, err := CreateTemp(root, ".", "qubes-backup-live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	live.WriteString("backup-header\x00...")
	write := func(name, content string, age time.Duration) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		old := time.Now().Add(-age)
		os.Chtimes(p, old, old)
	}
	write(".qubes-backup-1.ABCDEFGHIJ.part", "backup-header\x00\x00\x00rest", 0)
	write(".qubes-backup-2.ABCDEFGHI2.part", "", 0)
	write(".qubes-backup-3.ABCDEFGHI3.part", "back", 0) // killed inside the first header
	write(".download.ABCDEFGHI4.part", "someone else's data", 0)
	write(".qubes-backup-5.ABCDEFGHI5.new", "", 2*time.Hour)
	write(".qubes-backup-6.ABCDEFGHI6.new", "", time.Minute)
	write("qubes-backup-7", "backup-header\x00", 0)
	removed, err := RemoveStale(root, ".")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{".qubes-backup-1.ABCDEFGHIJ.part", ".qubes-backup-2.ABCDEFGHI2.part", ".qubes-backup-3.ABCDEFGHI3.part", ".qubes-backup-5.ABCDEFGHI5.new"}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	wantLeft := []string{".download.ABCDEFGHI4.part", liveName, ".qubes-backup-6.ABCDEFGHI6.new", "qubes-backup-7"}
	slices.Sort(wantLeft)
	if !slices.Equal(left, wantLeft) {
		t.Errorf("left %q, want %q", left, wantLeft)
	}
}
