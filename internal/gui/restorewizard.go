package gui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/qrexec"
	"pedos.dev/backup/internal/restore"
)

// The Restore wizard drives the restore engine as qvm-backup-restore
// does, page by page: where the backup is (OpenSource, Source.Open), which
// VMs and how their problems are resolved (NewPlan, Resolution.Apply), a
// summary (CheckHost), the restore or verification itself (Restore,
// VerifyOnly) and its result. Every decision is the engine's; the pages
// only show it and pass the user's choices back as options.

// restoreWizard is the state of one Restore wizard. Its fields belong to
// the UI goroutine; a page's Enter reads and writes them inside onUI (fyne.Do).
type restoreWizard struct {
	wiz     *Wizard
	win     fyne.Window // for the file dialog; nil in tests without one
	h       *host.Host
	hostErr error
	// vmBrowser is the last dialog browsing a VM, for tests, and
	// testHookBrowsed runs when it has shown a listing.
	vmBrowser       *vmBrowser
	testHookBrowsed func()

	// life is the wizard's: an open source (a command, a VM service)
	// lives as long, across pages. Cancelling the wizard ends it.
	life context.Context
	end  context.CancelFunc

	source, choose, summary, run, finish *Page

	// The source page.
	vm                                    *widget.Select
	path, pass                            *widget.Entry
	browse                                *widget.Button
	browseNote                            *widget.Label
	ignoreMissing, ignoreUser, verifyOnly *widget.Check
	ignoreSizes                           *widget.Check
	passErr                               *widget.Label

	// The VM page.
	found, vmStatus, applied *widget.Label
	undo                     *widget.Button
	vmList                   *fyne.Container
	vmScroll                 *container.Scroll

	// The summary page: poolChoice picks the file pool the volumes go to.
	summaryText *widget.Label
	poolChoice  *widget.Select
	runChoices  *fyne.Container

	// The progress page holds a new ProgressView for each run.
	runBox   *fyne.Container
	progress *ProgressView

	// The finish page.
	verdict *widget.Label
	results *widget.Label

	// What is open: the source, the backup read from it and what they
	// were opened with. A source whose Open failed stays, to be reopened.
	src    *restore.Source
	b      *restore.Backup
	opened openedWith
	// base are the options the source page sets; opts adds the
	// resolutions and exclusions chosen on the VM page.
	base, opts restore.PlanOptions
	resolved   []restore.Resolution // applied on the VM page, to list them
	plan       *restore.Plan
	runApplied map[restore.Resolution]bool // chosen on the summary page
	running    bool                        // a data pass owns src and b

	// Tests set these: testHookOpened runs after each attempt to open
	// the backup, testHookEvent with each engine event of a data pass,
	// testHookPassDone once a data pass has returned and the source and
	// backup are closed (also after a cancel).
	testHookOpened   func(error)
	testHookEvent    func(progress.Event)
	testHookPassDone func()
}

// openedWith is what a backup was opened with: the same again reuses it.
type openedWith struct {
	loc  restore.Location
	pass string
}

// ShowRestoreWizard opens the Restore wizard for the host in root in a new
// window of a.
func ShowRestoreWizard(a fyne.App, root string) fyne.Window {
	rw := newRestoreWizard(root)
	win := ShowWizard(a, RestoreTitle, rw.wiz)
	rw.win = win
	return win
}

// newRestoreWizard builds the wizard for the host in root.
func newRestoreWizard(root string) *restoreWizard {
	rw := &restoreWizard{runApplied: map[restore.Resolution]bool{}}
	rw.h, rw.hostErr = host.Open(root)
	rw.life, rw.end = context.WithCancel(context.Background())
	rw.source = &Page{Title: "Restore: the backup", Content: rw.sourcePage()}
	rw.choose = &Page{Title: "Restore: choose the VMs", Content: rw.choosePage(), Enter: rw.enterChoose}
	rw.summary = &Page{Title: "Restore: summary", Content: rw.summaryPage(), Enter: rw.enterSummary}
	rw.runBox = container.NewStack()
	rw.run = &Page{Title: "Restore: in progress", Content: rw.runBox, Enter: rw.enterRun, NoBack: true}
	// The data pass is over: there is no going back to run it again.
	rw.finish = &Page{Title: "Restore: result", Content: rw.finishPage(), NoBack: true}
	rw.wiz = NewWizard(rw.source, rw.choose, rw.summary, rw.run, rw.finish)
	rw.wiz.OnCancel = rw.close
	rw.wiz.OnFinish = rw.close
	rw.sourceChanged()
	return rw
}

