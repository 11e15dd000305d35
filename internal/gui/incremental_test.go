package gui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
)

// The Backup wizard's incremental choice: the first backup to a directory
// is full and starts a chain, the next (after a change) is an increment,
// as the summary and the finish page say; the choice is kept in the
// default profile. The Restore wizard then
// verifies and restores the increment with its chain into a fresh host:
// the changed volume arrives byte for byte.
func TestIncrementalThroughWizards(t *testing.T) {
	a := newApp(t)
	root, h := demoHost(t)
	dir := t.TempDir()
	// The first run saves the choice in the default profile (the wizard's
	// default), so the second opens with it made.
	backupOnce := func(wantKind, wantFinish string, saved bool) {
		t.Helper()
		hs := openBackupWizard(t, a, root)
		b := hs.b
		if b.incremental.Checked != saved {
			t.Fatalf("the incremental choice opens as %v, want %v (from the default profile)", b.incremental.Checked, saved)
		}
		test.Tap(b.removeAllBtn)
		test.DoubleTap(listItem(t, b.availList, "vault"))
		if !saved {
			test.Tap(b.incremental)
		}
		hs.next()
		hs.fillDestination(dir, "pass")
		hs.next()
		if got := texts(b.summary); !strings.Contains(got, wantKind) {
			t.Fatalf("summary lacks %q:\n%s", wantKind, got)
		}
		hs.next()
		if err := wait(t, hs.runDone, "the backup"); err != nil {
			t.Fatal(err)
		}
		hs.next()
		if !strings.Contains(b.finishText.Text, wantFinish) {
			t.Fatalf("finish page lacks %q:\n%s", wantFinish, b.finishText.Text)
		}
		b.wiz.Cancel()
	}
	backupOnce("full backup, starting a chain of increments", "The backup was written to", false)
	vols, err := h.Volumes("vault")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(vols[0].Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("changed after the full backup"), 3<<20+17)
	f.Close()
	backupOnce("increment 1 of the chain of", "It is increment 1 of its chain", true)
	// The finish page also says how the changes were found (here, on a
	// filesystem without reflinks, by stamps or hashing).
	backupOnce("increment 2 of the chain of", "Changes found: ", true)

	names, _ := filepath.Glob(filepath.Join(dir, "qubes-backup-*"))
	slices.Sort(names)
	if len(names) != 3 {
		t.Fatalf("the directory holds %q", names)
	}
	inc1 := names[1]

	for _, verify := range []bool{true, false} {
		droot, dst := freshHost(t, "user")
		d := startRestoreWizard(t, a, droot)
		d.source(inc1, "pass")
		if verify {
			test.Tap(d.rw.verifyOnly)
		}
		if err := d.open(); err != nil {
			t.Fatal(err)
		}
		if got := d.rw.found.Text; !strings.Contains(got, "It is an increment of backup") {
			t.Errorf("the VM page says %q", got)
		}
		d.nextAndSettle("the summary")
		d.toResult()
		if verify {
			if got := d.rw.verdict.Text; got != "The backup is complete and intact." {
				t.Fatalf("verdict %q\n%s", got, d.rw.results.Text)
			}
			continue
		}
		if got := d.rw.verdict.Text; !strings.Contains(got, "The restore is done") {
			t.Fatalf("verdict %q\n%s", got, d.rw.results.Text)
		}
		got, err := dst.Volumes("vault")
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vols {
			if v.Path != "" {
				sameFile(t, v.Path, got[i].Path)
			}
		}
	}
}
