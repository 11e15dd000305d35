package qrexec_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pedos.dev/backup/internal/qrexec"
)

// Browsing lists a VM's directory: directories first, then files with
// their sizes, hidden entries and links out of the VM left out.
func TestBrowse(t *testing.T) {
	tr, fsdir := newHost(t)
	home := filepath.Join(fsdir, "home/user")
	for _, d := range []string{"b-dir", "a-dir", ".hidden-dir"} {
		if err := os.Mkdir(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, size := range map[string]int{"z-file": 10, "a-file": 3, ".hidden": 1} {
		if err := os.WriteFile(filepath.Join(home, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(home, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a-dir", filepath.Join(home, "inside")); err != nil {
		t.Fatal(err)
	}
	entries, err := qrexec.Browse(context.Background(), tr, "work", "/home/user")
	if err != nil {
		t.Fatal(err)
	}
	want := []qrexec.BrowseEntry{
		{Name: "a-dir", Dir: true}, {Name: "b-dir", Dir: true}, {Name: "backups", Dir: true}, {Name: "inside", Dir: true},
		{Name: "a-file", Size: 3}, {Name: "z-file", Size: 10},
	}
	if !slices.Equal(entries, want) {
		t.Errorf("entries\n%v\nwant\n%v", entries, want)
	}
	// The top of the VM's filesystem, and a way out of it.
	if entries, err := qrexec.Browse(context.Background(), tr, "work", "/"); err != nil || !slices.Equal(entries, []qrexec.BrowseEntry{{Name: "home", Dir: true}}) {
		t.Errorf("/: %v, %v", entries, err)
	}
	if _, err := qrexec.Browse(context.Background(), tr, "work", "/home/user/escape"); err == nil {
		t.Error("browsing a link out of the VM's filesystem worked")
	}
	if _, err := qrexec.Browse(context.Background(), tr, "work", "/home/user/../../../etc"); err == nil {
		t.Error("browsing out of the VM's filesystem with .. worked")
	}
	if _, err := qrexec.Browse(context.Background(), tr, "work", "/nowhere"); err == nil || !strings.Contains(err.Error(), "browsing /nowhere in VM work") {
		t.Errorf("a missing directory: %v", err)
	}
	if _, err := qrexec.Browse(context.Background(), tr, "off", "/"); err == nil {
		t.Error("browsing a VM that is not running worked")
	}
}
