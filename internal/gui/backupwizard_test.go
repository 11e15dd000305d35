package gui

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/profile"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/restore"
)

// backupHarness drives a Backup wizard as a user does, and tells the test
// when the wizard's pages and the engine calls behind them have settled.
type backupHarness struct {
	t       *testing.T
	b       *backupWizard
	win     fyne.Window
	settled chan *Page // the page whose Enter returned
	runDone chan error
	checked chan struct{}
}

// openBackupWizard opens the wizard on the host in root, with cheap keys,
// and waits until its lists are filled.
func openBackupWizard(t *testing.T, a fyne.App, root string) *backupHarness {
	t.Helper()
	hs := &backupHarness{t: t, b: newBackupWizard(root),
		settled: make(chan *Page, 16), runDone: make(chan error, 1), checked: make(chan struct{}, 1)}
	b := hs.b
	b.base.ScryptLogN = 10 // the default costs about a second per chunk
	b.testHookRunDone = func(err error) { hs.runDone <- err }
	b.testHookVerified = func() { hs.checked <- struct{}{} }
	b.start(func(w *Wizard) {
		w.testHookSettled = func() { hs.settled <- w.Current() }
	})
	hs.win = ShowWizard(a, BackupTitle, b.wiz)
	b.win = hs.win
	hs.win.Resize(fyne.NewSize(720, 560))
	hs.waitSettled(b.selectPage)
	return hs
}

// waitSettled waits until page p's Enter has returned and p shows its
// result.
func (hs *backupHarness) waitSettled(p *Page) {
	hs.t.Helper()
	for {
		if got := wait(hs.t, hs.settled, "page "+p.Title+" to settle"); got == p {
			return
		}
	}
}

// next taps Next and, when the next page does work on entering, waits
// for it.
func (hs *backupHarness) next() {
	hs.t.Helper()
	w := hs.b.wiz
	from := w.Current()
	if w.next.Disabled() {
		hs.t.Fatalf("Next is disabled on %q", from.Title)
	}
	test.Tap(w.next)
	if w.done {
		return
	}
	if p := w.Current(); p == from {
		hs.t.Fatalf("Next stayed on %q", from.Title)
	} else if p.Enter != nil {
		hs.waitSettled(p)
	}
}

// fillDestination types a dom0 directory and the passphrase twice.
func (hs *backupHarness) fillDestination(dir, pass string) {
	b := hs.b
	b.path.SetText("")
	test.Type(b.path, dir)
	b.pass.SetText("")
	b.confirm.SetText("")
	test.Type(b.pass, pass)
	test.Type(b.confirm, pass)
}

// texts collects the texts of the labels and buttons under o, as shown.
func texts(o fyne.CanvasObject) string {
	var b strings.Builder
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if o == nil || !o.Visible() {
			return
		}
		switch o := o.(type) {
		case *widget.Label:
			b.WriteString(o.Text + "\n")
		case *widget.Button:
			b.WriteString("[" + o.Text + "]\n")
		case *fyne.Container:
			for _, k := range o.Objects {
				walk(k)
			}
		case fyne.Widget:
			for _, k := range test.WidgetRenderer(o).Objects() {
				walk(k)
			}
		}
	}
	walk(o)
	return b.String()
}

// button finds the visible button with text under o.
func button(t *testing.T, o fyne.CanvasObject, text string) *widget.Button {
	t.Helper()
	var found *widget.Button
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if found != nil || o == nil || !o.Visible() {
			return
		}
		switch o := o.(type) {
		case *widget.Button:
			if o.Text == text {
				found = o
			}
		case *fyne.Container:
			for _, k := range o.Objects {
				walk(k)
			}
		case fyne.Widget:
			for _, k := range test.WidgetRenderer(o).Objects() {
				walk(k)
			}
		}
	}
	walk(o)
	if found == nil {
		t.Fatalf("no button %q in:\n%s", text, texts(o))
	}
	return found
}

// listItem finds the row of l that shows vm.
func listItem(t *testing.T, l *widget.List, vm string) *vmItem {
	t.Helper()
	var found *vmItem
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if found != nil || !o.Visible() {
			return
		}
		switch o := o.(type) {
		case *vmItem:
			if o.Text == vm || strings.HasPrefix(o.Text, vm+" ") {
				found = o
			}
		case *fyne.Container:
			for _, k := range o.Objects {
				walk(k)
			}
		case fyne.Widget:
			for _, k := range test.WidgetRenderer(o).Objects() {
				walk(k)
			}
		}
	}
	walk(l)
	if found == nil {
		t.Fatalf("no row %q in the list", vm)
	}
	return found
}