// close ends the wizard's source and backup, unless a data pass owns
// them: it closes them itself once its cancel has stopped it.
func (rw *restoreWizard) close() {
	rw.end()
	if rw.running {
		return
	}
	if rw.b != nil {
		rw.b.Close()
	}
	if rw.src != nil {
		rw.src.Close()
	}
	rw.b, rw.src = nil, nil
}

// --- The source page ---

func (rw *restoreWizard) sourcePage() fyne.CanvasObject {
	rw.vm = widget.NewSelect(rw.sourceVMs(), func(string) { rw.sourceChanged() })
	rw.vm.SetSelected("dom0")
	rw.path = widget.NewEntry()
	rw.path.SetPlaceHolder("a backup file, or a command whose output is the backup")
	rw.path.OnChanged = func(string) { rw.sourceChanged() }
	rw.browse = widget.NewButton("…", rw.browseSource)
	rw.browseNote = widget.NewLabel("")
	rw.browseNote.Wrapping = fyne.TextWrapWord
	rw.browseNote.Importance = widget.LowImportance
	rw.ignoreMissing = widget.NewCheck("Ignore missing templates and net VMs (use the host's defaults)", nil)
	rw.ignoreUser = widget.NewCheck("Ignore username mismatch (restore another user's dom0 home)", nil)
	rw.verifyOnly = widget.NewCheck("Verify backup integrity only: restore nothing", nil)
	// Off by default: the bound stops a backup that would write more
	// than it says it holds; older writers recorded sizes wrongly.
	rw.ignoreSizes = widget.NewCheck("Read each VM's data even beyond the size the backup records", nil)
	rw.pass = widget.NewPasswordEntry()
	rw.pass.SetPlaceHolder("the backup's passphrase")
	rw.pass.OnChanged = func(string) { rw.passErr.Hide() }
	rw.passErr = widget.NewLabel("")
	rw.passErr.Importance = widget.DangerImportance
	rw.passErr.Wrapping = fyne.TextWrapWord
	rw.passErr.Hide()
	note := widget.NewLabel("The backup's header says whether it is encrypted; the next page shows what was found.")
	note.Wrapping = fyne.TextWrapWord
	note.Importance = widget.LowImportance

	form := widget.NewForm(
		widget.NewFormItem("AppVM", rw.vm),
		widget.NewFormItem("Backup file", container.NewBorder(nil, nil, nil, rw.browse, rw.path)),
		widget.NewFormItem("Passphrase", rw.pass),
	)
	top := []fyne.CanvasObject{form, rw.browseNote, rw.passErr, widget.NewSeparator(),
		rw.ignoreMissing, rw.ignoreUser, rw.verifyOnly, rw.ignoreSizes, note}
	if rw.hostErr != nil {
		bad := widget.NewLabel("Cannot read this host: " + rw.hostErr.Error())
		bad.Importance = widget.DangerImportance
		bad.Wrapping = fyne.TextWrapWord
		top = append([]fyne.CanvasObject{bad}, top...)
	}
	return container.NewVScroll(container.NewVBox(top...))
}

// sourceVMs lists where a backup can be read from: dom0 and the running
// VMs (a VM's qubes.Restore service runs only in a running VM).
func (rw *restoreWizard) sourceVMs() []string {
	vms := []string{"dom0"}
	if rw.h == nil {
		return vms
	}
	db, err := rw.h.Load()
	if err != nil {
		return vms
	}
	for _, d := range db.Domains() {
		if d.Class() != host.AdminVM && rw.h.IsRunning(d.Name()) {
			vms = append(vms, d.Name())
		}
	}
	return vms
}

func (rw *restoreWizard) location() restore.Location {
	return restore.Location{Path: strings.TrimSpace(rw.path.Text), VM: rw.vm.Selected}
}

