package gui

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/profile"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/qrexec"
)

// DefaultProfile is the backup profile the Backup wizard starts from and
// saves to. It has the name the reference Qube Manager gives its own, so
// that "qvm-backup --profile qubes-manager-backup" runs the job the
// wizard saved.
const DefaultProfile = "qubes-manager-backup"

// dom0Target is the Target AppVM entry for dom0 itself.
const dom0Target = "dom0"

// ShowBackupWizard opens the Backup wizard for the host in root in a new
// window of a.
func ShowBackupWizard(a fyne.App, root string) fyne.Window {
	b := newBackupWizard(root)
	b.start(nil)
	b.win = ShowWizard(a, BackupTitle, b.wiz)
	return b.win
}

// backupWizard is the state of one Backup wizard: the choices its pages
// collect, turned into backup.Options for the engine. It plans, runs and
// verifies only through package backup, as qvm-backup does.
type backupWizard struct {
	root string
	h    *host.Host
	wiz  *Wizard
	win  fyne.Window // parent of the folder dialog; nil in some tests
	// vmBrowser is the last dialog browsing a VM, for tests, and
	// testHookBrowsed runs when it has shown a listing.
	vmBrowser       *vmBrowser
	testHookBrowsed func()

	// base holds the options no widget shows (the scrypt cost of a
	// profile, a resolution's change); options() adds the widgets' choices.
	base backup.Options
	// filter compresses when "Compress the backup" is checked: gzip, or
	// the filter a profile names.
	filter string
	// loadErr is a default profile that could not be read.
	loadErr error

	// Select VMs.
	available, selected []string
	sizes               map[string]int64 // backup-size by VM, as the engine measures it
	availList, selList  *widget.List
	availSel, selSel    int // selected rows, -1 for none
	total, loadNote     *widget.Label
	compress            *widget.Check
	incremental         *widget.Check
	addBtn, removeBtn   *widget.Button
	addAllBtn           *widget.Button
	removeAllBtn        *widget.Button
	loaded              chan struct{} // closed once the lists are filled
	started             chan struct{} // closed once start has made the Wizard

	// Destination.
	targetVM              *widget.Select
	path                  *widget.Entry
	browse                *widget.Button
	browseNote            *widget.Label
	pass, confirm         *widget.Entry
	passNote              *widget.Label
	saveProfile, savePass *widget.Check
	passWarning           *widget.Label
	destPage, summaryPage *Page
	selectPage, runPage   *Page

	// Summary.
	plan        *backup.Plan
	planOpts    backup.Options
	summary     *fyne.Container
	summaryBody *container.Scroll

	// Progress and finish.
	pv          *ProgressView
	result      *backup.Result
	finishText  *widget.Label
	verify      *widget.Button
	verifyBox   *fyne.Container
	verifyText  *widget.Label
	finishCtx   context.Context
	finishPage  *Page
	runPageBody *fyne.Container

	// Test hooks: testHookRunDone runs when Run has returned, even after
	// a cancel; testHookVerified when Verify has.
	testHookRunDone  func(error)
	testHookVerified func()
}

// newBackupWizard builds the pages; start makes the Wizard over them.
func newBackupWizard(root string) *backupWizard {
	b := &backupWizard{root: root, filter: "gzip", availSel: -1, selSel: -1,
		sizes: map[string]int64{}, loaded: make(chan struct{}), started: make(chan struct{})}
	b.selectPage = b.buildSelectPage()
	b.destPage = b.buildDestPage()
	b.summaryPage = b.buildSummaryPage()
	b.runPage = b.buildProgressPage()
	b.finishPage = b.buildFinishPage()
	return b
}

// start makes the Wizard over the pages, which enters the first. setup,
// if set, prepares the Wizard (tests set its hooks) before the first
// page's Enter goes on.
func (b *backupWizard) start(setup func(*Wizard)) {
	b.wiz = NewWizard(b.selectPage, b.destPage, b.summaryPage, b.runPage, b.finishPage)
	if setup != nil {
		setup(b.wiz)
	}
	close(b.started)
}

