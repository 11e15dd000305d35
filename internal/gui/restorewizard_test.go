package gui

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/restore"
	"pedos.dev/backup/internal/testutil"
)

const restorePass = "correct horse battery staple"

// demoBackup backs up h (every VM it backs up by default, and the dom0
// home) to a file with the backup engine, at a low scrypt cost, and
// returns the file.
func demoBackup(t *testing.T, h *host.Host) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "backup")
	p, err := backup.NewPlan(t.Context(), h, backup.Options{ScryptLogN: 10, Passphrase: []byte(restorePass),
		Destination: backup.Destination{Path: out},
		Now:         func() time.Time { return time.Date(2026, 11, 26, 3, 15, 0, 0, time.Local) }})
	if err == nil {
		err = p.Err()
	}
	if err == nil {
		_, err = backup.Run(t.Context(), p, nil, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// freshHost is a host with only dom0, whose user is user.
func freshHost(t *testing.T, user string) (string, *host.Host) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	h, err := host.Init(root, host.InitOptions{User: user, Home: filepath.Join(t.TempDir(), user)})
	if err != nil {
		t.Fatal(err)
	}
	return root, h
}

// restoreDriver drives a Restore wizard as a user does, and waits for
// what the wizard reports through its test hooks.
type restoreDriver struct {
	t        *testing.T
	rw       *restoreWizard
	win      fyne.Window
	settled  chan struct{}
	opened   chan error
	passDone chan struct{}
	events   chan progress.Event
}

func startRestoreWizard(t *testing.T, a fyne.App, root string) *restoreDriver {
	t.Helper()
	rw := newRestoreWizard(root)
	d := &restoreDriver{t: t, rw: rw, settled: make(chan struct{}, 16), opened: make(chan error, 16),
		passDone: make(chan struct{}, 1), events: make(chan progress.Event, 1024)}
	rw.wiz.testHookSettled = func() { d.settled <- struct{}{} }
	rw.testHookOpened = func(err error) { d.opened <- err }
	rw.testHookPassDone = func() { d.passDone <- struct{}{} }
	rw.testHookEvent = func(e progress.Event) {
		select {
		case d.events <- e:
		default:
		}
	}
	d.win = ShowWizard(a, RestoreTitle, rw.wiz)
	d.win.Resize(fyne.NewSize(760, 560))
	rw.win = d.win
	t.Cleanup(func() {
		// A wizard left open is cancelled: its source is closed.
		if !rw.wiz.done {
			rw.wiz.Cancel()
		}
	})
	return d
}

// source fills the source page.
func (d *restoreDriver) source(path, pass string) {
	d.rw.path.SetText("")
	test.Type(d.rw.path, path)
	d.rw.pass.SetText("")
	test.Type(d.rw.pass, pass)
}

// next taps Next, which must be enabled.
func (d *restoreDriver) next() {
	d.t.Helper()
	if d.rw.wiz.next.Disabled() {
		d.t.Fatalf("Next is disabled on %q: %s", d.rw.wiz.Current().Title, d.pageError())
	}
	test.Tap(d.rw.wiz.next)
}

func (d *restoreDriver) pageError() string {
	if d.rw.wiz.err != nil {
		return d.rw.wiz.err.Error()
	}
	return d.rw.vmStatus.Text
}

// open goes on from the source page and waits for the backup to open;
// it returns the error of opening it.
func (d *restoreDriver) open() error {
	d.t.Helper()
	d.next()
	err := wait(d.t, d.opened, "the backup to open")
	if err == nil {
		wait(d.t, d.settled, "the VM page")
	}
	return err
}

// nextAndSettle taps Next and waits for the next page's Enter.
func (d *restoreDriver) nextAndSettle(what string) {
	d.t.Helper()
	d.next()
	wait(d.t, d.settled, what)
	if err := d.rw.wiz.err; err != nil {
		d.t.Fatalf("%s: %v", what, err)
	}
}

// toResult runs the data pass from the summary page and shows the result.
func (d *restoreDriver) toResult() {
	d.t.Helper()
	d.nextAndSettle("the data pass")
	wait(d.t, d.passDone, "the data pass to end")
	d.next()
	if d.rw.wiz.Current() != d.rw.finish {
		d.t.Fatalf("on %q, not the result", d.rw.wiz.Current().Title)
	}
}

// row is the VM page's row of a VM (by its name in the backup).
func (d *restoreDriver) row(vm string) fyne.CanvasObject {
	d.t.Helper()
	for i, pv := range d.rw.plan.VMs {
		if pv.VM.Name == vm {
			return d.rw.vmList.Objects[i]
		}
	}
	d.t.Fatalf("no row for %s", vm)
	return nil
}

// tapButton taps the button of that text in a VM's row.
func (d *restoreDriver) tapButton(vm, text string) {
	d.t.Helper()
	test.Tap(button(d.t, d.row(vm), text))
}

// check is a VM's checkbox.
func (d *restoreDriver) check(vm string) *widget.Check {
	d.t.Helper()
	checks := checksIn(d.row(vm))
	if len(checks) == 0 {
		d.t.Fatalf("no checkbox for %s", vm)
	}
	return checks[0]
}

// checksIn lists the visible checkboxes under o, in order.
func checksIn(o fyne.CanvasObject) []*widget.Check {
	var checks []*widget.Check
	walkVisible(o, func(o fyne.CanvasObject) bool {
		if c, ok := o.(*widget.Check); ok {
			checks = append(checks, c)
			return false
		}
		return true
	})
	return checks
}

// sameFile fails the test unless the files are equal (sparse-aware).
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	if err := testutil.SameSparse(a, b); err != nil {
		t.Fatal(err)
	}
}

