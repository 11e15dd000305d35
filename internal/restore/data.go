package restore

import (
	"bufio"
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
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/sparsetar"
)

// The data read for a VM (its files' decompressed inner tar streams, which
// hold no holes) may exceed its backup-size by this much: our writer's
// backup-size bounds that data, the reference writer's is an estimate of
// disk usage.
func sizeLimit(size int64) int64 { return size + size/16 + sizeSlack }

// sizeSlack is the fixed part of the margin (a variable for tests).
var sizeSlack int64 = 4 << 20

// ErrSizeLimit is wrapped by the error of a VM whose data is more than
// its backup-size allows (PlanOptions.IgnoreSizeLimit, which the
// resolution IgnoreSizeLimit sets, reads it all).
var ErrSizeLimit = errors.New("more data than the backup-size allows")

// sizeLimitError is a failure that ErrSizeLimit explains; its text is
// its own.
type sizeLimitError struct{ error }

func (e sizeLimitError) Unwrap() []error { return []error{e.error, ErrSizeLimit} }

// VMReport is what a data pass found for one VM.
type VMReport struct {
	Name string // original name; "dom0" for the home
	Path string // backup-path
	// Files read to their end, and the bytes of their inner tar streams
	// (the data, without the holes of sparse images).
	Files int
	Bytes int64
	// Err is why the VM is not proven good: a damaged file, missing files,
	// or ErrNotReached when an earlier failure stopped the pass.
	Err error
}

// OK reports whether every file of the VM was read and checked.
func (r *VMReport) OK() bool { return r.Err == nil }

// ErrNotReached: a failure before the VM's files stopped the pass.
var ErrNotReached = errors.New("not checked: the pass stopped at an earlier error")

// ErrNotProven: the VM's files were read, but the run stopped before the
// archive proved them complete (an archive with a manifest proves that at
// its end), so the VM was not added.
var ErrNotProven = errors.New("not restored: its files were read, but the restore stopped before the archive proved them complete")

// VerifyReport is the result of VerifyOnly, per restored VM in plan order.
type VerifyReport struct {
	VMs []VMReport
	// Digests are, after VerifyChain succeeded, the block digests of each
	// volume image of the newest backup, by stored name, as the chain
	// makes it: what dom0's record of a chain holds (chain.Index), so the
	// record can be rebuilt from the destination.
	Digests map[string]*chain.Digests
}

// pass is one data pass over a backup.
type pass struct {
	b       *Backup
	plan    *Plan
	vms     []*PlannedVM
	reports map[*VM]*VMReport
	used    map[*VM]int64 // stream bytes read per VM
	// images per VM: the volumes whose image came (verify, extract)
	images   map[*VM][]string
	r        progress.Reporter // through progress.Async: never on the data path
	closeRep func()            // delivers what r has queued
	stage    progress.Stage
	ctx      context.Context // of run; checked as data flows
	// ended, if set, is called when a VM's files are known to have all
	// been read: the next VM's file begins, a failure is in a later
	// VM's file, or the archive ends.
	ended   func(*PlannedVM)
	start   time.Time
	done    int64
	total   int64
	lastRep int64

	// The VMs met, as run reads: by VM, the current one (whose file came
	// last) and those known to have all their files read.
	byVM      map[*VM]*PlannedVM
	current   *VMReport
	currentPV *PlannedVM
	finished  map[*VMReport]bool
}