// --- Select VMs -------------------------------------------------------

func (b *backupWizard) buildSelectPage() *Page {
	b.availList = b.vmList(&b.available, &b.availSel, b.add)
	b.selList = b.vmList(&b.selected, &b.selSel, b.remove)
	b.total = widget.NewLabel("")
	b.loadNote = widget.NewLabel("Reading the VMs and their sizes…")
	b.loadNote.Wrapping = fyne.TextWrapWord
	b.compress = widget.NewCheck("Compress the backup", nil)
	b.compress.SetChecked(true)
	b.incremental = widget.NewCheck("Store only what changed since the last backup to the same place (incremental)", nil)

	b.addBtn = widget.NewButtonWithIcon("Add", theme.NavigateNextIcon(), b.add)
	b.addBtn.IconPlacement = widget.ButtonIconTrailingText
	b.removeBtn = widget.NewButtonWithIcon("Remove", theme.NavigateBackIcon(), b.remove)
	b.addAllBtn = widget.NewButton("Add all", b.addAll)
	b.removeAllBtn = widget.NewButton("Remove all", b.removeAll)
	buttons := container.NewVBox(layout.NewSpacer(), b.addBtn, b.removeBtn, b.addAllBtn, b.removeAllBtn, layout.NewSpacer())
	heading := func(s string) *widget.Label {
		l := widget.NewLabel(s)
		l.TextStyle.Bold = true
		return l
	}
	lists := container.NewBorder(nil, nil, nil, nil, container.New(&threeColumns{},
		container.NewBorder(heading("Available"), nil, nil, nil, b.availList),
		buttons,
		container.NewBorder(heading("Selected"), nil, nil, nil, b.selList)))
	p := &Page{
		Title:   "Select the VMs to back up",
		Content: container.NewBorder(b.loadNote, container.NewVBox(b.total, b.compress, b.incremental), nil, nil, lists),
		Enter:   b.load,
	}
	p.SetReady(false)
	return p
}

// vmList lists the names in *names with their sizes; a tap selects a row
// (into *sel), a double tap moves it (move) to the other list.
func (b *backupWizard) vmList(names *[]string, sel *int, move func()) *widget.List {
	var l *widget.List
	l = widget.NewList(
		func() int { return len(*names) },
		func() fyne.CanvasObject { return newVMItem() },
		func(id widget.ListItemID, o fyne.CanvasObject) {
			it := o.(*vmItem)
			it.SetText(b.vmText((*names)[id]))
			it.onTap = func() { l.Select(id) }
			it.onDoubleTap = func() { l.Select(id); move() }
		})
	l.OnSelected = func(id widget.ListItemID) { *sel = id }
	l.OnUnselected = func(widget.ListItemID) { *sel = -1 }
	return l
}

// vmText is a VM as the lists show it: its name and backup size.
func (b *backupWizard) vmText(vm string) string {
	name := vm
	if vm == "dom0" {
		name = "dom0 (user home)"
	}
	size, ok := b.sizes[vm]
	if !ok {
		return name
	}
	return name + "  —  " + progress.FormatSize(size)
}

