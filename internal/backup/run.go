package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"pedos.dev/backup/internal/archive"
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
	// Warnings are about things that went wrong once the backup was
	// complete, such as recording backup_timestamp.
	Warnings []string
}

// ErrCancelled is wrapped by Run's error when ctx was cancelled.
var ErrCancelled = errors.New("backup cancelled")

// Run makes the backup the plan describes, streaming it to the target, and
// reports progress to r (which may be nil). out receives the archive when
// the target is standard output ("-") and is unused otherwise.
//
// The files are measured again when Run starts, and the volumes kept open
// from then on, so the stored images are the committed ones of that
// moment, and backup-size bounds what is stored. On any failure or when
// ctx is cancelled, Run returns an error and leaves nothing that looks like
// a finished backup (except on standard output, which cannot be taken
// back). On success it sets backup_timestamp on every backed-up VM.
func Run(ctx context.Context, p *Plan, out io.Writer, r progress.Reporter) (*Result, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	if len(p.opts.Passphrase) == 0 {
		return nil, errors.New("backup: no passphrase given")
	}
	if r == nil {
		r = progress.Discard
	}
	start := time.Now()
	now := p.now()
	m := &meter{r: r, start: start}
	m.emit(progress.Preparing)

	db, err := p.h.Load()
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	vms, items, err := p.measure(db)
	defer func() {
		for _, its := range items {
			closeItems(its)
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	xml, err := archiveDB(db, vms, p.opts.SelectedMetadataOnly)
	if err != nil {
		return nil, fmt.Errorf("backup: making qubes.xml: %w", err)
	}
	for _, v := range vms {
		m.total += v.Data
	}

	// The destination's ctx stops a dom0 command or a VM service when the
	// caller cancels; a failure here aborts them explicitly instead.
	dctx, stopDest := context.WithCancel(ctx)
	defer stopDest()
	dst, err := p.open(dctx, out, now)
	if err != nil {
		return nil, fmt.Errorf("backup: opening the destination: %w", err)
	}
	counted := &countingWriter{w: dst}
	aw, err := archive.NewWriter(counted, archive.WriterOptions{
		Passphrase:  p.opts.Passphrase,
		Compression: p.Compression,
		Params:      p.Scrypt,
		Time:        now,
		ChunkSize:   int(p.chunkSize()),
		MaxMemory:   p.opts.MaxMemory,
	})
	if err != nil {
		dst.abort(err)
		return nil, fmt.Errorf("backup: %w", err)
	}
	stopWatch := context.AfterFunc(ctx, func() { aw.Abort(fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))) })
	err = writeAll(ctx, aw, xml, vms, items, m, now)
	if err == nil {
		m.emit(progress.Finishing)
		err = aw.Close()
	}
	stopWatch()
	if err == nil {
		err = ctx.Err() // the last moment a cancel can still stop it
	}
	var location string
	if err == nil {
		location, err = dst.commit()
	} else {
		aw.Abort(err)
		aw.Close()
		if derr := dst.abort(err); derr != nil && ctx.Err() == nil {
			err = derr // e.g. the command that broke the pipe, and why
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
		}
		return nil, fmt.Errorf("backup failed: %w", err)
	}

	res := &Result{
		Location: location,
		Target:   p.Target,
		BackupID: aw.Header().BackupID,
		Bytes:    counted.n.Load(),
		Data:     m.total,
		Elapsed:  time.Since(start),
	}
	for _, v := range vms {
		res.VMs = append(res.VMs, v.Name)
	}
	if p.Target.Kind == ToFile && location != p.Target.Path {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s was created by someone else meanwhile; the backup is %s", p.Target.Path, location))
	}
	if err := setTimestamps(p.h, res.VMs, now); err != nil {
		res.Warnings = append(res.Warnings, "the backup is complete, but recording backup_timestamp failed: "+err.Error())
	}
	m.done, m.cur, m.vm, m.file = m.total, 0, "", ""
	m.emit(progress.Done)
	return res, nil
}

// measure lists and measures the plan's VMs again, in archive order (by
// name, the dom0 home last), keeping the volumes open.
func (p *Plan) measure(db *host.DB) ([]PlannedVM, [][]*item, error) {
	names := make([]string, 0, len(p.VMs))
	for _, v := range p.VMs {
		names = append(names, v.Name)
	}
	slices.SortFunc(names, dom0Last)
	m := p.measurer(true)
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

// writeAll stores qubes.xml and every file.
func writeAll(ctx context.Context, aw *archive.Writer, xml []byte, vms []PlannedVM, items [][]*item, m *meter, now time.Time) error {
	names := []string{archive.QubesXMLName}
	for _, its := range items {
		for _, it := range its {
			names = append(names, it.Name)
		}
	}
	aw.Expect(names...)
	if err := aw.AddBytes(archive.QubesXMLName, xml); err != nil {
		return err
	}
	for i := range vms {
		for _, it := range items[i] {
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
		}
	}
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
	vm, file   string
	total      int64
	done       int64 // finished files
	cur, limit int64 // the current file
	reported   int64
}

func (m *meter) emit(stage progress.Stage) {
	m.reported = m.done + m.cur
	m.r.Report(progress.Event{Stage: stage, VM: m.vm, File: m.file, Done: m.reported, Total: m.total, Elapsed: time.Since(m.start)})
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
		return 0, fmt.Errorf("%w: %w", ErrCancelled, context.Cause(pw.ctx))
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
