package backup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/sparsetar"
)

// Result describes a finished backup.
type Result struct {
	// Location is where the backup is: the file in dom0, or in the VM;
	// "" for a command or standard output.
	Location string
	Target   Target
	BackupID string
	// VMs are the backed-up VMs in archive order (dom0, its home, last).
	VMs []string
	// Bytes is the archive's length; Data the uncompressed length of the
	// stored files' tar streams (the progress total).
	Bytes, Data int64
	Elapsed     time.Duration
	// Detection says, for an increment, how its changed blocks were found.
	Detection *Detection
	// Warnings are about things that went wrong once the backup was
	// complete, such as recording backup_timestamp.
	Warnings []string
}

// Run makes the backup the plan describes, streaming it to the target, and
// reports progress to r (which may be nil): updates, and for each VM
// VMStarted then VMDone, or VMFailed for the VM whose file failed, and the
// Result's warnings. r is called through progress.Async, never on the data
// path, and has had every event when Run returns. out receives the archive
// when the target is standard output ("-") and is unused otherwise.
//
// The files are measured again when Run starts, and the volumes kept open
// from then on, so the stored images are the committed ones of that
// moment, and backup-size bounds what is stored. On any failure or when
// ctx is cancelled (the error then wraps ErrCancelled), Run returns an
// error and leaves nothing that looks like a finished backup (except on
// standard output, which cannot be taken back). On success it sets
// backup_timestamp on every backed-up VM.
func Run(ctx context.Context, p *Plan, out io.Writer, r progress.Reporter) (*Result, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	if len(p.opts.Passphrase) == 0 {
		return nil, errors.New("backup: no passphrase given")
	}
	rep, closeRep := p.reporter(r)
	defer closeRep()
	run := &run{p: p, ctx: ctx, start: time.Now(), now: p.now()}
	run.m = &meter{r: rep, start: run.start}
	run.m.emit(progress.Preparing)
	defer run.closeItems()
	if err := run.measure(); err != nil {
		return nil, err
	}
	// The destination's ctx stops a dom0 command or a VM service when the
	// caller cancels; a failure here aborts them explicitly instead.
	dctx, stopDest := context.WithCancel(ctx)
	defer stopDest()
	if err := run.open(dctx, out); err != nil {
		return nil, err
	}
	location, err := run.end(run.write())
	if err != nil {
		if ctx.Err() != nil {
			return nil, cancelled(ctx)
		}
		return nil, fmt.Errorf("backup failed: %w", err)
	}
	return run.result(location), nil
}

// reporter is what Run and Verify report to: r through progress.Async,
// off the data path; the func delivers what is queued.
func (p *Plan) reporter(r progress.Reporter) (progress.Reporter, func()) {
	if p.opts.syncProgress {
		if r == nil {
			r = progress.Discard
		}
		return r, func() {}
	}
	a := progress.Async(r)
	return a, a.Close
}

// run is one Run of a plan, in its phases: measure, open, write, end and
// result.
type run struct {
	p          *Plan
	ctx        context.Context
	start, now time.Time
	m          *meter
	db         *host.DB                  // the host's database when Run began
	vms        []PlannedVM               // as measured now, in archive order
	items      [][]*item                 // their files, volumes open
	xml        []byte                    // the archive's qubes.xml
	chainMap   []byte                    // an increment's map (chain.MapName)
	digests    map[string]*chain.Digests // with Options.Incremental: every VM file's, for the record
	stamps     map[string]string         // with Options.Incremental: the volumes' stamps, for the record
	snaps      *snapshots                // with Options.Incremental: the volumes' reflink snapshots
	dst        output
	counted    *countingWriter
	aw         *archive.Writer
}

