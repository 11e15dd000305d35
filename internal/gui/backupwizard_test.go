package gui

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/minio/minio-go/v7"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/profile"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/restore"
	"pedos.dev/backup/internal/testutil"
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
	walkVisible(o, func(o fyne.CanvasObject) bool {
		switch o := o.(type) {
		case *widget.Label:
			b.WriteString(o.Text + "\n")
			return false
		case *widget.Button:
			b.WriteString("[" + o.Text + "]\n")
			return false
		}
		return true
	})
	return b.String()
}

// button finds the visible button with text under o.
func button(t *testing.T, o fyne.CanvasObject, text string) *widget.Button {
	t.Helper()
	var found *widget.Button
	walkVisible(o, func(o fyne.CanvasObject) bool {
		if b, ok := o.(*widget.Button); ok {
			if b.Text == text && found == nil {
				found = b
			}
			return false
		}
		return true
	})
	if found == nil {
		t.Fatalf("no button %q in:\n%s", text, texts(o))
	}
	return found
}

// listItem finds the row of l that shows vm.
func listItem(t *testing.T, l *widget.List, vm string) *vmItem {
	t.Helper()
	var found *vmItem
	walkVisible(l, func(o fyne.CanvasObject) bool {
		if it, ok := o.(*vmItem); ok {
			if (it.Text == vm || strings.HasPrefix(it.Text, vm+" ")) && found == nil {
				found = it
			}
			return false
		}
		return true
	})
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
			if err := testutil.SameSparse(w.Path, got[i].Path); err != nil {
				t.Errorf("%s: volume %s: %v", vm, w.Name, err)
			}
			images++
		}
		if images == 0 {
			t.Errorf("%s: no image compared", vm)
		}
	}
}

// Next stays disabled while a choice is missing or the plan has a
// blocking problem; each problem names what resolves it, and a resolution
// that changes the options plans again without the problem.
func TestBackupWizardBlocks(t *testing.T) {
	a := newApp(t)
	root, h := demoHost(t)
	u, err := h.Dom0()
	if err != nil {
		t.Fatal(err)
	}
	hs := openBackupWizard(t, a, root)
	b := hs.b
	w := b.wiz

	// Empty selection.
	test.Tap(b.removeAllBtn)
	if !w.next.Disabled() || !strings.Contains(b.total.Text, "Select at least one VM") {
		t.Fatalf("empty selection: Next enabled %v, %q", !w.next.Disabled(), b.total.Text)
	}
	test.Tap(b.addAllBtn)
	hs.next()

	// No path, no passphrase, passphrases that differ.
	if !w.next.Disabled() || !strings.Contains(b.passNote.Text, "Enter a passphrase") {
		t.Fatalf("empty page: Next enabled %v, %q", !w.next.Disabled(), b.passNote.Text)
	}
	test.Type(b.pass, "pass")
	test.Type(b.path, "/tmp")
	if !w.next.Disabled() {
		t.Fatal("Next enabled without the confirmation")
	}

	summaryBlocked := func(dest, want string) {
		t.Helper()
		hs.fillDestination(dest, "pass")
		hs.next()
		if got := texts(b.summary); !strings.Contains(got, want) || !strings.Contains(got, "The backup cannot start") {
			t.Errorf("%s: the summary lacks %q:\n%s", dest, want, got)
		}
		if !w.next.Disabled() {
			t.Errorf("%s: Next enabled", dest)
		}
	}

	// A directory that does not exist: its resolution leads back to the
	// destination.
	summaryBlocked(filepath.Join(t.TempDir(), "nosuch")+"/", "does not exist")
	test.Tap(button(t, b.summary, "Choose another destination"))
	if w.Current() != b.destPage {
		t.Fatalf("on %q after Choose another destination", w.Current().Title)
	}

	// The dom0 home into itself: leaving the home out re-plans.
	summaryBlocked(u.Home, "home")
	test.Tap(button(t, b.summary, "Leave the dom0 home out"))
	hs.waitSettled(b.summaryPage)
	if w.next.Disabled() || slices.Contains(b.selected, "dom0") || !slices.Contains(b.available, "dom0") {
		t.Fatalf("after leaving the home out: Next enabled %v, selected %q\n%s", !w.next.Disabled(), b.selected, texts(b.summary))
	}
	test.Tap(w.back)

	// A dom0 command cannot be saved as a profile.
	summaryBlocked("cat > /dev/null", "cannot be saved")
	test.Tap(button(t, b.summary, "Do not save the profile"))
	hs.waitSettled(b.summaryPage)
	if w.next.Disabled() || b.saveProfile.Checked {
		t.Fatalf("after Do not save the profile: Next enabled %v\n%s", !w.next.Disabled(), texts(b.summary))
	}
	test.Tap(w.back)

	// Too little space (a tmpfs, which needs root).
	if dir := mountTmpfs(t, "2m"); dir != "" {
		summaryBlocked(dir, "free")
		test.Tap(w.back)
	}
	w.Cancel()
}