func newPass(b *Backup, plan *Plan, r progress.Reporter, stage progress.Stage) (*pass, error) {
	if b == nil || plan == nil || plan.backup != b {
		return nil, errors.New("restore: the plan was not made for this backup")
	}
	if err := plan.Err(); err != nil {
		return nil, err
	}
	if b.Chain != nil && !plan.chained {
		return nil, fmt.Errorf("%w of backup %s, which holds only what changed since then: restore it with its chain", ErrIncrement, b.Header.Base)
	}
	ps := &pass{b: b, plan: plan, reports: map[*VM]*VMReport{}, used: map[*VM]int64{},
		images: map[*VM][]string{}, stage: stage, start: time.Now(),
		byVM: map[*VM]*PlannedVM{}, finished: map[*VMReport]bool{}}
	if plan.opts.syncProgress {
		if r == nil {
			r = progress.Discard
		}
		ps.r, ps.closeRep = r, func() {}
	} else {
		a := progress.Async(r)
		ps.r, ps.closeRep = a, a.Close
	}
	sel := map[*VM]bool{}
	for _, pv := range plan.VMs {
		if pv.Restored() {
			ps.vms = append(ps.vms, pv)
			sel[pv.VM] = true
			ps.reports[pv.VM] = &VMReport{Name: pv.VM.Name, Path: pv.VM.Path}
			ps.byVM[pv.VM] = pv
			ps.total += pv.VM.Size
		}
	}
	if err := b.start(sel); err != nil {
		ps.closeRep()
		return nil, err
	}
	return ps, nil
}

func (ps *pass) emit(stage progress.Stage, vm, file string) {
	ps.lastRep = ps.done
	ps.r.Report(progress.Event{Stage: stage, VM: vm, File: file, Done: ps.done, Total: ps.total, Elapsed: time.Since(ps.start)})
}

// event reports a VM's start, end or failure, or a warning (vm "": about
// the whole run).
func (ps *pass) event(kind progress.Kind, vm string, err error, msg string) {
	ps.r.Report(progress.Event{Kind: kind, Stage: ps.stage, VM: vm, Done: ps.done, Total: ps.total,
		Elapsed: time.Since(ps.start), Err: err, Message: msg})
}

// outcomes reports the end of a verification or an extraction: each VM
// done, or failed with its report's error.
func (ps *pass) outcomes() {
	for _, pv := range ps.vms {
		if rep := ps.reports[pv.VM]; rep.Err != nil {
			ps.event(progress.VMFailed, pv.VM.Name, rep.Err, "")
		} else {
			ps.event(progress.VMDone, pv.VM.Name, nil, "")
		}
	}
}

// handler stores or checks one file of pv: f is its inner tar stream,
// limit bounds what it may hold.
type handler func(pv *PlannedVM, f io.Reader, name string, limit int64) error

// run reads every selected file and hands it to handle, then checks that
// the archive proved complete and that every restored VM had files. A
// cancelled ctx stops it with an error wrapping ErrCancelled.
func (ps *pass) run(ctx context.Context, handle handler) error {
	defer ps.b.Close()
	// Cancelling must also end a wait for the source (a stalled pipe, a
	// network) or for a key derivation, not only a pass whose data flows.
	defer context.AfterFunc(ctx, func() { ps.b.Close() })()
	ps.ctx = ctx
	ps.emit(progress.Preparing, "", "")
	for {
		if ctx.Err() != nil {
			return ps.fail(cancelled(ctx))
		}
		name, f, err := ps.b.reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ps.readFailed(err)
		}
		if err := ps.file(name, f, handle); err != nil {
			if ctx.Err() != nil {
				err = cancelled(ctx)
			}
			return ps.fail(err)
		}
	}
	ps.finishCurrent()
	return ps.checkEnd()
}

