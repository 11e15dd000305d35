package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/legacy"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/sparsetar"
)

// Restoring into a host (behaviour.md B.8, B.9, with E.1, E.2, E.8, E.23
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
	s := host.VMSpec{Name: pv.Target, Class: v.Class, Label: v.Label, Template: pv.Template,
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
				lateWarns[r.vm] = append(lateWarns[r.vm], err.Error())
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
			hr.results[t].Warnings = append(hr.results[t].Warnings, ws...)
		} else {
			warns = append(warns, ws...)
		}
	}
	return warns, nil
}

// CheckHost tries the restore's changes to the VM database on a copy:
// every VM is added in restore order and every reference set. It returns
// what would be left at a default, and an error when a VM cannot be
// added at all or the host lacks space for the data. Restore calls it
// first; a front end calls it to show the warnings before asking.
func CheckHost(h *host.Host, plan *Plan, opts Options) ([]string, error) {
	if h == nil || !plan.hasHost || plan.opts.VerifyOnly {
		return nil, errors.New("restore: the plan was not made for restoring into a host")
	}
	if err := plan.Err(); err != nil {
		return nil, err
	}
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	hr := newHostRun(h, plan, opts)
	var warns []string
	var need int64
	for _, pv := range plan.Restored() {
		need += pv.VM.Size
	}
	queue := plan.Restored()
	for len(queue) > 0 { // restore order, a VM after its template
		progressed := false
		var rest []*PlannedVM
		for _, pv := range queue {
			if pv.VM.Class == host.AdminVM {
				progressed = true
				continue
			}
			if hr.waitsFor(pv) != "" {
				rest = append(rest, pv)
				continue
			}
			w, err := hr.add(db, pv, nil)
			if err != nil {
				return warns, fmt.Errorf("VM %s cannot be restored: %w", pv.VM.Name, err)
			}
			warns = append(warns, w...)
			progressed = true
		}
		if !progressed {
			return warns, fmt.Errorf("VM %s cannot be restored: its template %s cannot be restored first", rest[0].VM.Name, rest[0].Template)
		}
		queue = rest
	}
	if err := db.Validate(); err != nil {
		return warns, fmt.Errorf("the restored VMs would not fit this host's VM database: %w", err)
	}
	if globals := unsetGlobals(db, plan.backup.DB); len(globals) > 0 && !opts.GlobalDefaults {
		var list []string
		for _, p := range globals {
			list = append(list, p.Name+"="+p.Value)
		}
		warns = append(warns, fmt.Sprintf("the backup's global settings this host leaves unset (%s) are not applied (use --restore-global-defaults)", strings.Join(list, ", ")))
	}
	if d0 := plan.backup.DB; d0 != nil {
		if dom0, err := d0.Domain("dom0"); err == nil {
			if v, isDefault := dom0.Prop("default_dispvm"); !isDefault && !opts.Dom0DefaultDispVM {
				warns = append(warns, fmt.Sprintf("the backup's dom0 default_dispvm %q is not applied (use --restore-dom0-default-dispvm)", v))
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.Root(), &st); err == nil {
		if free := int64(st.Bavail) * int64(st.Bsize); free < need {
			return warns, fmt.Errorf("not enough space in %s: the restore needs up to %s, %s free", h.Root(), sizeText(need), sizeText(free))
		}
	}
	return warns, nil
}

func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Restore restores the plan's VMs into h: it checks the host (CheckHost),
// reads the archive once, stages each VM's files and adds each VM when
// the archive has proved it complete (see above), then the dom0 home as
// <home>/home-restore-YYYY-MM-DD-HHMMSS. The Result lists every VM's
// outcome, also with an error; the error is nil only when every VM was
// restored.
func Restore(ctx context.Context, h *host.Host, b *Backup, plan *Plan, opts Options, r progress.Reporter) (*Result, error) {
	// Its warnings are for a front end to show first; each VM's own come
	// back from its Commit.
	if _, err := CheckHost(h, plan, opts); err != nil {
		b.Close()
		return nil, err
	}
	h.CleanStaging()
	ps, err := newPass(b, plan, r, progress.Reading)
	if err != nil {
		return nil, err
	}
	hr := newHostRun(h, plan, opts)
	for _, pv := range ps.vms {
		hr.results[pv] = &VMResult{VMReport: VMReport{Name: pv.VM.Name, Path: pv.VM.Path}, Target: pv.Target}
	}
	defer hr.discard()
	if !b.Header.Manifest {
		ps.ended = hr.complete // nothing more will prove the VM complete
	}
	err = ps.run(ctx, hr.file)
	if err == nil {
		ps.emit(progress.Finishing, "", "")
		for _, pv := range ps.vms {
			if hr.results[pv].Outcome == "" {
				hr.complete(pv)
			}
		}
		if err = hr.err(); err == nil && opts.Dom0DefaultDispVM {
			err = hr.applyDom0DefaultDispVM()
		}
		if err == nil && opts.GlobalDefaults {
			hr.globalWarnings = hr.applyGlobals()
		}
		if err == nil {
			ps.finish()
		}
	}
	hr.discard()
	res := &Result{Warnings: hr.globalWarnings}
	var failed []string
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
		case vr.Err != nil && !errors.Is(vr.Err, ErrNotReached):
			vr.Outcome = OutcomeFailed
			failed = append(failed, pv.VM.Name)
		default:
			vr.Outcome = OutcomeNotDone
			if vr.Err == nil {
				vr.Err = ErrNotProven
			}
			failed = append(failed, pv.VM.Name)
		}
		res.VMs = append(res.VMs, *vr)
	}
	if err == nil && len(failed) > 0 {
		err = fmt.Errorf("not restored: %s", strings.Join(failed, ", "))
	}
	return res, err
}

