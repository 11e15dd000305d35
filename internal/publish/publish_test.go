package publish

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