// hostState is what a restore that did not happen leaves as it was: the
// database byte for byte, the VM directories (staging included) and the
// dom0 home's entries.
func hostState(t *testing.T, h *host.Host) string {
	t.Helper()
	xml, err := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	d0, _ := h.Dom0()
	for _, pat := range []string{"*", "*/*", "*/.*", filepath.Join(d0.Home, "*")} {
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(h.Root(), pat)
		}
		m, _ := filepath.Glob(pat)
		names = append(names, m...)
	}
	slices.Sort(names)
	return string(xml) + "\n" + strings.Join(names, "\n")
}

// End to end: a migration to a fresh host through the wizard. The host
// gains every VM of the backup, with byte-identical volumes, and the
// backup's global settings when asked.
func TestRestoreWizardMigrates(t *testing.T) {
	a := newApp(t)
	_, src := demoHost(t)
	file := demoBackup(t, src)
	root, dst := freshHost(t, "user")

	d := startRestoreWizard(t, a, root)
	if !d.rw.wiz.next.Disabled() {
		t.Fatal("Next enabled with no backup named")
	}
	d.source(file, restorePass)
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	if got := d.rw.found.Text; !strings.Contains(got, "format 4, made 2026-11-26 03:15, encrypted, compressed") {
		t.Errorf("the VM page says %q", got)
	}
	if len(d.rw.vmList.Objects) != len(d.rw.plan.VMs) || !d.check("work").Checked {
		t.Fatalf("%d rows for %d VMs", len(d.rw.vmList.Objects), len(d.rw.plan.VMs))
	}
	d.nextAndSettle("the summary")
	summary := d.rw.summaryText.Text
	for _, want := range []string{"work (AppVM, template debian-12)", "debian-12 (TemplateVM)", "home-restore-<time>"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	// The fresh host has no global settings: the backup's are offered.
	var globals *widget.Check
	for _, c := range checksIn(d.rw.runChoices) {
		if strings.Contains(c.Text, "global settings") {
			globals = c
		}
	}
	if globals == nil {
		t.Fatal("no choice to apply the backup's global settings")
	}
	test.Tap(globals)
	d.toResult()

	if got := d.rw.verdict.Text; !strings.Contains(got, "The restore is done") {
		t.Fatalf("verdict %q\n%s", got, d.rw.results.Text)
	}
	if !d.rw.wiz.back.Disabled() {
		t.Error("Back enabled on the result page: it would run the restore again")
	}
	if !strings.Contains(d.rw.results.Text, "work: restored (2 file(s)") {
		t.Errorf("results:\n%s", d.rw.results.Text)
	}
	// A "done" line in the log as each VM landed.
	log := d.rw.progress.Log()
	dbSrc, _ := src.Load()
	dbDst, err := dst.Load()
	if err != nil {
		t.Fatal(err)
	}
	restored := 0
	for _, dom := range dbSrc.Domains() {
		name := dom.Name()
		if name == "dom0" || name == "disp123" { // not backed up by default
			continue
		}
		restored++
		if _, err := dbDst.Domain(name); err != nil {
			t.Errorf("%s not restored: %v", name, err)
			continue
		}
		if !slices.Contains(log, name+": done") {
			t.Errorf("no line for %s in the log %q", name, log)
		}
		vols, err := src.Volumes(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.Volumes(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vols {
			if v.Path != "" {
				sameFile(t, v.Path, got[i].Path)
			}
		}
	}
	if restored < 6 {
		t.Fatalf("only %d VMs compared", restored)
	}
	if v, _ := dbDst.GlobalProp("default_template"); v != "debian-12" {
		t.Errorf("default_template %q: the global settings were not applied", v)
	}
	test.Tap(d.rw.wiz.next) // Finish
	if slices.Contains(a.Driver().AllWindows(), d.win) {
		t.Error("the window is open after Finish")
	}
}

// A wrong passphrase returns to the source page with an error under the
// passphrase; the right one then opens the backup, the source reopened,
// for a file and for a dom0 command.
func TestRestoreWizardWrongPassphrase(t *testing.T) {
	a := newApp(t)
	_, src := demoHost(t)
	file := demoBackup(t, src)
	root, _ := freshHost(t, "user")
	for _, loc := range []string{file, "cat " + file} {
		t.Run(strings.Fields(loc)[0], func(t *testing.T) {
			d := startRestoreWizard(t, a, root)
			d.source(loc, "not the passphrase")
			err := d.open()
			if !errors.Is(err, restore.ErrWrongPassphrase) {
				t.Fatalf("opened with a wrong passphrase: %v", err)
			}
			if d.rw.wiz.Current() != d.rw.source || !d.rw.passErr.Visible() ||
				!strings.Contains(d.rw.passErr.Text, "Wrong passphrase") {
				t.Fatalf("on %q, passphrase error %q", d.rw.wiz.Current().Title, d.rw.passErr.Text)
			}
			d.rw.pass.SetText("")
			test.Type(d.rw.pass, restorePass)
			if d.rw.passErr.Visible() {
				t.Error("the error stays while a new passphrase is typed")
			}
			if err := d.open(); err != nil {
				t.Fatalf("the right passphrase: %v", err)
			}
			if d.rw.wiz.Current() != d.rw.choose || d.rw.wiz.next.Disabled() || d.rw.plan.VM("work") == nil {
				t.Fatalf("on %q after the right passphrase: %s", d.rw.wiz.Current().Title, d.pageError())
			}
		})
	}
}

// Each blocking problem keeps Next disabled until a resolution the row
// offers is chosen; the resolution then shapes what is restored.
func TestRestoreWizardProblems(t *testing.T) {
	a := newApp(t)
	root, src := demoHost(t)
	file := demoBackup(t, src)

	t.Run("name-conflict", func(t *testing.T) {
		// The backup back into the host it came from: every name is taken.
		d := startRestoreWizard(t, a, root)
		d.source(file, restorePass)
		if err := d.open(); err != nil {
			t.Fatal(err)
		}
		if !d.rw.wiz.next.Disabled() {
			t.Fatal("Next enabled with every name taken")
		}
		d.tapButton("work", "Rename")
		if d.rw.wiz.next.Disabled() {
			t.Fatalf("Next disabled after Rename: %s", d.pageError())
		}
		if !strings.Contains(d.rw.applied.Text, "rename") {
			t.Errorf("resolutions listed: %q", d.rw.applied.Text)
		}
		// The dom0 home is not in the way: a new directory is made for it.
		d.nextAndSettle("the summary")
		if s := d.rw.summaryText.Text; !strings.Contains(s, "work-1 (AppVM, template debian-12-1), from work") {
			t.Fatalf("summary:\n%s", s)
		}
		d.toResult()
		if got := d.rw.verdict.Text; !strings.Contains(got, "The restore is done") {
			t.Fatalf("verdict %q\n%s", got, d.rw.results.Text)
		}
		if !strings.Contains(d.rw.results.Text, "work → work-1: restored") {
			t.Errorf("results:\n%s", d.rw.results.Text)
		}
		db, _ := src.Load()
		for _, n := range []string{"work-1", "personal-1", "work"} {
			if _, err := db.Domain(n); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
	})

	t.Run("missing-template", func(t *testing.T) {
		fresh, _ := freshHost(t, "user")
		d := startRestoreWizard(t, a, fresh)
		d.source(file, restorePass)
		if err := d.open(); err != nil {
			t.Fatal(err)
		}
		if d.rw.wiz.next.Disabled() {
			t.Fatalf("Next disabled on a fresh host: %s", d.pageError())
		}
		test.Tap(d.check("debian-12")) // leave the template out
		if !d.rw.wiz.next.Disabled() {
			t.Fatal("Next enabled with work's template missing")
		}
		if pv := d.rw.plan.VM("work"); len(pv.Problems) == 0 || pv.Problems[0].Code != restore.MissingTemplate {
			t.Fatalf("work's problems: %v", pv.Problems)
		}
		d.tapButton("work", "Skip")
		if d.rw.wiz.next.Disabled() {
			t.Fatalf("Next disabled after Skip: %s", d.pageError())
		}
		d.nextAndSettle("the summary")
		s := d.rw.summaryText.Text
		if strings.Contains(s, "work (") || strings.Contains(s, "debian-12 (") || !strings.Contains(s, "vault (StandaloneVM)") {
			t.Fatalf("summary after skipping the broken VMs:\n%s", s)
		}
	})

	t.Run("username-mismatch", func(t *testing.T) {
		fresh, _ := freshHost(t, "alice")
		d := startRestoreWizard(t, a, fresh)
		d.source(file, restorePass)
		if err := d.open(); err != nil {
			t.Fatal(err)
		}
		if !d.rw.wiz.next.Disabled() {
			t.Fatal("Next enabled with another user's home")
		}
		d.tapButton("dom0", "Restore anyway")
		if d.rw.wiz.next.Disabled() {
			t.Fatalf("Next disabled after Restore anyway: %s", d.pageError())
		}
		d.nextAndSettle("the summary")
		if s := d.rw.summaryText.Text; !strings.Contains(s, "The dom0 home of user goes to a new directory") {
			t.Fatalf("summary:\n%s", s)
		}
	})
}

// Verify-only ends with the verdict: complete and intact, or, with a
// byte of a chunk flipped, which VM is damaged.
func TestRestoreWizardVerifyOnly(t *testing.T) {
	a := newApp(t)
	root, src := demoHost(t)
	file := demoBackup(t, src)
	before := hostState(t, src)

	verify := func(t *testing.T, file string) *restoreDriver {
		d := startRestoreWizard(t, a, root)
		d.source(file, restorePass)
		test.Tap(d.rw.verifyOnly)
		if err := d.open(); err != nil {
			t.Fatal(err)
		}
		// Verify-only creates nothing: the names taken do not matter.
		d.nextAndSettle("the summary")
		if s := d.rw.summaryText.Text; !strings.Contains(s, "Verify only") {
			t.Fatalf("summary:\n%s", s)
		}
		d.toResult()
		return d
	}

	t.Run("intact", func(t *testing.T) {
		d := verify(t, file)
		if got := d.rw.verdict.Text; got != "The backup is complete and intact." {
			t.Fatalf("verdict %q\n%s", got, d.rw.results.Text)
		}
		if !strings.Contains(d.rw.results.Text, "work: intact") {
			t.Errorf("results:\n%s", d.rw.results.Text)
		}
	})

	t.Run("damaged", func(t *testing.T) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// The first chunk of a private image: its tar header holds the
		// name at the start of a 512-byte block; flip a byte of its body.
		i := bytes.Index(data, []byte("/private.img.000.enc\x00"))
		if i < 0 {
			t.Fatal("no private image in the archive")
		}
		start := i / 512 * 512
		dir := string(data[start : i+1]) // "vmN/"
		data[start+512+100] ^= 0x40
		bad := filepath.Join(t.TempDir(), "damaged")
		if err := os.WriteFile(bad, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d := verify(t, bad)
		if got := d.rw.verdict.Text; !strings.HasPrefix(got, "The backup is damaged or incomplete") {
			t.Fatalf("verdict %q", got)
		}
		var vm string
		for _, pv := range d.rw.plan.VMs {
			if pv.VM.Path == dir {
				vm = pv.VM.Name
			}
		}
		if vm == "" || !strings.Contains(d.rw.results.Text, vm+": FAILED") {
			t.Fatalf("the damaged VM (%s, %s) is not named:\n%s", vm, dir, d.rw.results.Text)
		}
	})
	if after := hostState(t, src); after != before {
		t.Error("verifying changed the host")
	}
}

// Cancel during the restore stops it at once and leaves the host as it
// was: no VM, no staging directory, pedos.xml unchanged.
func TestRestoreWizardCancel(t *testing.T) {
	a := newApp(t)
	_, src := demoHost(t)
	file := demoBackup(t, src)
	root, dst := freshHost(t, "user")
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	// The source gives half the archive, then waits on a FIFO nobody
	// writes: the restore is under way and stays so until cancelled.
	fifo := filepath.Join(t.TempDir(), "never")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := fmt.Sprintf("head -c %d %s; cat %s", info.Size()/2, file, fifo)
	before := hostState(t, dst)

	d := startRestoreWizard(t, a, root)
	d.source(cmd, restorePass)
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	d.nextAndSettle("the summary")
	d.next()
	if d.rw.wiz.Current() != d.rw.run || !d.rw.wiz.back.Disabled() {
		t.Fatal("not on the progress page, or Back enabled there")
	}
	for e := wait(t, d.events, "progress"); e.Kind != progress.VMStarted; e = wait(t, d.events, "a VM to start") {
	}
	test.Tap(d.rw.wiz.abort)
	if slices.Contains(a.Driver().AllWindows(), d.win) {
		t.Error("the window is open after Cancel")
	}
	wait(t, d.passDone, "the restore to stop")
	if after := hostState(t, dst); after != before {
		t.Errorf("the host changed:\nbefore %s\nafter %s", before, after)
	}
	if left := dst.CleanStaging(); len(left) > 0 {
		t.Errorf("staging left: %v", left)
	}
}

// restoreScreenshots are the Restore wizard's pages for TestScreenshots:
// a backup of the demo host restored to a fresh host of user alice.
var restoreScreenshots = []struct {
	name string
	open func(t *testing.T, a fyne.App) fyne.Window
}{
	{"restore-source", func(t *testing.T, a fyne.App) fyne.Window { return restoreUpTo(t, a, 0).win }},
	{"restore-vms", func(t *testing.T, a fyne.App) fyne.Window { return restoreUpTo(t, a, 1).win }},
	{"restore-summary", func(t *testing.T, a fyne.App) fyne.Window { return restoreUpTo(t, a, 2).win }},
	{"restore-progress", func(t *testing.T, a fyne.App) fyne.Window { return restoreUpTo(t, a, 3).win }},
	{"restore-result", func(t *testing.T, a fyne.App) fyne.Window { return restoreUpTo(t, a, 4).win }},
}

// restoreUpTo drives the wizard to its page n (0 the first): the user
// leaves the dom0 home of another user out and applies the backup's
// global settings.
func restoreUpTo(t *testing.T, a fyne.App, n int) *restoreDriver {
	_, src := demoHost(t)
	file := demoBackup(t, src)
	// A name as qvm-backup gives it, not a temporary path.
	dir := t.TempDir()
	name := "qubes-backup-2026-11-26T031500"
	if err := os.Rename(file, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	root, _ := freshHost(t, "alice")
	d := startRestoreWizard(t, a, root)
	d.source("./"+name, restorePass)
	if n == 0 {
		return d
	}
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	if n == 1 {
		return d
	}
	d.tapButton("dom0", "Skip the home")
	d.nextAndSettle("the summary")
	for _, c := range checksIn(d.rw.runChoices) {
		test.Tap(c)
	}
	if n == 2 {
		return d
	}
	d.nextAndSettle("the data pass")
	wait(t, d.passDone, "the data pass to end")
	if n == 3 {
		return d
	}
	d.next()
	return d
}

// The source can be dom0 or a running VM; "…" opens a file dialog in
// dom0, and in a VM browses the VM's files through the VM-side service,
// down to a backup file, which then restores.
func TestRestoreWizardSourceVMs(t *testing.T) {
	a := newApp(t)
	root, h := demoHost(t)
	fsdir := startVM(t, h, "work")
	dir := filepath.Join(fsdir, "home", "user", "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	backupFile := filepath.Join(dir, "qubes-backup-2026-11-26T031500")
	if err := os.Rename(demoBackup(t, h), backupFile); err != nil {
		t.Fatal(err)
	}
	d := startRestoreWizard(t, a, root)
	browsed := make(chan struct{}, 4)
	d.rw.testHookBrowsed = func() { browsed <- struct{}{} }
	if got := d.rw.vm.Options; !slices.Equal(got, []string{"dom0", "work"}) {
		t.Fatalf("sources %q, want dom0 and the running VM", got)
	}
	if d.rw.browse.Disabled() || d.rw.browseNote.Visible() {
		t.Fatal("browsing disabled in dom0")
	}
	test.Tap(d.rw.browse)
	if d.win.Canvas().Overlays().Top() == nil {
		t.Fatal("… opened no file dialog")
	}
	d.win.Canvas().Overlays().Top().Hide()
	d.rw.vm.SetSelected("work")
	if !d.rw.browseNote.Visible() {
		t.Fatal("no note on what to give for a VM")
	}
	test.Tap(d.rw.browse)
	wait(t, browsed, "the VM's home to be listed")
	vb := d.rw.vmBrowser
	vb.list.Select(browserEntry(t, vb, "backups"))
	wait(t, browsed, "the backups directory to be listed")
	if !vb.choose.Disabled() {
		t.Fatal("Choose enabled with no file selected")
	}
	vb.list.Select(browserEntry(t, vb, filepath.Base(backupFile)))
	test.Tap(vb.choose)
	want := "/home/user/backups/" + filepath.Base(backupFile)
	if loc := d.rw.location(); loc.VM != "work" || loc.Path != want {
		t.Fatalf("location %+v, want %s in work", loc, want)
	}
	test.Type(d.rw.pass, restorePass)
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
}

// Back to the source page and on again with the same backup and
// passphrase reuses the backup read (no second key derivation): a changed
// option only plans again.
func TestRestoreWizardBackReplans(t *testing.T) {
	a := newApp(t)
	root, src := demoHost(t)
	file := demoBackup(t, src)
	d := startRestoreWizard(t, a, root)
	d.source(file, restorePass)
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	if !d.rw.wiz.next.Disabled() {
		t.Fatal("Next enabled with every name taken")
	}
	b := d.rw.b
	test.Tap(d.rw.wiz.back)
	test.Tap(d.rw.verifyOnly)
	d.nextAndSettle("the VM page again")
	if d.rw.b != b || len(d.opened) > 0 {
		t.Fatal("the backup was opened again")
	}
	if !strings.HasPrefix(d.rw.found.Text, "Backup: format 4") || d.rw.wiz.next.Disabled() {
		t.Fatalf("verify-only: %q, Next disabled %v (%s)", d.rw.found.Text, d.rw.wiz.next.Disabled(), d.pageError())
	}
}

// The summary offers the host's file pools, its default first; the VMs'
// volumes go to the one chosen. "Read each VM's data even beyond the
// size the backup records" reaches the plan.
func TestRestoreWizardPoolAndSizes(t *testing.T) {
	a := newApp(t)
	_, src := demoHost(t)
	file := demoBackup(t, src)
	root, dst := freshHost(t, "user")
	fast := filepath.Join(t.TempDir(), "fast")
	if err := dst.AddPool("fast", "file", map[string]string{"dir_path": fast}); err != nil {
		t.Fatal(err)
	}
	d := startRestoreWizard(t, a, root)
	d.source(file, restorePass)
	test.Tap(d.rw.ignoreSizes)
	test.Tap(d.rw.ignoreMissing)
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	if !d.rw.opts.IgnoreSizeLimit || !d.rw.opts.IgnoreMissing {
		t.Errorf("plan options %+v", d.rw.opts)
	}
	d.nextAndSettle("the summary")
	db, _ := dst.Load()
	def, _ := db.FilePool("")
	if got := d.rw.poolChoice.Options; !slices.Equal(got, []string{def.Name, "fast"}) || d.rw.poolChoice.Selected != def.Name {
		t.Fatalf("pools %q, %q chosen", got, d.rw.poolChoice.Selected)
	}
	d.rw.poolChoice.SetSelected("fast")
	d.toResult()
	if got := d.rw.verdict.Text; !strings.Contains(got, "The restore is done") {
		t.Fatalf("verdict %q\n%s", got, d.rw.results.Text)
	}
	vols, err := dst.Volumes("work")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.Path != "" && !strings.HasPrefix(v.Path, fast+string(filepath.Separator)) {
			t.Errorf("work's volume %s is at %s, not in the pool fast (%s)", v.Name, v.Path, fast)
		}
	}
}

func TestSizeLimitHint(t *testing.T) {
	if sizeLimitHint(errors.New("other")) != "" {
		t.Error("a hint for another failure")
	}
	err := fmt.Errorf("work: %w", restore.ErrSizeLimit)
	if !strings.Contains(sizeLimitHint(err), "Read each VM's data even beyond the size the backup records") {
		t.Errorf("hint %q", sizeLimitHint(err))
	}
}
