package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
)

// Restoring into a host (doc/reference.md B.8, B.9, with E.1, E.2, E.8, E.23
// fixed). Every VM's files are staged (host.StagedVM) and the VM is added
// to the host, with its files, in one step once the archive has proved
// it complete:
//   - an archive with our manifest proves completeness at its end, so
//     its VMs are added after the whole archive has been read and checked;
//   - an archive without one can prove no more than that a VM's files have
//     ended (the next VM's begin, or the archive ends cleanly) and that
//     every volume with data has its image, so its VMs are added then.
//
// A VM whose template is restored too waits for it. A reference to a VM
// restored later (a netvm, a device backend, default_dispvm, ...) is set
// when that VM is added; until then a netvm is none, so that nothing
// reaches the network by another path. On any error or cancellation the
// staged VMs are discarded: what was added is complete, the rest is not
// there.

// Options for restoring into a host.
type Options struct {
	// Dom0DefaultDispVM applies the backup's dom0 default_dispvm to this
	// host's dom0 (E.23: the reference tool does it silently).
	Dom0DefaultDispVM bool
	// GlobalDefaults applies the backup's global VM settings
	// (default_netvm, default_template, default_dispvm, clockvm, updatevm,
	// ...) that this host leaves unset: what a migration to a fresh host
	// wants. Settings the host has are never changed.
	GlobalDefaults bool
	// Now names the dom0 home directory; nil means time.Now.
	Now func() time.Time
	// Pool is the file pool the restored VMs' volumes go to; "" is the
	// host's default pool (global default_pool, else its first file pool).
	Pool string
}

// Outcome is what happened to one VM.
type Outcome string

const (
	OutcomeRestored Outcome = "restored"
	OutcomeFailed   Outcome = "failed"       // its data or its creation failed
	OutcomeNotDone  Outcome = "not-restored" // an earlier failure stopped the run
)

// VMResult is the result for one restored VM (or the dom0 home).
type VMResult struct {
	VMReport
	Target  string // the name on the host; for dom0, the directory of the home
	Outcome Outcome
	// Warnings: what was left at a default (a property, a device, a label).
	Warnings []string
}

// Result is what Restore did, per VM in restore order.
type Result struct {
	VMs []VMResult
	// Warnings about the host's own settings (GlobalDefaults).
	Warnings []string
	// Removed lists what restores that died had left and this one
	// removed: staging directories, partial dom0 homes.
	Removed []string
}

// refSetting is a reference of a restored VM to a VM restored in the same
// run, set when that VM is added.
type refSetting struct {
	vm, prop string // prop "" means a device assignment
	target   string
	dev      host.Device
}

// hostRun is one restore into a host.
type hostRun struct {
	h       *host.Host
	plan    *Plan
	opts    Options
	pool    host.Pool             // where the VMs' volumes go (opts.Pool resolved)
	byOrig  map[string]*PlannedVM // restored VMs by original name
	targets map[string]*PlannedVM // restored VMs by target name
	added   map[string]bool       // target names added so far
	staged  map[*PlannedVM]*host.StagedVM
	ready   []*PlannedVM // complete, waiting for their template
	// deferred references, by the target they wait for
	deferred map[string][]refSetting
	results  map[*PlannedVM]*VMResult
	home     *homeStage
	// images seen per VM: the volumes whose image came from the archive
	images map[*PlannedVM][]string
	extra  map[*PlannedVM][]host.Feature // menu-items from a whitelisted-appmenus.list
	// globalWarnings: global settings that could not be applied.
	globalWarnings []string
	// ps is the data pass of a restore (nil for CheckHost's trial): its
	// reporter is told of each VM added and each warning.
	ps *pass
	// handle stores each file of the pass; nil means file.
	handle handler
	// chainFiles, for a chain, is what its older archives gave.
	chainFiles *chainFiles
	// chainDone, for a chain, checks after the pass that every file the
	// newest archive changes or keeps was there to change or keep.
	chainDone func() error
}