// file stores one archive file of pv in its staging area.
func (hr *hostRun) file(pv *PlannedVM, f io.Reader, name string, limit int64) error {
	v := pv.VM
	if v.Class == host.AdminVM {
		return hr.stageHome(pv, f, name, limit)
	}
	stage := hr.staged[pv]
	if stage == nil {
		var err error
		if stage, err = hr.h.StageVM(v.Class); err != nil {
			return err
		}
		hr.staged[pv] = stage
	}
	base := path.Base(name)
	vol, isImage := strings.CutSuffix(base, ".img")
	switch {
	case isDotTree(name):
		return hr.stageTree(pv, stage, f, name, limit)
	case isImage && slices.Contains(host.SavedVolumes(v.Class, v.Volumes), vol):
		if slices.Contains(hr.images[pv], vol) {
			return fmt.Errorf("%w: a second image of volume %s", archive.ErrUnexpectedMember, vol)
		}
		sw, out, err := stage.CreateImage(vol)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = sparsetar.ExtractFile(f, name, sw, limit)
		if err == nil {
			err = sw.Close()
		}
		if err != nil {
			return err
		}
		hr.images[pv] = append(hr.images[pv], vol)
		return nil
	case base == host.FirewallFile, base == host.NotesFile, base == "whitelisted-appmenus.list":
		var buf bytes.Buffer
		if _, err := sparsetar.ExtractFile(f, name, &buf, min(limit, 1<<20)); err != nil {
			return err
		}
		switch base {
		case host.FirewallFile:
			fw := buf.Bytes()
			if hr.plan.backup.Header.Version < 4 { // Qubes R1 to R3.2's format
				var err error
				if fw, err = legacy.ConvertFirewall(fw); err != nil {
					return fmt.Errorf("its firewall cannot be restored: %w", err)
				}
			}
			if err := stage.SetFirewall(fw); err != nil {
				return fmt.Errorf("its firewall cannot be restored: %w", err)
			}
		case host.NotesFile:
			if err := stage.SetNotes(buf.String()); err != nil {
				hr.warn(pv, fmt.Sprintf("%s: notes not restored: %v", pv.Target, err))
			}
		default:
			hr.extra[pv] = append(hr.extra[pv], host.Feature{Name: "menu-items", Value: strings.Join(strings.Fields(buf.String()), " ")})
		}
		return nil
	default:
		// The empty marker, an AppVM's root image, files of other systems
		// (icons, application lists of old formats): read, and so checked,
		// but not kept.
		if base != "empty" && !isImage {
			hr.warn(pv, fmt.Sprintf("%s: %s is not restored (nothing here keeps it)", pv.Target, base))
		}
		return checkStored(f, name, limit)
	}
}

// stageTree restores a template stored whole ("vm7/.", formats 2 and 3):
// the tree goes to scratch space in the staging area, its images of
// volumes with data are adopted, the rest is dropped.
func (hr *hostRun) stageTree(pv *PlannedVM, stage *host.StagedVM, f io.Reader, name string, limit int64) error {
	scratch, err := stage.TempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	tree := filepath.Join(scratch, "tree")
	if err := sparsetar.ExtractDotTree(f, name, tree, limit); err != nil {
		return err
	}
	for _, vol := range host.SavedVolumes(pv.VM.Class, pv.VM.Volumes) {
		img := filepath.Join(tree, vol+".img")
		if _, err := os.Lstat(img); err != nil {
			continue
		}
		if slices.Contains(hr.images[pv], vol) {
			return fmt.Errorf("%w: a second image of volume %s", archive.ErrUnexpectedMember, vol)
		}
		if err := stage.AdoptImage(vol, img); err != nil {
			return err
		}
		hr.images[pv] = append(hr.images[pv], vol)
	}
	return nil
}