// file hands one file of the archive to handle, within the VM's budget,
// after checking that it belongs where it is.
func (ps *pass) file(name string, f io.Reader, handle handler) error {
	v := ps.b.owner(name)
	if v == nil {
		return fmt.Errorf("%w: %s belongs to no VM of the backup", archive.ErrUnexpectedMember, name)
	}
	pv := ps.byVM[v]
	if pv == nil {
		// Read ahead before the selection was known. Read it to its
		// end rather than let Next discard it: discarding a file whose
		// decoder still runs races inside package archive.
		if _, err := io.Copy(io.Discard, f); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	rep := ps.reports[v]
	if ps.finished[rep] {
		return fmt.Errorf("%w: %s comes after files of another VM, but VM %s's files had ended", archive.ErrUnexpectedMember, name, v.Name)
	}
	if ps.current != rep {
		ps.finishCurrent()
		ps.event(progress.VMStarted, v.Name, nil, "")
	}
	ps.current, ps.currentPV = rep, pv
	if v.Class != host.AdminVM && strings.Contains(strings.TrimPrefix(name, v.Path), "/") {
		return fmt.Errorf("%w: %s is not a file directly under %s", archive.ErrUnexpectedMember, name, v.Path)
	}
	budget := int64(1 << 62)
	// Formats 1-3 may store no backup-size (0): then there is no bound.
	if !ps.plan.opts.IgnoreSizeLimit && v.Size > 0 {
		budget = sizeLimit(v.Size)
	}
	lr := &limitedReader{r: f, ps: ps, v: v, budget: budget, name: name}
	ps.emit(ps.stage, v.Name, name)
	limit := budget
	if base, ok := strings.CutSuffix(path.Base(name), ".img"); ok && v.Class != host.AdminVM {
		if vol, ok := v.volume(base); ok {
			limit = max(limit, vol.Size)
		}
	}
	before := ps.used[v]
	if err := handle(pv, lr, name, limit); err != nil {
		if errors.Is(err, sparsetar.ErrTooLarge) && limit < 1<<62 {
			err = sizeLimitError{fmt.Errorf("%w (the VM's backup-size is %d)", err, v.Size)}
		}
		return fmt.Errorf("VM %s: %s: %w", v.Name, name, err)
	}
	rep.Files++
	rep.Bytes += ps.used[v] - before
	ps.emit(ps.stage, v.Name, name)
	return nil
}

// finishCurrent notes that the current VM's files have all been read.
func (ps *pass) finishCurrent() {
	if ps.currentPV != nil && !ps.finished[ps.current] {
		ps.finished[ps.current] = true
		if ps.ended != nil {
			ps.ended(ps.currentPV)
		}
	}
}

// readFailed is fail for a failure of the archive reader: it concerns the
// VM whose file it hit, if known; the VM before it then had all its
// files.
func (ps *pass) readFailed(err error) error {
	r := ps.b.reader
	in := r.FailedIn()
	if in != "" && ps.currentPV != nil && ps.b.owner(in) != ps.currentPV.VM || r.FailedAfterFiles() {
		ps.finishCurrent()
	}
	ps.current = nil
	if v := ps.b.owner(in); in != "" && v != nil && ps.reports[v] != nil && !ps.finished[ps.reports[v]] {
		ps.current = ps.reports[v]
	}
	return ps.fail(err)
}

// fail records err as the current VM's failure and every VM not reached
// as not checked, and returns err.
func (ps *pass) fail(err error) error {
	if errors.Is(err, archive.ErrIncomplete) {
		if names := ps.unseen(); len(names) > 0 {
			for _, pv := range ps.vms {
				if slices.Contains(names, pv.VM.Name) {
					ps.reports[pv.VM].Err = fmt.Errorf("%w: VM %s: none of its files (%s) are in the archive", archive.ErrIncomplete, pv.VM.Name, pv.VM.Path)
				}
			}
			err = fmt.Errorf("%w (VMs with none of their files in the archive: %s)", err, strings.Join(names, ", "))
		}
	}
	if ps.current != nil && ps.current.Err == nil {
		ps.current.Err = err
	}
	for _, pv := range ps.vms {
		if rep := ps.reports[pv.VM]; rep.Err == nil && !ps.finished[rep] {
			rep.Err = ErrNotReached
		}
	}
	return err
}

// checkEnd checks, at the archive's end, that every restored VM had files
// and that every file of the archive belongs to a VM of the backup (the
// reader checked the manifest, if any).
func (ps *pass) checkEnd() error {
	var errs []error
	for _, pv := range ps.vms {
		if rep := ps.reports[pv.VM]; rep.Files == 0 {
			rep.Err = fmt.Errorf("%w: VM %s: none of its files (%s) are in the archive", archive.ErrIncomplete, pv.VM.Name, pv.VM.Path)
			errs = append(errs, rep.Err)
		}
	}
	for _, seen := range ps.b.reader.Seen() {
		if seen != archive.QubesXMLName && !(seen == chain.MapName && ps.b.Chain != nil) && ps.b.owner(seen) == nil {
			errs = append(errs, fmt.Errorf("%w: %s belongs to no VM of the backup", archive.ErrUnexpectedMember, seen))
		}
	}
	return errors.Join(errs...)
}

// finish reports the end of a successful pass: all of it done.
func (ps *pass) finish() {
	ps.done = max(ps.done, ps.total)
	ps.emit(progress.Done, "", "")
}

// unseen lists the restored VMs none of whose files the reader has met.
func (ps *pass) unseen() []string {
	seen := map[*VM]bool{}
	for _, name := range ps.b.reader.Seen() {
		if v := ps.b.owner(name); v != nil {
			seen[v] = true
		}
	}
	var out []string
	for _, pv := range ps.vms {
		if !seen[pv.VM] && ps.reports[pv.VM].Files == 0 {
			out = append(out, pv.VM.Name)
		}
	}
	return out
}

// limitedReader counts a VM's stream bytes against its budget and reports
// progress.
type limitedReader struct {
	r      io.Reader
	ps     *pass
	v      *VM
	budget int64
	name   string
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if err := l.ps.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := l.r.Read(p)
	l.ps.used[l.v] += int64(n)
	l.ps.done += int64(n)
	if l.ps.used[l.v] > l.budget {
		return n, sizeLimitError{fmt.Errorf("%w: VM %s holds more data than its backup-size %d allows", archive.ErrTooLarge, l.v.Name, l.v.Size)}
	}
	if l.ps.done-l.ps.lastRep >= 1<<20 {
		l.ps.emit(l.ps.stage, l.v.Name, l.name)
	}
	return n, err
}

// VerifyOnly reads every file of the VMs the plan restores to its end
// (decrypted, authenticated, decompressed, inner tar parsed), bounds each
// VM's data by its backup-size, and proves completeness: the archive
// reader's own end checks (manifest, chunk order, a full last chunk), a
// file for every restored VM, and no file outside the backup's VMs. It
// touches no host. The report is returned even with an error; a Backup
// can be read only once. Progress goes to r through progress.Async:
// updates, VMStarted as each VM's files begin, and at the end VMDone or
// VMFailed (with its report's error) for each VM. A cancelled ctx stops
// it with an error wrapping ErrCancelled.
func VerifyOnly(ctx context.Context, b *Backup, plan *Plan, r progress.Reporter) (*VerifyReport, error) {
	ps, err := newPass(b, plan, r, progress.Verifying)
	if err != nil {
		return nil, err
	}
	defer ps.closeRep()
	return ps.verified(ps.run(ctx, ps.checkFile))
}

// verified ends a verification whose pass returned err: the images each
// VM must have, each VM's outcome, and the report.
func (ps *pass) verified(err error) (*VerifyReport, error) {
	if err == nil {
		err = ps.checkImages()
	}
	ps.outcomes()
	if err == nil {
		ps.finish()
	}
	rep := &VerifyReport{}
	for _, pv := range ps.vms {
		rep.VMs = append(rep.VMs, *ps.reports[pv.VM])
	}
	return rep, err
}

// ErrExtractDir: ExtractTo cannot use the directory (not empty, not
// creatable); it wrote nothing.
var ErrExtractDir = errors.New("cannot extract to the directory")

// extractMarker is a file in a directory being extracted to, locked by
// the extracting process: a later run that finds it unlocked knows that
// the directory holds what a killed extraction left.
const extractMarker = ".pedos-extracting"

// ExtractTo writes the restored VMs' data to dir, which must be empty or
// not exist yet (its parent must): dir/qubes.xml (the archive's), each
// VM's files as dir/<VM name>/<file name> (volumes sparse, the "empty"
// marker left out) and the dom0 home as dir/dom0-home/<user>/. It makes the
// same checks as VerifyOnly, reports progress as it does, and needs no
// host. On error, and on a panic, it removes what it wrote; an error
// wrapping ErrExtractDir means it wrote nothing.
func ExtractTo(ctx context.Context, b *Backup, plan *Plan, dir string, r progress.Reporter) error {
	return extractTo(ctx, b, nil, plan, dir, r)
}

// ExtractChain is ExtractTo for a chain, links oldest first, plan made
// for the newest: what it writes is the newest backup's files as the chain
// makes them. Each delta's base root and result root are checked as a
// restore checks them.
func ExtractChain(ctx context.Context, links []*Backup, plan *Plan, dir string, r progress.Reporter) error {
	last, err := chainPlan(links, plan)
	if err != nil {
		return err
	}
	return extractTo(ctx, last, links, plan, dir, r)
}

// extractTo is ExtractTo of b, or with links the newest of a chain.
func extractTo(ctx context.Context, b *Backup, links []*Backup, plan *Plan, dir string, r progress.Reporter) error {
	created, marker, err := prepareDir(dir)
	if err != nil {
		return err
	}
	// A flag, not the returned error, decides: a panic returns none.
	complete := false
	defer func() {
		if !complete {
			cleanDir(dir, created)
		} else {
			os.Remove(marker.Name())
		}
		marker.Close()
	}()
	if err := os.WriteFile(filepath.Join(dir, archive.QubesXMLName), b.QubesXML, 0o644); err != nil {
		return err
	}
	x := &extractor{dir: dir, version: b.Header.Version, images: map[*VM][]string{}}
	var cf *chainFiles
	if links != nil {
		cf = newChainFiles(plan, r, progress.Reading)
		x.digests = cf.digests
		if err := cf.readLinks(ctx, links, x.chained); err != nil {
			return err
		}
	}
	ps, err := newPass(b, plan, r, progress.Reading)
	if err != nil {
		return err
	}
	defer ps.closeRep()
	x.ps = ps
	for v, imgs := range x.images {
		ps.images[v] = imgs
	}
	handle := x.file
	applied := map[string]bool{}
	if cf != nil {
		cf.carryOn(ps)
		handle = cf.handler(b.Chain, applied, x.chained)
	}
	err = ps.run(ctx, handle)
	if err == nil && cf != nil {
		if err = cf.checkNewest(b.Chain, applied)(); err != nil {
			err = ps.fail(err)
		}
	}
	if err == nil {
		err = ps.checkImages()
	}
	ps.outcomes()
	if err == nil {
		ps.finish()
		complete = true
	}
	return err
}

// extractor writes the files of an extraction.
type extractor struct {
	dir     string
	version int
	ps      *pass // the newest archive's, once it runs
	// images are the volumes whose image came, per VM, until ps runs.
	images map[*VM][]string
	// digests of each image written, for a chain's deltas; nil otherwise.
	digests map[string]*chain.Digests
}

func (x *extractor) noteImage(v *VM, vol string) error {
	images := x.images
	if x.ps != nil {
		images = x.ps.images
	}
	seen := images[v]
	if err := noteImage(&seen, vol); err != nil {
		return err
	}
	images[v] = seen
	return nil
}

// chained is a chainHandler: a delta is applied to the image extracted
// before, checking its roots; any other file is extracted.
func (x *extractor) chained(pv *PlannedVM, f io.Reader, name, stored string, isDelta bool, vol *chain.Volume, limit int64) error {
	if !isDelta {
		return x.file(pv, f, name, limit)
	}
	img, err := os.OpenFile(filepath.Join(x.dir, pv.VM.Name, path.Base(stored)), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: no base image for the delta: %v", ErrBrokenChain, err)
	}
	defer img.Close()
	if err := applyDelta(img, f, name, stored, vol, x.digests, limit); err != nil {
		return err
	}
	return img.Close()
}

// file extracts one file of a VM, or the dom0 home.
func (x *extractor) file(pv *PlannedVM, f io.Reader, name string, limit int64) error {
	v := pv.VM
	if v.Class == host.AdminVM {
		parent := filepath.Join(x.dir, "dom0-home")
		if err := os.Mkdir(parent, 0o700); err != nil {
			return err
		}
		return sparsetar.ExtractTree(f, name, filepath.Join(parent, v.User), limit)
	}
	vmDir := filepath.Join(x.dir, v.Name)
	if err := os.Mkdir(vmDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	base := path.Base(name)
	switch role, vol := roleOf(v, name); {
	case role == roleTree: // a template stored whole: its files go in dir/<vm>/
		if err := os.Remove(vmDir); err != nil {
			return err
		}
		if err := sparsetar.ExtractDotTree(f, name, vmDir, limit); err != nil {
			return err
		}
		var files []string
		entries, _ := os.ReadDir(vmDir)
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, e.Name())
			}
		}
		return x.ps.treeImages(v, files)
	case role == roleImage:
		if err := x.noteImage(v, vol); err != nil {
			return err
		}
		return writeFile(filepath.Join(vmDir, base), true, func(w io.Writer) error {
			return extractImage(f, name, w.(*sparsetar.SparseWriter), limit, x.digests)
		})
	case role == roleSmall:
		content, _, err := readSmall(f, name, limit, x.version)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(vmDir, base), false, func(w io.Writer) error {
			_, err := w.Write(content)
			return err
		})
	case base == "empty":
		_, err := sparsetar.ExtractFile(f, name, io.Discard, limit)
		return err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if peekIsDir(br) { // a directory of format 1
		return sparsetar.ExtractTree(br, name, filepath.Join(vmDir, base), limit)
	}
	f = br
	return writeFile(filepath.Join(vmDir, base), strings.HasSuffix(base, ".img"), func(w io.Writer) error {
		_, err := sparsetar.ExtractFile(f, name, w, limit)
		return err
	})
}