// defaultSelection is what the engine backs up when no VM is named.
func defaultSelection(t *testing.T, h *host.Host) []string {
	t.Helper()
	p, err := backup.NewPlan(t.Context(), h, backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, vm := range p.VMs {
		names = append(names, vm.Name)
	}
	return names
}

// The whole wizard as a user goes through it: the selection starts from
// include_in_backups, VMs are moved with a double tap and with a button,
// the destination is a dom0 directory; the backup restores byte-identical
// into a fresh host, verifies, and the profile saved (mode 0600) holds the
// passphrase only when asked to, and fills the next wizard.
func TestBackupWizardEndToEnd(t *testing.T) {
	a := newApp(t)
	root, h := demoHost(t)
	dir := t.TempDir()
	hs := openBackupWizard(t, a, root)
	b := hs.b

	if want := defaultSelection(t, h); !slices.Equal(b.selected, want) {
		t.Fatalf("selected %q, want include_in_backups %q", b.selected, want)
	}
	if !strings.HasPrefix(b.total.Text, "Selected: ") || !b.compress.Checked {
		t.Errorf("total %q, compress %v", b.total.Text, b.compress.Checked)
	}
	test.Tap(b.removeAllBtn)
	if len(b.selected) != 0 || !b.wiz.next.Disabled() {
		t.Fatalf("after Remove all: %q selected, Next enabled %v", b.selected, !b.wiz.next.Disabled())
	}
	test.DoubleTap(listItem(t, b.availList, "debian-12"))
	test.Tap(listItem(t, b.availList, "vault"))
	test.Tap(b.addBtn)
	if !slices.Equal(b.selected, []string{"debian-12", "vault"}) {
		t.Fatalf("selected %q", b.selected)
	}
	if want := progress.FormatSize(b.sizes["debian-12"] + b.sizes["vault"]); !strings.HasSuffix(b.total.Text, want) {
		t.Errorf("total %q, want %s", b.total.Text, want)
	}
	hs.next()

	// Destination: Next waits for a path and two equal passphrases.
	if b.targetVM.Selected != "dom0" || b.targetVM.Options[0] != "dom0" || !b.wiz.next.Disabled() {
		t.Fatalf("target %q of %q, Next enabled %v", b.targetVM.Selected, b.targetVM.Options, !b.wiz.next.Disabled())
	}
	test.Type(b.path, dir)
	test.Type(b.pass, "correct horse")
	test.Type(b.confirm, "correct hors")
	if !b.wiz.next.Disabled() || !strings.Contains(b.passNote.Text, "do not match") {
		t.Fatalf("mismatch: note %q", b.passNote.Text)
	}
	test.Type(b.confirm, "e")
	if b.wiz.next.Disabled() || b.passNote.Text != "" {
		t.Fatalf("matching passphrases: note %q", b.passNote.Text)
	}
	if !b.saveProfile.Checked || b.savePass.Checked || !b.passWarning.Visible() {
		t.Errorf("save profile %v, save passphrase %v", b.saveProfile.Checked, b.savePass.Checked)
	}
	hs.next()

	// Summary.
	sum := texts(b.summary)
	for _, want := range []string{"debian-12", "vault", "Template VM", "new file qubes-backup-", "gzip", "at most ", "less than a minute"} {
		if !strings.Contains(sum, want) {
			t.Errorf("the summary lacks %q:\n%s", want, sum)
		}
	}
	hs.next()

	// Progress.
	if err := wait(t, hs.runDone, "the backup"); err != nil {
		t.Fatal(err)
	}
	if !b.wiz.back.Disabled() || b.pv.Fraction() != 1 {
		t.Errorf("Back enabled %v, bar at %v", !b.wiz.back.Disabled(), b.pv.Fraction())
	}
	if log := b.pv.Log(); !slices.Equal(log, []string{"debian-12: done", "vault: done"}) {
		t.Errorf("log %q", log)
	}
	hs.next()

	// Finish, and Verify now.
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 1 || !strings.HasPrefix(filepath.Base(names[0]), "qubes-backup-") {
		t.Fatalf("the destination holds %q", names)
	}
	archive := names[0]
	if !strings.Contains(b.finishText.Text, archive) || !strings.Contains(b.finishText.Text, "vault: done") {
		t.Errorf("finish page says %q", b.finishText.Text)
	}
	test.Tap(b.verify)
	wait(t, hs.checked, "Verify")
	if !strings.HasPrefix(b.verifyText.Text, "Verified") || !strings.Contains(b.verifyText.Text, "vault: OK") {
		t.Errorf("verify says %q", b.verifyText.Text)
	}
	hs.next()
	if slices.Contains(a.Driver().AllWindows(), hs.win) {
		t.Error("the window is open after Finish")
	}

	checkRestores(t, h, archive, "correct horse", []string{"debian-12", "vault"})
	prof := checkProfile(t, root)
	if prof.HasPassphrase() || !slices.Equal(prof.Include, []string{"debian-12", "vault"}) || prof.DestinationPath != dir {
		t.Errorf("profile %v", prof)
	}

	// The next wizard starts from the profile; this time the passphrase
	// is saved too.
	hs = openBackupWizard(t, a, root)
	b = hs.b
	if !slices.Equal(b.selected, []string{"debian-12", "vault"}) {
		t.Errorf("selected %q, want the profile's", b.selected)
	}
	hs.next()
	if b.path.Text != dir || b.pass.Text != "" || b.savePass.Checked {
		t.Errorf("path %q, passphrase %q, save passphrase %v", b.path.Text, b.pass.Text, b.savePass.Checked)
	}
	test.Type(b.pass, "second")
	test.Type(b.confirm, "second")
	test.Tap(b.savePass)
	hs.next()
	hs.next()
	if err := wait(t, hs.runDone, "the backup"); err != nil {
		t.Fatal(err)
	}
	if prof := checkProfile(t, root); string(prof.Passphrase) != "second" {
		t.Errorf("profile passphrase %q", prof.Passphrase)
	}
	hs = openBackupWizard(t, a, root)
	hs.next()
	if hs.b.pass.Text != "second" || hs.b.confirm.Text != "second" || !hs.b.savePass.Checked || hs.b.wiz.next.Disabled() {
		t.Errorf("passphrase not filled from the profile")
	}
	hs.b.wiz.Cancel()
}

// checkProfile loads the default profile, which must be mode 0600.
func checkProfile(t *testing.T, root string) profile.Profile {
	t.Helper()
	path, err := profile.Path(root, DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("profile mode %v", st.Mode().Perm())
	}
	p, err := profile.Load(root, DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRestores restores archive into a fresh host with the restore
// engine and compares the VMs' volume images with h's.
func checkRestores(t *testing.T, h *host.Host, archive, pass string, vms []string) {
	t.Helper()
	fresh, err := host.Init(filepath.Join(t.TempDir(), "fresh"), host.InitOptions{User: "user", Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bk, err := restore.Open(t.Context(), f, restore.OpenOptions{Passphrase: []byte(pass)})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := restore.NewPlan(fresh, bk, restore.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Restore(t.Context(), fresh, bk, plan, restore.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		want, err := h.Volumes(vm)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fresh.Volumes(vm)
		if err != nil {
			t.Fatal(err)
		}
		images := 0
		for _, w := range want {
			if w.Path == "" || !w.SaveOnStop {
				continue
			}
			i := slices.IndexFunc(got, func(g host.VolumeInfo) bool { return g.Name == w.Name })
			if i < 0 {
				t.Errorf("%s: volume %s not restored", vm, w.Name)
				continue
			}
			if err := sameImage(w.Path, got[i].Path); err != nil {
				t.Errorf("%s: volume %s: %v", vm, w.Name, err)
			}
			images++
		}
		if images == 0 {
			t.Errorf("%s: no image compared", vm)
		}
	}
}

// sameImage compares two sparse images byte for byte: their lengths, and
// their content wherever either has data (elsewhere both read as zeros).
// Reading the gigabytes of their holes would take minutes.
func sameImage(pathA, pathB string) error {
	a, err := os.Open(pathA)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := os.Open(pathB)
	if err != nil {
		return err
	}
	defer b.Close()
	sa, _ := a.Stat()
	sb, _ := b.Stat()
	if sa.Size() != sb.Size() {
		return fmt.Errorf("lengths %d and %d", sa.Size(), sb.Size())
	}
	for _, f := range []*os.File{a, b} {
		for off := int64(0); off < sa.Size(); {
			start, err := f.Seek(off, seekData)
			if err != nil {
				break // ENXIO: no data after off
			}
			end, err := f.Seek(start, seekHole)
			if err != nil {
				return err
			}
			da := make([]byte, end-start)
			db := make([]byte, end-start)
			if _, err := a.ReadAt(da, start); err != nil {
				return err
			}
			if _, err := b.ReadAt(db, start); err != nil {
				return err
			}
			if !bytes.Equal(da, db) {
				return fmt.Errorf("content differs in [%d, %d)", start, end)
			}
			off = end
		}
	}
	return nil
}

// lseek's whence values for sparse files (Linux).
const (
	seekData = 3
	seekHole = 4
)