func newHostRun(h *host.Host, plan *Plan, opts Options) *hostRun {
	hr := &hostRun{h: h, plan: plan, opts: opts, byOrig: map[string]*PlannedVM{}, targets: map[string]*PlannedVM{},
		added: map[string]bool{}, staged: map[*PlannedVM]*host.StagedVM{}, deferred: map[string][]refSetting{},
		results: map[*PlannedVM]*VMResult{}, images: map[*PlannedVM][]string{}, extra: map[*PlannedVM][]host.Feature{}}
	for _, pv := range plan.Restored() {
		if pv.VM.Class == host.AdminVM {
			continue
		}
		hr.byOrig[pv.VM.Name] = pv
		hr.targets[pv.Target] = pv
	}
	return hr
}

// mapName maps a VM name of the backup to the host: a restored VM's
// target name, else the name itself (a host VM).
func (hr *hostRun) mapName(name string) string {
	if pv := hr.byOrig[name]; pv != nil {
		return pv.Target
	}
	return name
}

// pending reports whether target is a VM of this run not added yet.
func (hr *hostRun) pending(target string) bool {
	return hr.targets[target] != nil && !hr.added[target]
}

// spec is pv's VM as it can be added now; references to VMs of this run
// not added yet are returned to set later.
func (hr *hostRun) spec(pv *PlannedVM) (host.VMSpec, []refSetting) {
	v := pv.VM
	s := host.VMSpec{Name: pv.Target, Class: v.Class, Label: v.Label, Template: pv.Template, Pool: hr.pool.Name,
		Features: append(slices.Clone(v.Features), hr.extra[pv]...), Tags: v.Tags, Volumes: v.Volumes}
	var later []refSetting
	ref := func(prop, target string) {
		if hr.pending(target) && target != pv.Target { // a VM may name itself
			later = append(later, refSetting{vm: pv.Target, prop: prop, target: target})
			if prop == "netvm" {
				s.Props = append(s.Props, host.Property{Name: prop, Value: ""})
			}
			return
		}
		s.Props = append(s.Props, host.Property{Name: prop, Value: target})
	}
	for _, p := range v.Properties {
		switch {
		case p.Name == "netvm" || p.Name == "default_dispvm" || p.Name == "template":
		case host.IsRefProp(p.Name) && p.Value != "":
			ref(p.Name, hr.mapName(p.Value))
		default:
			s.Props = append(s.Props, p)
		}
	}
	if pv.NetVM.Set {
		ref("netvm", pv.NetVM.Name)
	}
	if pv.DefaultDispVM.Set {
		ref("default_dispvm", pv.DefaultDispVM.Name)
	}
	for _, dev := range v.Devices {
		dev.Backend = hr.mapName(dev.Backend)
		if hr.pending(dev.Backend) {
			later = append(later, refSetting{vm: pv.Target, target: dev.Backend, dev: dev})
			continue
		}
		s.Devices = append(s.Devices, dev)
	}
	return s, later
}

// waitsFor names the VM of this run that pv cannot be added without.
func (hr *hostRun) waitsFor(pv *PlannedVM) string {
	if hr.pending(pv.Template) {
		return pv.Template
	}
	return ""
}