// sourceChanged follows the source fields: the page is ready with a
// location; a VM's files cannot be browsed from dom0, and a format 1
// directory has no passphrase.
func (rw *restoreWizard) sourceChanged() {
	if rw.source == nil || rw.passErr == nil {
		return // still being built
	}
	loc := rw.location()
	if loc.InVM() {
		rw.browseNote.SetText("The backup file in " + loc.VM + ", a command run there that writes the backup, or s3://BUCKET/KEY for object storage set up in " + loc.VM + ".")
		rw.browseNote.Show()
	} else {
		rw.browseNote.Hide()
	}
	if loc.Path != "" && loc.Kind() == restore.FromDir {
		rw.pass.Disable()
	} else {
		rw.pass.Enable()
	}
	rw.passErr.Hide()
	rw.source.SetReady(rw.h != nil && loc.Path != "")
}

// browseSource picks the backup file: in dom0 with Fyne's file dialog,
// in a VM by browsing it through the VM-side service.
func (rw *restoreWizard) browseSource() {
	if rw.win == nil || rw.h == nil {
		return
	}
	if loc := rw.location(); loc.InVM() {
		// The transport the engine uses too (restore.SourceOptions).
		rw.vmBrowser = browseVM(rw.win, qrexec.NewLocal(rw.h), loc.VM, loc.Path, true, rw.path.SetText, rw.testHookBrowsed)
		return
	}
	d := dialog.NewFileOpen(func(f fyne.URIReadCloser, err error) {
		if err != nil || f == nil {
			return
		}
		f.Close()
		rw.path.SetText(f.URI().Path())
	}, rw.win)
	d.Resize(fyne.NewSize(700, 480))
	d.Show()
}

// --- The VM page ---

func (rw *restoreWizard) choosePage() fyne.CanvasObject {
	rw.found = widget.NewLabel("")
	rw.found.Wrapping = fyne.TextWrapWord
	rw.vmStatus = widget.NewLabel("")
	rw.vmStatus.Wrapping = fyne.TextWrapWord
	rw.applied = widget.NewLabel("")
	rw.applied.Wrapping = fyne.TextWrapWord
	rw.undo = widget.NewButton("Undo the resolutions", rw.undoResolutions)
	rw.vmList = container.NewVBox()
	top := container.NewVBox(rw.found, widget.NewSeparator())
	bottom := container.NewVBox(widget.NewSeparator(), rw.vmStatus,
		container.NewBorder(nil, nil, nil, rw.undo, rw.applied))
	rw.vmScroll = container.NewVScroll(rw.vmList)
	return container.NewBorder(top, bottom, nil, nil, rw.vmScroll)
}

// enterChoose opens the backup (unless what the source page says is
// already open), then plans. A wrong passphrase returns to the source
// page with the error under the passphrase, to try again.
func (rw *restoreWizard) enterChoose(ctx context.Context) error {
	var want openedWith
	var base restore.PlanOptions
	var reuse bool
	var prev *restore.Source
	onUIWait(func() {
		rw.clearPlan()
		want = openedWith{loc: rw.location(), pass: rw.pass.Text}
		base = restore.PlanOptions{IgnoreMissing: rw.ignoreMissing.Checked,
			IgnoreUsernameMismatch: rw.ignoreUser.Checked, VerifyOnly: rw.verifyOnly.Checked,
			IgnoreSizeLimit: rw.ignoreSizes.Checked}
		if rw.b != nil && rw.opened == want {
			reuse = true
			return
		}
		// Another location or passphrase: read the source again.
		if rw.b != nil {
			rw.b.Close()
			rw.b = nil
		}
		prev, rw.src = rw.src, nil
	})
	if reuse {
		onUI(func() {
			// The source page's options changed: its choices start again.
			if rw.base.IgnoreMissing != base.IgnoreMissing || rw.base.VerifyOnly != base.VerifyOnly ||
				rw.base.IgnoreUsernameMismatch != base.IgnoreUsernameMismatch {
				rw.base, rw.opts, rw.resolved = base, base, nil
			}
			rw.found.SetText(describeBackup(rw.b))
			rw.replan()
		})
		return nil
	}

	src, err := rw.openSource(prev, want.loc)
	var b *restore.Backup
	if err == nil {
		// Open clears nothing: the passphrase stays for the data pass.
		b, err = src.Open(ctx, restore.OpenOptions{Passphrase: []byte(want.pass)})
	}
	onUI(func() {
		defer func() {
			if rw.testHookOpened != nil {
				rw.testHookOpened(err)
			}
		}()
		if ctx.Err() != nil || rw.wiz.Current() != rw.choose {
			if b != nil {
				b.Close()
			}
			if src != nil {
				src.Close()
			}
			return
		}
		rw.src = src // closed after a failed Open, but it can be reopened
		if err != nil {
			if errors.Is(err, restore.ErrWrongPassphrase) {
				rw.passErr.SetText("Wrong passphrase (or the backup's header is damaged): enter it again.")
				rw.passErr.Show()
				rw.wiz.Back()
			}
			return
		}
		rw.b, rw.opened = b, want
		rw.base, rw.opts, rw.resolved = base, base, nil
		rw.found.SetText(describeBackup(b))
		rw.replan()
	})
	if err != nil {
		return openError(err)
	}
	return nil
}