// measure measures the plan's VMs again, keeping their volumes open.
func (run *run) measure() error {
	db, err := run.p.h.Load()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	run.db = db
	run.vms, run.items, err = run.p.measure(run.ctx, db)
	if err != nil {
		if run.ctx.Err() != nil {
			return cancelled(run.ctx)
		}
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// content decides what the archive holds, once the archive writer has
// started (its first key derivations run meanwhile): for a chain, what
// changed; then qubes.xml and the progress total.
func (run *run) content() error {
	incomplete, err := run.chain()
	if err != nil {
		return err
	}
	if run.xml, err = archiveDB(run.db, run.vms, incomplete, run.p.opts.SelectedMetadataOnly); err != nil {
		return fmt.Errorf("making qubes.xml: %w", err)
	}
	for _, v := range run.vms {
		run.m.total += v.Data
	}
	return nil
}

// chain hashes the files of a backup asked to be incremental and, for an
// increment, keeps of them only what changed since the base. It returns
// the VMs incomplete in the archive.
func (run *run) chain() (map[string]bool, error) {
	p := run.p
	if p.Chain == nil {
		return nil, nil
	}
	var base *chain.Index
	var err error
	if p.Chain.Increment {
		if base, err = p.baseIndex(); err != nil {
			return nil, err
		}
	}
	run.snaps = takeSnapshots(run.items, p.chainKey())
	check := p.Chain.Increment && p.Chain.Depth%checkEvery == 0
	var changed func(*item)
	if base != nil {
		changed = run.expectDeltas()
	}
	if run.digests, run.stamps, err = scan(run.ctx, run.items, base, run.snaps, check, changed); err != nil {
		return nil, err
	}
	if base == nil {
		return nil, nil
	}
	items, cm, incomplete, err := increment(run.vms, run.items, run.digests, base, p.measurer(run.ctx, true))
	if err != nil {
		return nil, err
	}
	run.items, run.chainMap = items, cm.Marshal()
	return incomplete, nil
}

// expectDeltas returns what scan tells of each volume it finds changed:
// the archive writer then expects its delta, whose key derives beside
// the header's and qubes.xml's instead of after the scan (writeAll
// announces what the archive holds once it is known). An increment of a
// single chunk of changes has just those three keys to wait for, and on
// ext4 the scan of a volume takes about as long as they do.
func (run *run) expectDeltas() func(*item) {
	var mu sync.Mutex
	var likely []archive.ExpectedFile
	return func(it *item) {
		mu.Lock()
		defer mu.Unlock()
		likely = append(likely, archive.ExpectedFile{Name: deltaName(it.Name)})
		run.aw.Expect(likely...)
	}
}

func (run *run) closeItems() {
	for _, its := range run.items {
		closeItems(its)
	}
}

// open opens the destination and starts the archive writer on it.
func (run *run) open(dctx context.Context, out io.Writer) error {
	p := run.p
	dst, err := p.open(dctx, out, run.now)
	if err != nil {
		return fmt.Errorf("backup: opening the destination: %w", err)
	}
	run.dst = dst
	run.counted = &countingWriter{w: dst}
	run.aw, err = archive.NewWriter(run.counted, archive.WriterOptions{
		Passphrase:  p.opts.Passphrase,
		Compression: p.Compression,
		Params:      p.Scrypt,
		Time:        run.now,
		ChunkSize:   int(p.chunkSize()),
		MaxMemory:   p.opts.MaxMemory,
		Base:        run.base(),
	})
	if err != nil {
		dst.abort(err)
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// base is the id of the backup an increment applies to; "" when full.
func (run *run) base() string {
	if c := run.p.Chain; c != nil && c.Increment {
		return c.Base
	}
	return ""
}

// write stores everything and closes the archive writer (manifest).
func (run *run) write() error {
	ctx := run.ctx
	stopWatch := context.AfterFunc(ctx, func() { run.aw.Abort(cancelled(ctx)) })
	defer stopWatch()
	err := run.content()
	if err == nil {
		err = writeAll(ctx, run.aw, run.xml, run.chainMap, run.vms, run.items, run.m, run.now)
	}
	if err == nil {
		run.m.emit(progress.Finishing)
		err = run.aw.Close()
	}
	if err == nil {
		err = ctx.Err() // the last moment a cancel can still stop it
	}
	return err
}

// end commits the destination after a write that succeeded, else aborts
// it; it returns where the backup is, or why it failed: the destination's
// own account of a failure it caused (a command that broke the pipe) when
// it has one.
func (run *run) end(err error) (location string, _ error) {
	if err == nil {
		return run.dst.commit()
	}
	run.aw.Abort(err)
	run.aw.Close()
	if run.snaps != nil {
		run.snaps.discard()
	}
	if derr := run.dst.abort(err); derr != nil && run.ctx.Err() == nil {
		err = derr
	}
	return "", err
}

// result describes the finished backup, records backup_timestamp and
// reports the end.
func (run *run) result(location string) *Result {
	p, m := run.p, run.m
	res := &Result{
		Location: location,
		Target:   p.Target,
		BackupID: run.aw.Header().BackupID,
		Bytes:    run.counted.n.Load(),
		Data:     m.total,
		Elapsed:  time.Since(run.start),
	}
	for _, v := range run.vms {
		res.VMs = append(res.VMs, v.Name)
	}
	if p.Target.Kind == ToFile && location != p.Target.Path {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s was created by someone else meanwhile; the backup is %s", p.Target.Path, location))
	}
	if p.Chain != nil {
		res.Warnings = append(res.Warnings, run.snaps.warnings...)
		if p.Chain.Increment {
			found := run.snaps.found
			res.Detection = &found
		}
		if err := p.saveIndex(res.BackupID, run.digests, run.stamps); err != nil {
			res.Warnings = append(res.Warnings, "the backup is complete, but recording it as the base of the next increment failed, so the next backup will be full: "+err.Error())
			run.snaps.discard()
		} else if err := run.snaps.publish(res.BackupID, cmp.Or(p.Chain.Full, res.BackupID)); err != nil {
			res.Warnings = append(res.Warnings, "the backup is complete, but keeping the snapshots of its volumes failed, so the next increment hashes them whole: "+err.Error())
		}
	}
	if err := setTimestamps(p.h, res.VMs, run.now); err != nil {
		res.Warnings = append(res.Warnings, "the backup is complete, but recording backup_timestamp failed: "+err.Error())
	}
	m.done, m.cur, m.vm, m.file = m.total, 0, "", ""
	for _, w := range res.Warnings {
		m.event(progress.Warning, "", nil, w)
	}
	m.emit(progress.Done)
	return res
}

// measure lists and measures the plan's VMs again, in archive order (by
// name, the dom0 home last), keeping the volumes open.
func (p *Plan) measure(ctx context.Context, db *host.DB) ([]PlannedVM, [][]*item, error) {
	names := make([]string, 0, len(p.VMs))
	for _, v := range p.VMs {
		names = append(names, v.Name)
	}
	slices.SortFunc(names, dom0Last)
	m := p.measurer(ctx, true)
	var vms []PlannedVM
	var items [][]*item
	for _, name := range names {
		v, its, _, err := measureVM(m, db, name)
		if err != nil {
			return vms, items, fmt.Errorf("%s: %w", name, err)
		}
		vms = append(vms, v)
		items = append(items, its)
	}
	return vms, items, nil
}

func dom0Last(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "dom0":
		return 1
	case b == "dom0":
		return -1
	}
	if a < b {
		return -1
	}
	return 1
}

// writeAll stores qubes.xml, an increment's map and every file, VM by VM.
//
// The map comes before the data, so that a restore knows how to apply
// each delta as it streams past. It rides in qubes.xml's member when the
// two fit the 1 MiB that member may take, as they do unless the map lists
// tens of thousands of extents: a member of its own would cost a key
// derivation, a quarter of what a small increment spends.
func writeAll(ctx context.Context, aw *archive.Writer, xml, chainMap []byte, vms []PlannedVM, items [][]*item, m *meter, now time.Time) error {
	mapAlone := chainMap != nil && !aw.CompanionFits(xml, archive.Companion{Name: chain.MapName, Data: chainMap})
	expected := []archive.ExpectedFile{{Name: archive.QubesXMLName, Size: int64(len(xml))}}
	if mapAlone {
		expected = append(expected, archive.ExpectedFile{Name: chain.MapName, Size: int64(len(chainMap))})
	}
	for _, its := range items {
		for _, it := range its {
			expected = append(expected, archive.ExpectedFile{Name: it.Name, Size: it.Data})
		}
	}
	aw.Expect(expected...)
	var err error
	switch {
	case chainMap == nil:
		err = aw.AddBytes(archive.QubesXMLName, xml)
	case mapAlone:
		if err = aw.AddBytes(archive.QubesXMLName, xml); err == nil {
			err = aw.AddBytes(chain.MapName, chainMap)
		}
	default:
		err = aw.AddQubesXML(xml, archive.Companion{Name: chain.MapName, Data: chainMap})
	}
	if err != nil {
		return err
	}
	for i, v := range vms {
		m.event(progress.VMStarted, v.Name, nil, "")
		for _, it := range items[i] {
			if err := writeItem(ctx, aw, it, m, now); err != nil {
				m.event(progress.VMFailed, v.Name, err, "")
				return err
			}
		}
		m.event(progress.VMDone, v.Name, nil, "")
	}
	return nil
}

// writeItem stores one file as its inner tar stream.
func writeItem(ctx context.Context, aw *archive.Writer, it *item, m *meter, now time.Time) error {
	m.begin(it)
	err := aw.AddFile(it.Name, func(w io.Writer) error {
		tw := sparsetar.NewWriter(&progressWriter{ctx: ctx, w: w, m: m})
		var err error
		switch it.kind {
		case volumeFile:
			_, err = tw.AddVolume(it.Name, it.f)
		case smallFile:
			err = tw.AddBytes(it.Name, it.content, it.mode, it.mtime)
		case emptyFile:
			err = tw.AddBytes(it.Name, nil, 0o644, now)
		case homeTree:
			err = tw.AddTree(it.Name, it.Source)
		case deltaFile:
			_, err = tw.AddExtents(it.Name, it.f, it.size, it.runs, it.mtime)
		}
		if err != nil {
			return err
		}
		return tw.Close()
	})
	it.close()
	if err != nil {
		return err
	}
	m.end(it)
	return nil
}

// setTimestamps records the backup's time on each backed-up VM, dom0
// included. A VM removed meanwhile is skipped.
func setTimestamps(h *host.Host, vms []string, t time.Time) error {
	ts := strconv.FormatInt(t.Unix(), 10)
	return h.Update(func(db *host.DB) error {
		for _, name := range vms {
			d, err := db.Domain(name)
			if err != nil {
				continue
			}
			if err := d.SetProp("backup_timestamp", ts); err != nil {
				return err
			}
		}
		return nil
	})
}

// reportEvery is how much data passes between progress events.
const reportEvery = 1 << 20

// meter turns bytes written into progress events. Done counts each
// file's tar stream up to its measured length, and the full length once
// it is stored, so Done never decreases and ends at Total.
type meter struct {
	r          progress.Reporter
	start      time.Time
	stage      progress.Stage // the last one reported
	vm, file   string
	total      int64
	done       int64 // finished files
	cur, limit int64 // the current file
	reported   int64
}

func (m *meter) emit(stage progress.Stage) {
	m.reported = m.done + m.cur
	m.stage = stage
	m.r.Report(progress.Event{Stage: stage, VM: m.vm, File: m.file, Done: m.reported, Total: m.total, Elapsed: time.Since(m.start)})
}

// event reports a VM's start, end or failure, or a warning.
func (m *meter) event(kind progress.Kind, vm string, err error, msg string) {
	m.r.Report(progress.Event{Kind: kind, Stage: m.stage, VM: vm, Done: m.done + m.cur, Total: m.total,
		Elapsed: time.Since(m.start), Err: err, Message: msg})
}

func (m *meter) begin(it *item) {
	m.vm, m.file, m.cur, m.limit = it.vm, it.Name, 0, it.Data
	m.emit(progress.Writing)
}

func (m *meter) add(n int) {
	m.cur = min(m.cur+int64(n), m.limit)
	if m.done+m.cur-m.reported >= reportEvery {
		m.emit(progress.Writing)
	}
}

func (m *meter) end(it *item) {
	m.done += it.Data
	m.cur = 0
	m.emit(progress.Writing)
}

// progressWriter is the input of a file's compressor: it counts for the
// meter and stops the file when ctx is cancelled.
type progressWriter struct {
	ctx context.Context
	w   io.Writer
	m   *meter
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	if err := pw.ctx.Err(); err != nil {
		return 0, cancelled(pw.ctx)
	}
	n, err := pw.w.Write(b)
	pw.m.add(n)
	return n, err
}

// countingWriter counts the archive's bytes; the emitter goroutine writes.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