// add adds pv to db (a dry run) or commits its staged files (stage not
// nil), setting the references that waited for it.
func (hr *hostRun) add(db *host.DB, pv *PlannedVM, stage *host.StagedVM) ([]string, error) {
	s, later := hr.spec(pv)
	waiting := hr.deferred[pv.Target]
	var lateWarns map[string][]string // by the VM whose reference failed
	apply := func(db *host.DB) error {
		lateWarns = map[string][]string{}
		for _, r := range waiting {
			d, err := db.Domain(r.vm)
			if err != nil {
				continue // that VM was not added
			}
			if r.prop == "" {
				err = d.AssignDevice(r.dev)
			} else {
				err = d.SetProp(r.prop, r.target)
			}
			if err != nil {
				// Say what was left, not only why ("sys-net: network
				// loop ..." told neither).
				what := r.prop + " left at its default"
				switch r.prop {
				case "":
					what = r.dev.Class + " device " + r.dev.Port + " not assigned"
				case "netvm":
					what = "netvm left at none"
				}
				why := strings.TrimPrefix(err.Error(), r.vm+": ")
				lateWarns[r.vm] = append(lateWarns[r.vm], fmt.Sprintf("%s: %s: %s", r.vm, what, why))
			}
		}
		return nil
	}
	var warns []string
	var err error
	if stage == nil {
		_, warns, err = db.AddVM(s)
		if err == nil {
			apply(db)
		}
	} else {
		warns, err = stage.Commit(s, apply)
	}
	if err != nil {
		return nil, err
	}
	hr.added[pv.Target] = true
	delete(hr.deferred, pv.Target)
	for _, r := range later {
		hr.deferred[r.target] = append(hr.deferred[r.target], r)
	}
	for vm, ws := range lateWarns {
		if t := hr.targets[vm]; t != nil && hr.results[t] != nil {
			for _, w := range ws {
				hr.warn(t, w)
			}
		} else {
			warns = append(warns, ws...)
		}
	}
	return warns, nil
}

// Restore restores the plan's VMs into h: it checks the host (CheckHost),
// reads the archive once, stages each VM's files and adds each VM when
// the archive has proved it complete (see above), then the dom0 home as
// <home>/home-restore-YYYY-MM-DD-HHMMSS. The Result lists every VM's
// outcome, also with an error; the error is nil only when every VM was
// restored, and wraps ErrCancelled when ctx was cancelled.
//
// Progress goes to r through progress.Async: updates; VMStarted as each
// VM's files begin; VMDone as each VM is added; the warnings of each VM
// (VM set) and of the host's settings (VM ""); at the end VMFailed, with
// its result's error, for each VM not restored.
//
// Until the data pass begins (the host check failed, the host could not
// be read), b is left as it was: a front end may change the options, make
// a new plan for the same b and call Restore again.
func Restore(ctx context.Context, h *host.Host, b *Backup, plan *Plan, opts Options, r progress.Reporter) (*Result, error) {
	return restore(ctx, h, b, plan, opts, r, nil)
}

// restore is Restore; stage, if set, stages files before b's pass (the
// older archives of a chain), reporting to the reporter it is given, and
// may set the pass's file handler.
func restore(ctx context.Context, h *host.Host, b *Backup, plan *Plan, opts Options, r progress.Reporter, stage func(*hostRun, progress.Reporter) error) (*Result, error) {
	// Its warnings are for a front end to show first; each VM's own come
	// back from its Commit.
	if _, err := CheckHost(ctx, h, plan, opts); err != nil {
		return nil, err
	}
	// What restores that died (SIGKILL, a crash) left: their staging
	// directories and partial dom0 homes, whose locks are free.
	removed := h.CleanStaging()
	if d0, err := h.Dom0(); err == nil {
		removed = append(removed, removeStaleHomes(d0.Home)...)
	}
	db, err := h.Load()
	var pool host.Pool
	if err == nil {
		pool, err = restorePool(db, plan, opts)
	}
	if err != nil {
		return nil, err
	}
	hr := newHostRun(h, plan, opts)
	hr.pool = pool
	for _, pv := range plan.Restored() {
		hr.results[pv] = &VMResult{VMReport: VMReport{Name: pv.VM.Name, Path: pv.VM.Path}, Target: pv.Target}
	}
	defer hr.discard()
	var stageErr error
	if stage != nil {
		a := progress.Async(r)
		defer a.Close()
		r = a
		stageErr = stage(hr, r)
	}
	ps, err := newPass(b, plan, r, progress.Reading)
	if err != nil {
		return nil, errors.Join(stageErr, err)
	}
	defer ps.closeRep()
	hr.ps = ps
	if hr.chainFiles != nil {
		hr.chainFiles.carryOn(ps)
	}
	if !b.Header.Manifest {
		ps.ended = hr.complete // nothing more will prove the VM complete
	}
	if stageErr != nil {
		ps.b.Close()
		err = ps.fail(stageErr)
	} else {
		err = hr.run(ctx)
	}
	hr.discard()
	return hr.result(ctx, removed, err)
}