// openSource opens loc for reading, reopening the previous source when
// it was of the same location (to retry a passphrase, or to read a
// backup again).
func (rw *restoreWizard) openSource(prev *restore.Source, loc restore.Location) (*restore.Source, error) {
	if prev != nil && prev.Location == loc && prev.CanReopen() {
		return prev.Reopen(rw.life)
	}
	if prev != nil {
		prev.Close()
	}
	return restore.OpenSource(rw.life, loc, restore.SourceOptions{Host: rw.h})
}

// openError words the error of opening a backup for the page.
func openError(err error) error {
	if errors.Is(err, restore.ErrWrongPassphrase) {
		return errors.New("wrong passphrase: enter it again on the previous page")
	}
	var se *restore.SourceError
	if errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("reading the backup: %w", err)
}

// describeBackup says what the backup's header and qubes.xml say.
func describeBackup(b *restore.Backup) string {
	hd := b.Header
	var what []string
	if hd.Version == 1 {
		what = append(what, "format 1 (a directory)")
	} else {
		what = append(what, fmt.Sprintf("format %d", max(hd.Version, 2)))
	}
	// The backup id starts with the time the reference writer made it.
	if len(hd.BackupID) >= 15 {
		if t, err := time.ParseInLocation("20060102T150405", hd.BackupID[:15], time.Local); err == nil {
			what = append(what, "made "+t.Format("2006-01-02 15:04"))
		}
	}
	if hd.Encrypted {
		what = append(what, "encrypted")
	} else {
		what = append(what, "not encrypted")
	}
	if hd.Compressed {
		c := "compressed"
		if hd.CompressionFilter != "" {
			c += " (" + hd.CompressionFilter + ")"
		}
		what = append(what, c)
	} else {
		what = append(what, "not compressed")
	}
	n := len(b.VMs)
	home := ""
	if b.Dom0 != nil {
		home = " and a dom0 home"
	}
	chain := ""
	if hd.Base != "" {
		chain = " It is an increment of backup " + hd.Base + ": the archives of its chain, beside it, are read too."
	}
	return fmt.Sprintf("Backup: %s; %d VMs%s.%s", strings.Join(what, ", "), n, home, chain)
}

func (rw *restoreWizard) clearPlan() {
	rw.plan = nil
	rw.vmList.Objects = nil
	rw.vmList.Refresh()
	rw.found.SetText("Reading the backup…")
	rw.vmStatus.SetText("")
	rw.applied.SetText("")
	rw.undo.Hide()
	rw.choose.SetReady(false)
}