// mountTmpfs mounts a small tmpfs and unmounts it at the end; "" when
// this user cannot mount.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("no tmpfs, no check of the free space: %v %s", err, out)
		return ""
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// Cancel while the backup is being written stops it: the wizard closes
// at once, and the destination is left empty, no temporary file either.
// The compression filter (named by the default profile, which fills the
// wizard) waits on a pipe until the test has tapped Cancel, so the backup
// is surely under way when Cancel comes.
func TestBackupWizardCancel(t *testing.T) {
	testutil.RequireTool(t, "sh")
	testutil.RequireTool(t, "gzip")
	a := newApp(t)
	root, _ := demoHost(t)
	dest, bin := t.TempDir(), t.TempDir()
	started, hold := filepath.Join(bin, "started"), filepath.Join(bin, "hold")
	for _, f := range []string{started, hold} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\necho >'%s'\nread x <'%s'\nexec gzip \"$@\"\n", started, hold)
	if err := os.WriteFile(filepath.Join(bin, "slowzip"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	err := profile.Save(root, DefaultProfile, profile.Profile{DestinationVM: profile.Dom0, DestinationPath: dest,
		Include: []string{"work"}, Compression: profile.Compression{Filter: "slowzip"}})
	if err != nil {
		t.Fatal(err)
	}
	// The filter opens started when it runs; reading it tells the test.
	filterRuns := make(chan struct{})
	go func() {
		if f, err := os.Open(started); err == nil {
			f.Close()
		}
		close(filterRuns)
	}()
	t.Cleanup(func() {
		// Unblock the reader if no filter ever ran.
		if f, err := os.OpenFile(started, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})

	hs := openBackupWizard(t, a, root)
	b := hs.b
	if !slices.Equal(b.selected, []string{"work"}) || b.path.Text != dest {
		t.Fatalf("not filled from the profile: %q, %q", b.selected, b.path.Text)
	}
	hs.next()
	test.Type(b.pass, "pass")
	test.Type(b.confirm, "pass")
	hs.next()
	if got := texts(b.summary); !strings.Contains(got, "slowzip") {
		t.Fatalf("the summary does not name the profile's filter:\n%s", got)
	}
	test.Tap(b.wiz.next)
	wait(t, filterRuns, "the compression filter to start")
	test.Tap(b.wiz.abort)
	if slices.Contains(a.Driver().AllWindows(), hs.win) {
		t.Error("the window is open after Cancel")
	}
	// Let the filter go on, if the engine has not killed it yet: it then
	// finds its context cancelled. (A filter that never reads again would
	// hold Run up: the compress package waits for its filter without a
	// context.) O_RDWR opens the pipe without waiting for a reader, and
	// keeps the line in it until Run has returned.
	f, err := os.OpenFile(hold, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("go\n")
	if err := wait(t, hs.runDone, "Run to return"); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("Run: %v", err)
	}
	if names, _ := os.ReadDir(dest); len(names) != 0 {
		t.Errorf("the destination holds %v", names)
	}
}

// A backup to a directory in a running VM, through the local qrexec
// transport, chosen with "…", which browses the VM's directories; Verify
// (dom0 files only) is off.
func TestBackupWizardToVM(t *testing.T) {
	a := newApp(t)
	root, h := demoHost(t)
	fsdir := startVM(t, h, "work")
	if err := os.MkdirAll(filepath.Join(fsdir, "home", "user", "backups"), 0o755); err != nil {
		t.Fatal(err)
	}
	hs := openBackupWizard(t, a, root)
	b := hs.b
	browsed := make(chan struct{}, 4)
	b.testHookBrowsed = func() { browsed <- struct{}{} }
	test.Tap(b.removeAllBtn)
	test.DoubleTap(listItem(t, b.availList, "vault"))
	hs.next()
	if !slices.Equal(b.targetVM.Options, []string{"dom0", "work"}) {
		t.Fatalf("targets %q", b.targetVM.Options)
	}
	b.targetVM.SetSelected("work")
	test.Tap(b.browse)
	wait(t, browsed, "the VM's home to be listed")
	vb := b.vmBrowser
	if got := vb.where.Text; got != "work: /home/user" {
		t.Errorf("browsing %q", got)
	}
	vb.list.Select(browserEntry(t, vb, "backups"))
	wait(t, browsed, "the VM's backups directory to be listed")
	if vb.choose.Disabled() {
		t.Fatal("Choose disabled on a directory")
	}
	test.Tap(vb.choose)
	if b.path.Text != "/home/user/backups" {
		t.Fatalf("the path field holds %q after choosing", b.path.Text)
	}
	test.Type(b.pass, "pass")
	test.Type(b.confirm, "pass")
	hs.next()
	if got := texts(b.summary); !strings.Contains(got, "work") {
		t.Errorf("summary:\n%s", got)
	}
	hs.next()
	if err := wait(t, hs.runDone, "the backup"); err != nil {
		t.Fatal(err)
	}
	hs.next()
	names, _ := filepath.Glob(filepath.Join(fsdir, "home", "user", "backups", "qubes-backup-*"))
	if len(names) != 1 {
		t.Fatalf("the VM holds %q", names)
	}
	if !strings.Contains(b.finishText.Text, " in work") || !b.verify.Disabled() {
		t.Errorf("finish: %q, verify enabled %v", b.finishText.Text, !b.verify.Disabled())
	}
	checkRestores(t, h, names[0], "pass", []string{"vault"})
	b.wiz.Cancel()
}

// browserEntry is the index of the entry named name in a VM browser's list.
func browserEntry(t *testing.T, vb *vmBrowser, name string) int {
	t.Helper()
	for i, e := range vb.entries {
		if e.Name == name {
			return i
		}
	}
	t.Fatalf("no %q among %v", name, vb.entries)
	return -1
}

// Object storage as the destination, through a VM, against a real
// SeaweedFS server: a missing bucket is a blocking problem on the summary,
// before any data is read; a bucket that exists takes the backup, which
// the finish page names and which verifies.
func TestBackupWizardToObjectStorage(t *testing.T) {
	sw := testutil.StartSeaweed(t)
	sw.MakeBucket("backups")
	a := newApp(t)
	root, h := demoHost(t)
	fsdir := startVM(t, h, "work")
	sw.WriteAWSFiles(filepath.Join(fsdir, "home", "user"), "")
	hs := openBackupWizard(t, a, root)
	b, w := hs.b, hs.b.wiz
	test.Tap(b.removeAllBtn)
	test.DoubleTap(listItem(t, b.availList, "vault"))
	hs.next()
	b.targetVM.SetSelected("work")
	if !strings.Contains(b.browseNote.Text, "s3://BUCKET/PREFIX/") {
		t.Errorf("the destination note does not offer object storage: %q", b.browseNote.Text)
	}

	hs.fillDestination("s3://missing/laptop/", "pass")
	hs.next()
	if got := texts(b.summary); !strings.Contains(got, "bucket missing does not exist") || !strings.Contains(got, "The backup cannot start") || !w.next.Disabled() {
		t.Fatalf("a missing bucket: Next enabled %v, summary:\n%s", !w.next.Disabled(), got)
	}
	test.Tap(w.back)

	hs.fillDestination("s3://backups/laptop/", "pass")
	hs.next()
	if got := texts(b.summary); strings.Contains(got, "cannot start") || w.next.Disabled() {
		t.Fatalf("a good bucket: Next enabled %v, summary:\n%s", !w.next.Disabled(), got)
	}
	hs.next()
	if err := wait(t, hs.runDone, "the backup"); err != nil {
		t.Fatal(err)
	}
	hs.next()
	keys := sw.Objects("backups", "laptop/")
	if len(keys) != 1 || !strings.Contains(b.finishText.Text, "s3://backups/"+keys[0]) {
		t.Fatalf("objects %q; the finish page says %q", keys, b.finishText.Text)
	}
	file := filepath.Join(t.TempDir(), "downloaded")
	if err := sw.Client.FGetObject(t.Context(), "backups", keys[0], file, minio.GetObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	checkRestores(t, h, file, "pass", []string{"vault"})
	w.Cancel()
}