// writeFile creates a new file and fills it, sparsely if asked.
func writeFile(dst string, sparse bool, fill func(io.Writer) error) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if sparse {
		sw := sparsetar.NewSparseWriter(out)
		if err = fill(sw); err == nil {
			err = sw.Close()
		}
	} else {
		err = fill(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// prepareDir checks that dir is empty or makes it (created says it did),
// and puts the locked marker in it.
func prepareDir(dir string) (created bool, marker *os.File, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dir, 0o700); err != nil {
			return false, nil, fmt.Errorf("%w: %v", ErrExtractDir, err)
		}
		created = true
	case err != nil:
		return false, nil, fmt.Errorf("%w: %v", ErrExtractDir, err)
	case len(entries) > 0:
		return false, nil, fmt.Errorf("%w: %s is not empty%s", ErrExtractDir, dir, leftBy(dir))
	}
	marker, err = os.OpenFile(filepath.Join(dir, extractMarker), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		err = syscall.Flock(int(marker.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		if marker != nil {
			marker.Close()
		}
		cleanDir(dir, created)
		return false, nil, fmt.Errorf("%w: %v", ErrExtractDir, err)
	}
	return created, marker, nil
}

// leftBy says who left the files of a non-empty dir, when it was an
// extraction: one that still runs holds the marker's lock.
func leftBy(dir string) string {
	f, err := os.Open(filepath.Join(dir, extractMarker))
	if err != nil {
		return ""
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil {
		return ": another extraction into it is running"
	}
	return ": it holds what an extraction that was killed left (remove them, or choose another directory)"
}

// cleanDir removes what ExtractTo wrote: dir itself if it made it, else
// its content.
func cleanDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