// load reads the host, once: the default profile, the selection it (or
// include_in_backups) makes and every VM's size, all as the engine
// resolves and measures them.
func (b *backupWizard) load(ctx context.Context) error {
	<-b.started
	select {
	case <-b.loaded:
		return nil // entered again with Back: keep the user's choices
	default:
	}
	h, err := host.Open(b.root)
	if err != nil {
		return err
	}
	var prof *profile.Profile
	opts := b.base
	p, err := profile.Load(b.root, DefaultProfile)
	switch {
	case err == nil:
		if o, err := p.Options(); err == nil {
			prof, opts.VMs, opts.Exclude = &p, o.VMs, o.Exclude
			if o.ScryptLogN != 0 {
				opts.ScryptLogN = o.ScryptLogN
			}
			opts.Incremental, opts.FromFull, opts.FullEvery = o.Incremental, o.FromFull, o.FullEvery
			opts.Compression = o.Compression
		} else {
			b.loadErr = err
		}
	case !errors.Is(err, fs.ErrNotExist):
		b.loadErr = err
	}
	// The selection as the engine resolves it: the profile's names,
	// tags and types, or include_in_backups.
	def, err := backup.NewPlan(ctx, h, backup.Options{VMs: opts.VMs, Exclude: opts.Exclude})
	if err != nil {
		return err
	}
	var selected, all []string
	for _, vm := range def.VMs {
		selected = append(selected, vm.Name)
	}
	all = append(slices.Clone(selected), def.NotSelected...)
	// Every VM's size as the summary will show it: a plan of them all.
	sizes := map[string]int64{}
	if every, err := backup.NewPlan(ctx, h, backup.Options{VMs: all}); err == nil {
		for _, vm := range every.VMs {
			sizes[vm.Name] = vm.Size
		}
	} else {
		return err
	}
	targets := []string{dom0Target}
	if db, err := h.Load(); err == nil {
		for _, d := range db.Domains() {
			if d.Class() != host.AdminVM && h.IsRunning(d.Name()) {
				targets = append(targets, d.Name())
			}
		}
	}
	slices.Sort(targets[1:])

	onUI(func() {
		b.h, b.sizes = h, sizes
		b.base.ScryptLogN = opts.ScryptLogN
		b.base.FromFull, b.base.FullEvery = opts.FromFull, opts.FullEvery
		b.incremental.SetChecked(opts.Incremental)
		b.selected = selected
		b.available = slices.DeleteFunc(slices.Clone(all), func(s string) bool { return slices.Contains(selected, s) })
		sortVMs(b.available)
		b.targetVM.Options = targets
		b.targetVM.SetSelected(dom0Target)
		switch {
		case b.loadErr != nil:
			b.loadNote.SetText(fmt.Sprintf("The default backup profile could not be used (%v): starting from the VMs marked for backup.", b.loadErr))
			b.loadNote.Importance = widget.WarningImportance
		case prof != nil:
			b.loadNote.SetText("Settings of the default backup profile " + DefaultProfile + ".")
		default:
			b.loadNote.SetText("The VMs marked for backup (include_in_backups) are selected.")
		}
		b.loadNote.Refresh()
		if prof != nil {
			b.applyProfile(*prof, opts.Compression)
		}
		b.selectionChanged()
		close(b.loaded)
	})
	return nil
}

// applyProfile fills the widgets from the default profile.
func (b *backupWizard) applyProfile(p profile.Profile, compression string) {
	b.compress.SetChecked(compression != "none")
	if compression != "none" && compression != "" {
		b.filter = compression
	}
	if p.DestinationVM != "" && p.DestinationVM != dom0Target {
		if !slices.Contains(b.targetVM.Options, p.DestinationVM) {
			// Not running now: keep it, the summary says to start it.
			b.targetVM.Options = append(b.targetVM.Options, p.DestinationVM)
		}
		b.targetVM.SetSelected(p.DestinationVM)
	}
	b.path.SetText(p.DestinationPath)
	if p.HasPassphrase() {
		b.pass.SetText(string(p.Passphrase))
		b.confirm.SetText(string(p.Passphrase))
		b.savePass.SetChecked(true)
	}
}

// sortVMs puts dom0 first, then the VMs by name, as qvm-ls does.
func sortVMs(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == "dom0":
			return -1
		case b == "dom0":
			return 1
		}
		return strings.Compare(a, b)
	})
}

func (b *backupWizard) add()    { b.move(&b.available, &b.selected, &b.availSel, b.availList) }
func (b *backupWizard) remove() { b.move(&b.selected, &b.available, &b.selSel, b.selList) }

// move moves the row selected in from's list to the other list.
func (b *backupWizard) move(from, to *[]string, sel *int, l *widget.List) {
	if *sel < 0 || *sel >= len(*from) {
		return
	}
	vm := (*from)[*sel]
	*from = slices.Delete(*from, *sel, *sel+1)
	*to = append(*to, vm)
	l.UnselectAll()
	*sel = -1
	b.selectionChanged()
}