// replan makes the plan for the options chosen so far and shows it. The
// page is ready when nothing blocks and something is restored.
func (rw *restoreWizard) replan() {
	h := rw.h
	if rw.opts.VerifyOnly {
		h = nil // verify-only checks the backup alone
	}
	plan, err := restore.NewPlan(h, rw.b, rw.opts)
	rw.plan = plan
	rw.vmList.Objects = nil
	if err != nil {
		rw.vmStatus.SetText(err.Error())
		rw.vmStatus.Importance = widget.DangerImportance
		rw.vmStatus.Refresh()
		rw.vmList.Refresh()
		rw.choose.SetReady(false)
		return
	}
	rows := plan.Rows()
	var first fyne.CanvasObject // the first VM with a blocking problem
	var blocked []string
	for i, pv := range plan.VMs {
		row := rw.vmRow(pv, rows[i])
		rw.vmList.Add(row)
		if !pv.Skipped && !pv.Restored() && pv.Problems[0].Code != restore.Excluded {
			blocked = append(blocked, pv.VM.Name)
			if first == nil {
				first = row
			}
		}
	}
	// Lay the list out now, so that the first problem can be scrolled to.
	rw.vmScroll.Refresh()
	if first != nil {
		rw.vmScroll.ScrollToOffset(fyne.NewPos(0, first.Position().Y))
	}

	blocking, restored := len(plan.Problems()), len(plan.Restored())
	switch {
	case blocking > 0:
		rw.vmStatus.SetText(fmt.Sprintf("Problems keep the restore from going on (%s): choose how to resolve each, or leave its VM out.",
			strings.Join(blocked, ", ")))
		rw.vmStatus.Importance = widget.DangerImportance
	case restored == 0:
		rw.vmStatus.SetText("No VM is selected.")
		rw.vmStatus.Importance = widget.WarningImportance
	case rw.opts.VerifyOnly:
		rw.vmStatus.SetText(fmt.Sprintf("%d selected to verify.", restored))
		rw.vmStatus.Importance = widget.MediumImportance
	default:
		rw.vmStatus.SetText(fmt.Sprintf("%d selected to restore.", restored))
		rw.vmStatus.Importance = widget.MediumImportance
	}
	rw.vmStatus.Refresh()
	var said []string
	for _, r := range rw.resolved {
		said = append(said, r.String())
	}
	rw.applied.SetText("")
	rw.undo.Hide()
	if len(said) > 0 {
		rw.applied.SetText("Resolutions: " + strings.Join(said, "; ") + ".")
		rw.undo.Show()
	}
	rw.choose.SetReady(blocking == 0 && restored > 0)
}

// vmRow shows one VM of the plan: a checkbox to restore it, what it is,
// and its problems, each with the resolutions the engine offers.
func (rw *restoreWizard) vmRow(pv *restore.PlannedVM, row restore.Row) fyne.CanvasObject {
	name := pv.VM.Name
	title := name
	details := fmt.Sprintf("%s · template %s · netvm %s · label %s · %s",
		row.Type, row.Template, row.NetVM, orDash(row.Label), progress.FormatSize(pv.VM.Size))
	if pv.VM.Class == host.AdminVM {
		title = "dom0 home"
		details = fmt.Sprintf("the home of dom0 user %s · %s", pv.VM.User, progress.FormatSize(pv.VM.Size))
	}
	check := widget.NewCheck(title, nil)
	check.SetChecked(!slices.Contains(rw.opts.Exclude, name))
	check.OnChanged = func(on bool) { rw.include(name, on) }
	info := widget.NewLabel(details)
	info.Importance = widget.LowImportance
	lines := []fyne.CanvasObject{container.NewHBox(check, info)}
	for _, s := range row.Info {
		l := widget.NewLabel("    " + s)
		l.Importance = widget.SuccessImportance
		lines = append(lines, l)
	}
	for _, pr := range pv.Problems {
		if pr.Code == restore.Excluded {
			continue
		}
		msg := widget.NewLabel("    " + pr.Message)
		msg.Wrapping = fyne.TextWrapWord
		if pv.Skipped {
			msg.SetText("    Skipped: " + pr.Message)
			msg.Importance = widget.WarningImportance
			lines = append(lines, msg)
			continue
		}
		msg.Importance = widget.DangerImportance
		buttons := container.NewHBox(layout.NewSpacer())
		for _, r := range pr.Resolve {
			buttons.Add(widget.NewButton(resolutionLabel(r), func() { rw.resolve(r, pr.VM) }))
		}
		lines = append(lines, container.NewBorder(nil, nil, nil, buttons, msg))
	}
	return container.NewVBox(append(lines, widget.NewSeparator())...)
}