func (hr *hostRun) warn(pv *PlannedVM, w string) {
	hr.results[pv].Warnings = append(hr.results[pv].Warnings, w)
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
	saved := host.SavedVolumes(pv.VM.Class, pv.VM.Volumes)
	for _, vol := range pv.VM.Volumes {
		if vol.SaveOnStop && slices.Contains(saved, vol.Name) && !slices.Contains(hr.images[pv], vol.Name) {
			hr.fail(pv, fmt.Errorf("%w: VM %s: the archive has no image of its volume %s", archive.ErrIncomplete, pv.VM.Name, vol.Name))
			return
		}
	}
	hr.ready = append(hr.ready, pv)
	for progressed := true; progressed; {
		progressed = false
		for i, q := range hr.ready {
			if hr.waitsFor(q) != "" {
				continue
			}
			hr.ready = slices.Delete(hr.ready, i, i+1)
			hr.commit(q)
			progressed = true
			break
		}
	}
}

func (hr *hostRun) commit(pv *PlannedVM) {
	res := hr.results[pv]
	warns, err := hr.add(nil, pv, hr.staged[pv])
	if err != nil {
		hr.fail(pv, fmt.Errorf("VM %s could not be added: %w", pv.Target, err))
		return
	}
	res.Warnings = append(res.Warnings, warns...)
	res.Outcome = OutcomeRestored
	delete(hr.staged, pv)
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
	if hr.home != nil && !hr.home.done {
		os.RemoveAll(hr.home.tmp)
		hr.home.done = true
	}
}

// homeStage is the dom0 home being restored.
type homeStage struct {
	pv       *PlannedVM
	tmp, dir string
	done     bool
}

func (hr *hostRun) stageHome(pv *PlannedVM, f io.Reader, name string, limit int64) error {
	if hr.home != nil {
		return fmt.Errorf("%w: a second dom0 home %s", archive.ErrUnexpectedMember, name)
	}
	d0, err := hr.h.Dom0()
	if err != nil {
		return err
	}
	now := time.Now
	if hr.opts.Now != nil {
		now = hr.opts.Now
	}
	dirName := "home-restore-" + now().Format("2006-01-02-150405")
	hs := &homeStage{pv: pv, dir: filepath.Join(d0.Home, dirName), tmp: filepath.Join(d0.Home, "."+dirName+".partial")}
	if _, err := os.Lstat(hs.dir); err == nil {
		return fmt.Errorf("%s already exists", hs.dir)
	}
	if err := os.MkdirAll(d0.Home, 0o700); err != nil {
		return err
	}
	hr.home = hs
	if err := sparsetar.ExtractTree(f, name, hs.tmp, limit); err != nil {
		return err
	}
	hr.results[pv].Target = hs.dir
	return nil
}

// finishDom0 moves a complete dom0 home into place.
func (hr *hostRun) finishDom0() {
	hs := hr.home
	if hs == nil || hs.done {
		return
	}
	if err := os.Rename(hs.tmp, hs.dir); err != nil {
		hr.fail(hs.pv, fmt.Errorf("moving the dom0 home into place: %w", err))
		return
	}
	hs.done = true
	hr.results[hs.pv].Outcome = OutcomeRestored
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

// unsetGlobals lists the backup's global VM settings that db leaves unset.
func unsetGlobals(db, backed *host.DB) []host.Property {
	var out []host.Property
	if backed == nil {
		return nil
	}
	for _, p := range backed.GlobalProps() {
		if _, isDefault := db.GlobalProp(p.Name); isDefault && host.IsRefGlobal(p.Name) && p.Value != "" {
			out = append(out, p)
		}
	}
	return out
}

// applyGlobals sets the backup's global VM settings this host leaves
// unset, each on its own (one that names a VM not here is left out).
func (hr *hostRun) applyGlobals() []string {
	db, err := hr.h.Load()
	if err != nil {
		return []string{err.Error()}
	}
	var warns []string
	for _, p := range unsetGlobals(db, hr.plan.backup.DB) {
		v := hr.mapName(p.Value)
		if err := hr.h.Update(func(db *host.DB) error { return db.SetGlobalProp(p.Name, v) }); err != nil {
			warns = append(warns, fmt.Sprintf("global %s left unset: %v", p.Name, err))
		}
	}
	return warns
}

// applyDom0DefaultDispVM sets the backup's dom0 default_dispvm here (E.23,
// only when asked).
func (hr *hostRun) applyDom0DefaultDispVM() error {
	bd, err := hr.plan.backup.DB.Domain("dom0")
	if err != nil {
		return nil
	}
	v, isDefault := bd.Prop("default_dispvm")
	if isDefault {
		return nil
	}
	return hr.h.Update(func(db *host.DB) error {
		d, err := db.Domain("dom0")
		if err != nil {
			return err
		}
		return d.SetProp("default_dispvm", hr.mapName(v))
	})
}