func (b *backupWizard) addAll() {
	b.selected = append(b.selected, b.available...)
	b.available = nil
	b.selectionChanged()
}

func (b *backupWizard) removeAll() {
	b.available = append(b.available, b.selected...)
	b.selected = nil
	b.selectionChanged()
}

// selectionChanged redraws the lists and the total, and lets the user on
// only with something selected.
func (b *backupWizard) selectionChanged() {
	sortVMs(b.available)
	sortVMs(b.selected)
	b.availList.UnselectAll()
	b.selList.UnselectAll()
	b.availList.Refresh()
	b.selList.Refresh()
	var sum int64
	for _, vm := range b.selected {
		sum += b.sizes[vm]
	}
	if len(b.selected) == 0 {
		b.total.SetText("Select at least one VM to back up.")
		b.total.Importance = widget.DangerImportance
	} else {
		b.total.SetText(fmt.Sprintf("Selected: %d VM(s), %s", len(b.selected), progress.FormatSize(sum)))
		b.total.Importance = widget.MediumImportance
	}
	b.total.Refresh()
	b.selectPage.SetReady(len(b.selected) > 0)
}

// --- Destination ------------------------------------------------------

func (b *backupWizard) buildDestPage() *Page {
	b.targetVM = widget.NewSelect([]string{dom0Target}, func(string) { b.destChanged() })
	b.path = widget.NewEntry()
	b.path.SetPlaceHolder("a directory, or a command to run")
	b.path.OnChanged = func(string) { b.destChanged() }
	b.browse = widget.NewButton("…", b.browseDest)
	b.browseNote = widget.NewLabel("")
	b.browseNote.Wrapping = fyne.TextWrapWord
	b.pass = widget.NewPasswordEntry()
	b.confirm = widget.NewPasswordEntry()
	b.pass.OnChanged = func(string) { b.destChanged() }
	b.confirm.OnChanged = func(string) { b.destChanged() }
	b.passNote = widget.NewLabel("")
	b.passNote.Importance = widget.DangerImportance
	b.savePass = widget.NewCheck("Also save the passphrase", nil)
	path, _ := profile.Path(b.root, DefaultProfile)
	b.passWarning = widget.NewLabel("The passphrase is then stored in plain text in " + path +
		" (mode 0600: only its owner and root can read it).")
	b.passWarning.Importance = widget.WarningImportance
	b.passWarning.Wrapping = fyne.TextWrapWord
	b.saveProfile = widget.NewCheck("Save settings as default backup profile", func(on bool) {
		if on {
			b.savePass.Enable()
		} else {
			b.savePass.SetChecked(false)
			b.savePass.Disable()
		}
	})
	b.saveProfile.SetChecked(true)

	form := widget.NewForm(
		widget.NewFormItem("Target AppVM", b.targetVM),
		widget.NewFormItem("Backup directory or command", container.NewBorder(nil, nil, nil, b.browse, b.path)),
		widget.NewFormItem("", b.browseNote),
		widget.NewFormItem("Passphrase", b.pass),
		widget.NewFormItem("Confirm passphrase", b.confirm),
		widget.NewFormItem("", b.passNote),
	)
	p := &Page{Title: "Choose where to back up to",
		Content: container.NewVScroll(container.NewVBox(form, widget.NewSeparator(),
			b.saveProfile, container.NewPadded(container.NewVBox(b.savePass, b.passWarning))))}
	p.SetReady(false)
	return p
}

// destVM is the destination VM of the options: "" for dom0.
func (b *backupWizard) destVM() string {
	if vm := b.targetVM.Selected; vm != dom0Target {
		return vm
	}
	return ""
}