// run is the data pass of a restore, then what its end proves: each VM
// not added yet is complete, and the host-wide settings asked for.
func (hr *hostRun) run(ctx context.Context) error {
	ps := hr.ps
	handle := hr.handle
	if handle == nil {
		handle = hr.file
	}
	err := ps.run(ctx, handle)
	if err == nil && hr.chainDone != nil {
		if err = hr.chainDone(); err != nil {
			err = ps.fail(err)
		}
	}
	if err != nil {
		return err
	}
	ps.emit(progress.Finishing, "", "")
	for _, pv := range ps.vms {
		if hr.results[pv].Outcome == "" {
			hr.complete(pv)
		}
	}
	if err = hr.err(); err == nil && hr.opts.Dom0DefaultDispVM {
		err = hr.applyDom0DefaultDispVM()
	}
	if err == nil && hr.opts.GlobalDefaults {
		hr.globalWarnings = hr.applyGlobals()
	}
	if err == nil {
		ps.finish()
	}
	return err
}

// result gives each VM its outcome, after a run that ended with err.
func (hr *hostRun) result(ctx context.Context, removed []string, err error) (*Result, error) {
	ps := hr.ps
	res := &Result{Warnings: hr.globalWarnings, Removed: removed}
	for _, w := range res.Warnings {
		ps.event(progress.Warning, "", nil, w)
	}
	var failed []string
	interrupted := err != nil && ctx.Err() != nil
	for _, pv := range ps.vms {
		vr := hr.results[pv]
		ownErr := vr.Err
		vr.VMReport = *ps.reports[pv.VM]
		if ownErr != nil {
			vr.Err = ownErr
		}
		switch {
		case vr.Outcome == OutcomeRestored:
			vr.Err = nil
		case interrupted && ownErr == nil:
			// Whatever the pass was doing failed because it was stopped
			// ("context canceled", "archive reader is closed"): the cause
			// is the interruption.
			vr.Outcome = OutcomeNotDone
			vr.Err = &stoppedError{base: ErrNotDone, cause: context.Cause(ctx)}
		case vr.Err != nil && !errors.Is(vr.Err, ErrNotReached):
			vr.Outcome = OutcomeFailed
		default:
			vr.Outcome = OutcomeNotDone
			if vr.Err == nil {
				vr.Err = ErrNotProven
			}
			// The run failed outside this VM (another VM's data, the
			// dom0 home, the archive's end): say where, or every VM
			// would read as if the archive had merely ended early.
			if err != nil {
				vr.Err = &stoppedError{base: vr.Err, cause: err}
			}
		}
		if vr.Outcome != OutcomeRestored {
			failed = append(failed, pv.VM.Name)
			ps.event(progress.VMFailed, pv.VM.Name, vr.Err, "")
		}
		res.VMs = append(res.VMs, *vr)
	}
	switch {
	case interrupted:
		err = cancelled(ctx)
	case err == nil && len(failed) > 0:
		err = fmt.Errorf("not restored: %s", strings.Join(failed, ", "))
	}
	return res, err
}

// complete is called when pv's files have all been read: it checks that
// every volume with data had its image and adds pv when its template is
// there, then whatever waited for pv.
func (hr *hostRun) complete(pv *PlannedVM) {
	res := hr.results[pv]
	if res.Outcome != "" {
		return
	}
	if pv.VM.Class == host.AdminVM {
		hr.finishDom0()
		return
	}
	// Every volume the backup says has data must have come; a VM without
	// a volume-config gets empty volumes.
	if err := missingImage(pv.VM, hr.images[pv]); err != nil {
		hr.fail(pv, err)
		return
	}
	hr.queue(pv, func(q *PlannedVM) error { hr.commit(q); return nil })
}