// resolutionLabel is a resolution's button. Most apply to every VM with
// that problem, as the engine's options do; the list under the VMs then
// says so in the engine's words.
func resolutionLabel(r restore.Resolution) string {
	switch r {
	case restore.SkipConflicting:
		return "Skip"
	case restore.RenameConflicting:
		return "Rename"
	case restore.SkipBroken:
		return "Skip"
	case restore.IgnoreMissing:
		return "Use defaults"
	case restore.ExcludeVM:
		return "Leave out"
	case restore.SkipDom0Home:
		return "Skip the home"
	case restore.IgnoreUsernameMismatch:
		return "Restore anyway"
	}
	return r.String()
}

// resolve applies a resolution the user chose and plans again.
func (rw *restoreWizard) resolve(r restore.Resolution, vm string) {
	if !r.Apply(&rw.opts, vm) {
		return
	}
	if r != restore.ExcludeVM { // the VM's checkbox shows that one
		rw.resolved = append(rw.resolved, r)
	}
	rw.replan()
}

// include puts a VM back in the restore or leaves it out.
func (rw *restoreWizard) include(vm string, on bool) {
	if on {
		rw.opts.Exclude = slices.DeleteFunc(rw.opts.Exclude, func(n string) bool { return n == vm })
	} else {
		restore.ExcludeVM.Apply(&rw.opts, vm)
	}
	rw.replan()
}

// undoResolutions returns to the source page's options, keeping the VMs
// left out.
func (rw *restoreWizard) undoResolutions() {
	exclude := rw.opts.Exclude
	rw.opts, rw.resolved = rw.base, nil
	rw.opts.Exclude = exclude
	rw.replan()
}

// --- The summary page ---

func (rw *restoreWizard) summaryPage() fyne.CanvasObject {
	rw.summaryText = widget.NewLabel("")
	rw.summaryText.Wrapping = fyne.TextWrapWord
	rw.poolChoice = widget.NewSelect(nil, nil)
	rw.runChoices = container.NewVBox()
	pool := widget.NewForm(widget.NewFormItem("Storage pool for the volumes", rw.poolChoice))
	return container.NewVScroll(container.NewVBox(pool, rw.summaryText, rw.runChoices))
}