// destChanged checks what the page can check itself: the other problems
// of a destination are the plan's, shown on the summary.
func (b *backupWizard) destChanged() {
	if b.destVM() == "" {
		b.browseNote.SetText("A directory in dom0 (a new file qubes-backup-… is made in it), or a command that receives the backup.")
	} else {
		b.browseNote.SetText("A directory in " + b.destVM() + " (a new file qubes-backup-… is made in it), a command to run there that receives the backup, or s3://BUCKET/PREFIX/ for object storage set up in " + b.destVM() + ".")
	}
	switch {
	case b.pass.Text == "":
		b.passNote.SetText("Enter a passphrase: it encrypts the backup and is needed to restore it.")
	case b.pass.Text != b.confirm.Text:
		b.passNote.SetText("The passphrases do not match.")
	default:
		b.passNote.SetText("")
	}
	b.destPage.SetReady(strings.TrimSpace(b.path.Text) != "" && b.passNote.Text == "")
}

// browseDest picks the destination directory: in dom0 with Fyne's folder
// dialog, in a VM by browsing it through the VM-side service.
func (b *backupWizard) browseDest() {
	if b.win == nil || b.h == nil {
		return
	}
	if vm := b.destVM(); vm != "" {
		t := b.base.Transport
		if t == nil {
			t = qrexec.NewLocal(b.h)
		}
		b.vmBrowser = browseVM(b.win, t, vm, b.path.Text, false, b.path.SetText, b.testHookBrowsed)
		return
	}
	d := dialog.NewFolderOpen(func(dir fyne.ListableURI, err error) {
		if err == nil && dir != nil {
			b.path.SetText(dir.Path())
		}
	}, b.win)
	d.Resize(fyne.NewSize(640, 440))
	d.Show()
}

// options are the engine's options for the choices made so far.
func (b *backupWizard) options() backup.Options {
	o := b.base
	o.VMs = slices.Clone(b.selected)
	o.Exclude = slices.Clone(b.base.Exclude)
	o.Compression = "none"
	if b.compress.Checked {
		o.Compression = b.filter
	}
	o.Destination = backup.Destination{VM: b.destVM(), Path: strings.TrimSpace(b.path.Text)}
	o.Passphrase = []byte(b.pass.Text)
	o.Incremental = b.incremental.Checked
	return o
}

// setOptions shows options that a resolution changed: an exclusion moves
// the VM back to Available, a compression or scrypt change is kept.
func (b *backupWizard) setOptions(o backup.Options) {
	sel := slices.DeleteFunc(slices.Clone(o.VMs), func(vm string) bool { return slices.Contains(o.Exclude, vm) })
	for _, vm := range b.selected {
		if !slices.Contains(sel, vm) {
			b.available = append(b.available, vm)
		}
	}
	b.selected = sel
	b.base.ScryptLogN = o.ScryptLogN
	if o.Compression != "none" {
		b.filter = o.Compression
		if b.filter == "" {
			b.filter = "gzip"
		}
	}
	b.compress.SetChecked(o.Compression != "none")
	b.selectionChanged()
}

// --- Summary ----------------------------------------------------------

func (b *backupWizard) buildSummaryPage() *Page {
	b.summary = container.NewVBox()
	b.summaryBody = container.NewVScroll(b.summary)
	return &Page{Title: "Summary", Content: b.summaryBody, Enter: b.makePlan}
}

// makePlan plans the backup of the options chosen; the summary shows it.
func (b *backupWizard) makePlan(ctx context.Context) error {
	done := make(chan backup.Options, 1)
	onUI(func() {
		b.summary.Objects = []fyne.CanvasObject{widget.NewLabel("Checking what will be stored and where…")}
		b.summary.Refresh()
		done <- b.options()
	})
	opts := <-done
	p, err := backup.NewPlan(ctx, b.h, opts)
	if err != nil {
		return err
	}
	onUI(func() {
		if ctx.Err() == nil {
			b.plan, b.planOpts = p, opts
			b.showPlan()
		}
	})
	return nil
}