// queue adds pv to the VMs ready to be added, then adds each whose
// template is there (add), in turn, until none can be: the order both a
// restore and CheckHost's trial follow. It stops at add's first error.
func (hr *hostRun) queue(pv *PlannedVM, add func(*PlannedVM) error) error {
	if !slices.Contains(hr.ready, pv) {
		hr.ready = append(hr.ready, pv)
	}
	for progressed := true; progressed; {
		progressed = false
		for i, q := range hr.ready {
			if hr.waitsFor(q) != "" {
				continue
			}
			hr.ready = slices.Delete(hr.ready, i, i+1)
			if err := add(q); err != nil {
				return err
			}
			progressed = true
			break
		}
	}
	return nil
}

func (hr *hostRun) commit(pv *PlannedVM) {
	res := hr.results[pv]
	warns, err := hr.add(nil, pv, hr.staged[pv])
	if err != nil {
		hr.fail(pv, fmt.Errorf("VM %s could not be added: %w", pv.Target, err))
		return
	}
	for _, w := range warns {
		hr.warn(pv, w)
	}
	res.Outcome = OutcomeRestored
	delete(hr.staged, pv)
	hr.report(progress.VMDone, pv, nil)
}

// report tells the pass's reporter about pv, in a restore.
func (hr *hostRun) report(kind progress.Kind, pv *PlannedVM, err error) {
	if hr.ps != nil {
		hr.ps.event(kind, pv.VM.Name, err, "")
	}
}

func (hr *hostRun) fail(pv *PlannedVM, err error) {
	res := hr.results[pv]
	res.Outcome = OutcomeFailed
	res.Err = err
	if s := hr.staged[pv]; s != nil {
		s.Abort()
		delete(hr.staged, pv)
	}
}

// discard removes everything staged and not added (VMs that were never
// complete, VMs whose template failed, an unfinished dom0 home) and notes
// the references left unset because their VM was not added.
func (hr *hostRun) discard() {
	for _, pv := range hr.ready {
		res := hr.results[pv]
		res.Outcome = OutcomeFailed
		res.Err = fmt.Errorf("VM %s was not added: its template %s was not restored", pv.Target, pv.Template)
	}
	hr.ready = nil
	for pv, s := range hr.staged {
		s.Abort()
		delete(hr.staged, pv)
	}
	for target, refs := range hr.deferred {
		for _, r := range refs {
			if pv := hr.targets[r.vm]; pv != nil && hr.added[r.vm] {
				what := r.prop + " left at none"
				if r.prop == "" {
					what = r.dev.Class + " device " + r.dev.Port + " not assigned"
				} else if r.prop != "netvm" {
					what = r.prop + " left at its default"
				}
				hr.warn(pv, fmt.Sprintf("%s: %s: %s was not restored", r.vm, what, target))
			}
		}
	}
	hr.deferred = map[string][]refSetting{}
	if hr.home != nil {
		hr.home.release()
	}
}

// err is the first failure of adding a VM, after a data pass that
// succeeded.
func (hr *hostRun) err() error {
	for _, pv := range hr.plan.Restored() {
		if res := hr.results[pv]; res != nil && res.Outcome == OutcomeFailed {
			return res.Err
		}
	}
	return nil
}

// ErrNotDone: the run was stopped (cancelled) before the VM was added.
var ErrNotDone = errors.New("not restored: the restore was stopped before the VM was added")

// stoppedError is a VM's base outcome (ErrNotProven, ErrNotReached,
// ErrNotDone) with the failure of the run that caused it.
type stoppedError struct{ base, cause error }

func (e *stoppedError) Error() string {
	return e.base.Error() + "; what stopped it: " + e.cause.Error()
}
func (e *stoppedError) Unwrap() []error { return []error{e.base, e.cause} }