// showPools offers the host's file pools, the default first and chosen
// unless the user chose another before; a verification writes nowhere.
func (rw *restoreWizard) showPools(verify bool) {
	if verify {
		rw.poolChoice.Hide()
		return
	}
	var names []string
	if db, err := rw.h.Load(); err == nil {
		if def, err := db.FilePool(""); err == nil {
			names = append(names, def.Name) // the host's default first
		}
		for _, p := range db.Pools() {
			if p.IsFile() && !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	chosen := rw.poolChoice.Selected
	rw.poolChoice.Options = names
	if !slices.Contains(names, chosen) && len(names) > 0 {
		chosen = names[0]
	}
	rw.poolChoice.SetSelected(chosen)
	rw.poolChoice.Show()
}

// enterSummary says what the restore will do and where, and tries it on
// a copy of the host's database (CheckHost): its warnings are shown with
// the options that would apply what they say is left at a default.
func (rw *restoreWizard) enterSummary(ctx context.Context) error {
	var plan *restore.Plan
	var verify bool
	onUIWait(func() {
		rw.run.NoBack = true // a failed check may have lifted it
		plan, verify = rw.plan, rw.opts.VerifyOnly
		rw.showPools(verify)
		rw.summaryText.SetText(rw.summaryOf(plan))
		rw.runChoices.Objects = nil
		for _, w := range plan.Warnings {
			rw.runChoices.Add(warningLabel("Warning: " + w))
		}
		rw.runChoices.Refresh()
	})
	if verify {
		return nil
	}
	// Checked without the summary's choices, so that every warning and
	// its choice show whatever was chosen before; Restore checks again
	// with them.
	warns, err := restore.CheckHost(ctx, rw.h, plan, restore.Options{})
	onUI(func() {
		if ctx.Err() != nil {
			return
		}
		for _, w := range warns {
			rw.runChoices.Add(warningLabel("Warning: " + w.Message))
			for _, r := range w.Resolve {
				c := widget.NewCheck(capitalize(r.String()), nil)
				c.SetChecked(rw.runApplied[r])
				c.OnChanged = func(on bool) { rw.runApplied[r] = on }
				rw.runChoices.Add(c)
			}
		}
		rw.runChoices.Refresh()
	})
	return err
}

// summaryOf words the plan: what will be created, and where.
func (rw *restoreWizard) summaryOf(plan *restore.Plan) string {
	var s strings.Builder
	if v := rw.b.Header.Version; v < 4 {
		fmt.Fprintf(&s, "This backup is in the format %d of older systems; its VMs are converted to today's settings.\n\n", max(v, 2))
	}
	restored := plan.Restored()
	if rw.opts.VerifyOnly {
		s.WriteString("Verify only: the data of these VMs will be read and checked; nothing on this host is changed.\n\n")
		for _, pv := range restored {
			fmt.Fprintf(&s, "  • %s\n", pv.VM.Name)
		}
		return s.String()
	}
	s.WriteString("These VMs will be created on this host, their volumes in the pool chosen above:\n\n")
	for _, pv := range restored {
		if pv.VM.Class == host.AdminVM {
			continue
		}
		line := fmt.Sprintf("  • %s (%s", pv.Target, pv.VM.Class)
		if pv.Template != "" {
			line += ", template " + pv.Template
		}
		line += ")"
		if pv.Target != pv.VM.Name {
			line += ", from " + pv.VM.Name + " in the backup"
		}
		s.WriteString(line + "\n")
	}
	if pv := plan.VM("dom0"); pv != nil && pv.Restored() {
		home := "your home"
		if d0, err := rw.h.Dom0(); err == nil {
			home = d0.Home
		}
		fmt.Fprintf(&s, "\nThe dom0 home of %s goes to a new directory home-restore-<time> in %s; move the files you want out of it yourself.\n", pv.VM.User, home)
	}
	s.WriteString("\nExisting VMs will NOT be removed. Each VM appears only once all its data is restored and checked.")
	return s.String()
}

// --- The progress page ---

// enterRun runs the data pass: Restore or VerifyOnly. Cancelling the
// wizard stops it at once; the engine then removes what it staged, so no
// VM is left half restored.
func (rw *restoreWizard) enterRun(ctx context.Context) error {
	var src *restore.Source
	var b *restore.Backup
	var plan *restore.Plan
	var verify bool
	var pass string
	var opts restore.Options
	var view *ProgressView
	onUIWait(func() {
		src, b, plan, verify, pass = rw.src, rw.b, rw.plan, rw.opts.VerifyOnly, rw.opened.pass
		opts.Pool = rw.poolChoice.Selected
		for r, on := range rw.runApplied {
			if on {
				r.ApplyRun(&opts)
			}
		}
		view = NewProgressView()
		rw.progress = view
		rw.runBox.Objects = []fyne.CanvasObject{view.Content()}
		rw.runBox.Refresh()
		rw.running = true
	})
	rep := view.Reporter()
	if hook := rw.testHookEvent; hook != nil {
		rep = progress.Func(func(e progress.Event) { view.Reporter().Report(e); hook(e) })
	}

	var res *restore.Result
	var vrep *restore.VerifyReport
	var err error
	var chain *restore.Chain
	if b.Chain != nil {
		// An increment: its older archives are opened beside it.
		chain, err = restore.OpenChain(ctx, b, src.Location, restore.SourceOptions{Host: rw.h},
			restore.OpenOptions{Passphrase: []byte(pass)})
		if err != nil {
			err = fmt.Errorf("this backup is an increment, and its chain cannot be read: %w", err)
		}
	}
	switch {
	case err != nil:
	case verify && chain != nil:
		vrep, err = restore.VerifyChain(ctx, chain.Links, plan, rep)
	case verify:
		vrep, err = restore.VerifyOnly(ctx, b, plan, rep)
	case chain != nil:
		res, err = restore.RestoreChain(ctx, rw.h, chain.Links, plan, opts, rep)
	default:
		res, err = restore.Restore(ctx, rw.h, b, plan, opts, rep)
	}
	if chain != nil {
		chain.Close()
	}
	// A check that failed before the data pass leaves the backup as it
	// was: Back may change the plan and try again.
	checkFailed := err != nil && !verify && res == nil && ctx.Err() == nil
	if !checkFailed {
		// After a pass that succeeded, the rest of the source is read
		// for its own outcome (a command's exit status).
		if err == nil {
			err = src.Finish()
		} else {
			src.Close()
		}
		b.Close()
	}
	view.Close()
	onUI(func() {
		rw.running = false
		switch {
		case checkFailed:
			rw.run.NoBack = false
		case ctx.Err() != nil:
			rw.b, rw.src = nil, nil // closed above
		default:
			rw.b, rw.src = nil, nil
			rw.showResult(verify, vrep, res, err)
		}
		if rw.testHookPassDone != nil {
			rw.testHookPassDone()
		}
	})
	if checkFailed {
		return fmt.Errorf("%w (nothing was changed: go back to change the choices)", err)
	}
	return nil
}

// --- The finish page ---

func (rw *restoreWizard) finishPage() fyne.CanvasObject {
	rw.verdict = widget.NewLabel("")
	rw.verdict.Wrapping = fyne.TextWrapWord
	rw.verdict.TextStyle.Bold = true
	rw.results = widget.NewLabel("")
	rw.results.Wrapping = fyne.TextWrapWord
	return container.NewVScroll(container.NewVBox(rw.verdict, widget.NewSeparator(), rw.results))
}

// showResult fills the finish page with each VM's result: restored or
// verified, or what is missing or damaged.
func (rw *restoreWizard) showResult(verify bool, vrep *restore.VerifyReport, res *restore.Result, err error) {
	var s strings.Builder
	if verify {
		if err == nil {
			rw.verdict.SetText("The backup is complete and intact.")
			rw.verdict.Importance = widget.SuccessImportance
		} else {
			rw.verdict.SetText("The backup is damaged or incomplete: do not rely on it.\n" + err.Error() + sizeLimitHint(err))
			rw.verdict.Importance = widget.DangerImportance
		}
		if vrep != nil {
			for _, v := range vrep.VMs {
				fmt.Fprintf(&s, "%s: %s\n", v.Name, vmVerdict(v, "intact"))
			}
		}
	} else {
		if err == nil {
			rw.verdict.SetText("The restore is done. Please install updates for all the restored templates.")
			rw.verdict.Importance = widget.SuccessImportance
		} else {
			rw.verdict.SetText("The restore failed: " + err.Error() + "\nThe VMs not restored were not added." + sizeLimitHint(err))
			rw.verdict.Importance = widget.DangerImportance
		}
		if res != nil {
			for _, f := range res.Removed {
				fmt.Fprintf(&s, "Removed %s, left by a restore that did not finish.\n", f)
			}
			for _, v := range res.VMs {
				name := v.Name
				if v.Target != v.Name {
					name += " → " + v.Target
				}
				fmt.Fprintf(&s, "%s: %s\n", name, vmVerdict(v.VMReport, string(v.Outcome)))
				for _, w := range v.Warnings {
					fmt.Fprintf(&s, "    warning: %s\n", w)
				}
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(&s, "Warning: %s\n", w)
			}
		}
	}
	rw.verdict.Refresh()
	rw.results.SetText(strings.TrimRight(s.String(), "\n"))
}

// sizeLimitHint says how to read a backup that holds more than it
// records (restore.ErrSizeLimit), "" for other failures.
func sizeLimitHint(err error) string {
	if !errors.Is(err, restore.ErrSizeLimit) {
		return ""
	}
	return "\nIf you trust this backup (older systems recorded sizes wrongly), run the wizard again with \"Read each VM's data even beyond the size the backup records\" checked on its first page."
}

// vmVerdict is one VM's result line.
func vmVerdict(v restore.VMReport, ok string) string {
	if v.Err != nil {
		return "FAILED: " + v.Err.Error()
	}
	return fmt.Sprintf("%s (%d file(s), %s)", ok, v.Files, progress.FormatSize(v.Bytes))
}