// showPlan fills the summary: the table, the destination and estimates,
// then every blocking problem with what resolves it. Next waits until
// there is none.
func (b *backupWizard) showPlan() {
	p := b.plan
	var objs []fyne.CanvasObject
	bold := func(s string) *widget.Label {
		l := widget.NewLabel(s)
		l.TextStyle.Bold = true
		return l
	}
	table := container.NewGridWithColumns(3, bold("VM"), bold("Type"), bold("Size"))
	var notes []fyne.CanvasObject
	sum := p.Summary()
	for _, r := range sum.Rows {
		table.Add(widget.NewLabel(r.VM))
		table.Add(widget.NewLabel(r.Type))
		table.Add(widget.NewLabel(progress.FormatSize(r.Size)))
		if r.Note != "" {
			notes = append(notes, warningLabel(r.VM+": "+r.Note))
		}
	}
	table.Add(bold("Total"))
	table.Add(widget.NewLabel(""))
	table.Add(bold(progress.FormatSize(sum.Total)))
	objs = append(objs, table)
	objs = append(objs, notes...)
	for _, w := range p.Warnings {
		objs = append(objs, warningLabel(w))
	}
	if p.Target.Kind != 0 {
		wrapped := func(s string) *widget.Label {
			l := widget.NewLabel(s)
			l.Wrapping = fyne.TextWrapWord // a long path must not widen the page
			return l
		}
		info := widget.NewForm(
			widget.NewFormItem("Destination", wrapped(p.Target.String())),
			widget.NewFormItem("Compression", wrapped(p.Compression)),
		)
		size := "at most " + progress.FormatSize(p.EstimatedArchiveSize)
		if p.Chain != nil {
			info.Append("Kind", wrapped(p.Chain.Describe()))
			if p.Chain.Increment {
				size += " (as a full backup: the changed blocks are found when it starts)"
			}
		}
		info.Append("Estimated size", wrapped(size))
		info.Append("Estimated time", wrapped(estimatedTime(p.EstimatedDuration)))
		objs = append(objs, widget.NewSeparator(), info)
	}

	var blocks []fyne.CanvasObject
	for _, pr := range p.Problems {
		blocks = append(blocks, b.problemView(pr))
	}
	// A profile cannot hold every destination (a dom0 command).
	if b.saveProfile.Checked {
		if _, err := profile.FromOptions(b.planOpts); err != nil {
			msg := widget.NewLabel(fmt.Sprintf("• The settings cannot be saved as the default profile: %v.", err))
			msg.Importance = widget.DangerImportance
			msg.Wrapping = fyne.TextWrapWord
			blocks = append(blocks, container.NewVBox(msg, container.NewHBox(widget.NewButton("Do not save the profile", func() {
				b.saveProfile.SetChecked(false)
				b.replan()
			}))))
		}
	}
	blocked := len(blocks) > 0
	if blocked {
		// First, where the user looks for why Next is disabled.
		head := bold("The backup cannot start:")
		head.Importance = widget.DangerImportance
		objs = slices.Concat([]fyne.CanvasObject{head}, blocks, []fyne.CanvasObject{widget.NewSeparator()}, objs)
	}
	b.summary.Objects = objs
	b.summary.Refresh()
	b.summaryBody.ScrollToTop()
	b.summaryPage.SetReady(!blocked)
}

// problemView is one blocking problem in plain words, with a button for
// each resolution: one that changes the options plans again with it, one
// that is the user's choice leads back to the page where it is made.
func (b *backupWizard) problemView(pr backup.Problem) fyne.CanvasObject {
	msg := widget.NewLabel("• " + capitalize(pr.Message))
	msg.Importance = widget.DangerImportance
	msg.Wrapping = fyne.TextWrapWord
	box := container.NewVBox(msg)
	if pr.Hint != "" {
		hint := widget.NewLabel(capitalize(pr.Hint))
		hint.Wrapping = fyne.TextWrapWord
		box.Add(hint)
	}
	buttons := container.NewHBox()
	for _, r := range pr.Resolve {
		text := capitalize(r.String())
		probe := b.planOpts
		probe.VMs, probe.Exclude = slices.Clone(probe.VMs), slices.Clone(probe.Exclude)
		switch {
		case r.Apply(&probe, pr):
			buttons.Add(widget.NewButton(text, func() {
				b.setOptions(probe)
				b.replan()
			}))
		case r == backup.SelectVMs:
			buttons.Add(widget.NewButton(text, func() { b.wiz.show(0) }))
		case r == backup.ChooseDestination || r == backup.ChoosePassphrase:
			buttons.Add(widget.NewButton(text, func() { b.wiz.show(1) }))
		default:
			// An action on the host or a setting the wizard does not
			// offer: said in words.
			l := widget.NewLabel("To resolve: " + r.String() + ".")
			box.Add(l)
		}
	}
	if len(buttons.Objects) > 0 {
		box.Add(buttons)
	}
	return box
}

// replan plans again with the options as they now are: the summary page
// is entered anew.
func (b *backupWizard) replan() { b.wiz.show(b.wiz.cur) }

// estimatedTime words the engine's rough guess, as qvm-backup does.
func estimatedTime(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	return "about " + cli.FormatDuration(d)
}

// --- Progress ---------------------------------------------------------

func (b *backupWizard) buildProgressPage() *Page {
	b.runPageBody = container.NewStack()
	return &Page{Title: "Writing the backup", Content: b.runPageBody, NoBack: true, Enter: b.run}
}

// run saves the profile if asked (as qvm-backup --save-profile does,
// before the backup), then runs the plan. Cancel cancels ctx: Run stops
// at once and leaves nothing that looks like a backup.
func (b *backupWizard) run(ctx context.Context) (err error) {
	type job struct {
		plan *backup.Plan
		save *profile.Profile
		pv   *ProgressView
	}
	jobs := make(chan job, 1)
	onUI(func() {
		j := job{plan: b.plan, pv: NewProgressView()}
		if b.saveProfile.Checked {
			if p, err := profile.FromOptions(b.planOpts); err == nil {
				if b.savePass.Checked {
					p.Passphrase = slices.Clone(b.planOpts.Passphrase)
				}
				j.save = &p
			}
		}
		b.pv = j.pv
		b.runPageBody.Objects = []fyne.CanvasObject{j.pv.Content()}
		b.runPageBody.Refresh()
		jobs <- j
	})
	j := <-jobs
	defer func() {
		if b.testHookRunDone != nil {
			b.testHookRunDone(err)
		}
	}()
	if j.save != nil {
		if err := profile.Save(b.root, DefaultProfile, *j.save); err != nil {
			return fmt.Errorf("the backup profile could not be saved, so the backup was not started: %w", err)
		}
	}
	// A backup killed here before (a crash) left its hidden temporary
	// file, up to the size of a backup.
	j.plan.RemoveStale()
	res, err := backup.Run(ctx, j.plan, nil, j.pv.Reporter())
	j.pv.Close()
	if err != nil {
		if errors.Is(err, backup.ErrCancelled) {
			return errors.New("the backup was cancelled; nothing was written")
		}
		return fmt.Errorf("%w; nothing that looks like a backup was left", err)
	}
	onUI(func() { b.result = res })
	return nil
}

// --- Finish -----------------------------------------------------------

func (b *backupWizard) buildFinishPage() *Page {
	b.finishText = widget.NewLabel("")
	b.finishText.Wrapping = fyne.TextWrapWord
	b.verify = widget.NewButtonWithIcon("Verify now", theme.ConfirmIcon(), b.startVerify)
	b.verifyText = widget.NewLabel("")
	b.verifyText.Wrapping = fyne.TextWrapWord
	b.verifyBox = container.NewStack()
	return &Page{Title: "Backup finished",
		Content: container.NewVScroll(container.NewVBox(b.finishText, container.NewHBox(b.verify), b.verifyBox, b.verifyText)),
		Enter: func(ctx context.Context) error {
			onUI(func() { b.finishCtx = ctx; b.showResult() })
			return nil
		}}
}

// showResult says where the backup is, its size and each VM's result.
func (b *backupWizard) showResult() {
	res := b.result
	var s strings.Builder
	fmt.Fprintf(&s, "The backup was written to %s (%s).\n", resultLocation(res), progress.FormatSize(res.Bytes))
	if c := b.plan.Chain; c != nil && c.Increment {
		fmt.Fprintf(&s, "It is increment %d of its chain, on backup %s: only what changed was stored.\n", c.Depth, c.Base)
		if res.Detection != nil {
			fmt.Fprintln(&s, res.Detection)
		}
	}
	for _, l := range b.pv.Log() {
		s.WriteString("\n" + l)
	}
	for _, w := range res.Warnings {
		s.WriteString("\nWarning: " + w)
	}
	b.finishText.SetText(s.String())
	if res.Location == "" || res.Target.VM != "" {
		b.verify.Disable()
		b.verifyText.SetText("Verify reads back a backup file in dom0 only.")
	}
}

// startVerify reads the backup back in full (qvm-backup --verify) and
// shows the verdict. Closing the wizard stops it.
func (b *backupWizard) startVerify() {
	b.verify.Disable()
	v := NewProgressView()
	b.verifyBox.Objects = []fyne.CanvasObject{v.Content()}
	b.verifyBox.Refresh()
	b.verifyText.SetText("Reading the backup back…")
	ctx, plan, res := b.finishCtx, b.plan, b.result
	go func() {
		checks, err := backup.Verify(ctx, plan, res, v.Reporter())
		v.Close()
		onUI(func() {
			b.verifyBox.Hide() // the verdict replaces the progress
			if err != nil {
				b.verifyText.SetText(fmt.Sprintf("Verification failed: %v. Do not rely on this backup.", err))
				b.verifyText.Importance = widget.DangerImportance
			} else {
				var s strings.Builder
				s.WriteString("Verified: every file decrypts, decompresses and is complete.")
				for _, c := range checks {
					fmt.Fprintf(&s, "\n%s: OK, %d file(s), %s of content", c.Name, c.Files, progress.FormatSize(c.Data))
				}
				b.verifyText.SetText(s.String())
				b.verifyText.Importance = widget.SuccessImportance
			}
			b.verifyText.Refresh()
			if b.testHookVerified != nil {
				b.testHookVerified()
			}
		})
	}()
}

// resultLocation says where a finished backup is.
func resultLocation(res *backup.Result) string {
	t := res.Target
	switch t.Kind {
	case backup.ToCommand:
		return "the command " + t.Path
	case backup.ToVM:
		if res.Location != "" {
			return res.Location + " in " + t.VM
		}
		return "the command " + t.Path + " in " + t.VM
	}
	return res.Location
}

// --- Widgets ----------------------------------------------------------

// vmItem is a list row that a double tap acts on: widget.List selects on
// a tap but has no double tap of its own.
type vmItem struct {
	widget.Label
	onTap, onDoubleTap func()
}

func newVMItem() *vmItem {
	it := &vmItem{}
	it.Truncation = fyne.TextTruncateEllipsis
	it.ExtendBaseWidget(it)
	return it
}

func (it *vmItem) Tapped(*fyne.PointEvent) {
	if it.onTap != nil {
		it.onTap()
	}
}

func (it *vmItem) DoubleTapped(*fyne.PointEvent) {
	if it.onDoubleTap != nil {
		it.onDoubleTap()
	}
}

// threeColumns lays out two lists with a column of buttons between them:
// the lists share the width the buttons leave.
type threeColumns struct{}

func (threeColumns) MinSize(objs []fyne.CanvasObject) fyne.Size {
	mid := objs[1].MinSize()
	side := objs[0].MinSize().Max(objs[2].MinSize())
	return fyne.NewSize(2*side.Width+mid.Width+2*theme.Padding(), max(side.Height, mid.Height))
}

func (threeColumns) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	mid := objs[1].MinSize().Width
	side := (size.Width - mid - 2*theme.Padding()) / 2
	objs[0].Move(fyne.NewPos(0, 0))
	objs[0].Resize(fyne.NewSize(side, size.Height))
	objs[1].Move(fyne.NewPos(side+theme.Padding(), 0))
	objs[1].Resize(fyne.NewSize(mid, size.Height))
	objs[2].Move(fyne.NewPos(side+mid+2*theme.Padding(), 0))
	objs[2].Resize(fyne.NewSize(side, size.Height))
}
