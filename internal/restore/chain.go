package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/sparsetar"
)

// Restoring a chain (doc/incremental.md): a full backup and the
// increments after it, each an ordinary archive read once, oldest first.
// The newest archive's qubes.xml and the plan made from it say which VMs
// are restored and how; the files those VMs have in the newest backup are
// gathered from the archives that hold them. The older archives' files
// are staged as a restore stages any file, each increment's deltas are
// applied to the staged images (each checked against its base's root
// first and its result's root after), and the newest archive's pass then
// runs as a plain restore's: its VMs are added, all or nothing, once it
// has proved itself complete. Nothing reaches the host's VMs before that.

// ErrBrokenChain: the archives given are not one chain in order: a full
// backup, then each increment on the archive before it.
var ErrBrokenChain = errors.New("broken backup chain")

// CheckChain checks that links, oldest first, are one chain: a full
// backup, then increments each based on the archive before it. An
// increment missing, reordered, skipped or from another chain (made with
// the same passphrase) fails here, before anything is written.
func CheckChain(links []*Backup) error {
	if len(links) == 0 {
		return fmt.Errorf("%w: no archives", ErrBrokenChain)
	}
	if first := links[0]; first.Chain != nil {
		return fmt.Errorf("%w: %s is an increment of %s, not a full backup: the chain's start is missing", ErrBrokenChain, first.Header.BackupID, first.Header.Base)
	}
	for i, l := range links[1:] {
		prev := links[i].Header.BackupID
		switch {
		case l.Chain == nil:
			return fmt.Errorf("%w: %s is a full backup, not an increment of %s", ErrBrokenChain, l.Header.BackupID, prev)
		case l.Header.Base != prev:
			return fmt.Errorf("%w: increment %s applies to backup %s, but the archive before it is %s: an increment is missing, out of order or from another chain", ErrBrokenChain, l.Header.BackupID, l.Header.Base, prev)
		}
	}
	return nil
}

// RestoreChain restores the newest backup of a chain into h: links are
// the chain's archives, opened, oldest (the full backup) first; plan was
// made for the newest. It is Restore for a chain: the same checks,
// options, result and progress (the older archives' files count towards
// one total with the newest's), and the same all-or-nothing rule.
func RestoreChain(ctx context.Context, h *host.Host, links []*Backup, plan *Plan, opts Options, r progress.Reporter) (*Result, error) {
	last, err := chainPlan(links, plan)
	if err != nil {
		return nil, err
	}
	return restore(ctx, h, last, plan, opts, r, func(hr *hostRun, r progress.Reporter) error { return hr.stageChain(ctx, links, r) })
}

// chainPlan checks the chain and that plan was made for its newest
// archive, which it returns; the plan's pass then takes an increment.
func chainPlan(links []*Backup, plan *Plan) (*Backup, error) {
	if err := CheckChain(links); err != nil {
		return nil, err
	}
	last := links[len(links)-1]
	if plan.backup != last {
		return nil, errors.New("restore: the plan was not made for the chain's newest archive")
	}
	plan.chained = true
	return last, nil
}

// Chain is an increment's chain, opened: its archives oldest first (the
// increment given last), and their sources.
type Chain struct {
	Links   []*Backup
	sources []*Source // of the older archives; nil where none was opened
	// buffers are the chunk buffers the older archives share, each
	// taking them in turn (readLinks).
	buffers *archive.BufferPool
	// ahead derives the increments' chunk keys while the full backup is
	// read; nil when they are not local files.
	ahead *archive.KeysAhead
}

// Close closes every archive of the chain but the increment (its caller
// opened it) and their sources.
func (c *Chain) Close() {
	if c.ahead != nil {
		c.ahead.Close()
		c.ahead = nil
	}
	for _, l := range c.Links[:len(c.Links)-1] {
		if l != nil {
			l.Close()
		}
	}
	for _, s := range c.sources {
		if s != nil {
			s.Close()
		}
	}
	c.buffers.Drain()
}

// OpenChain finds (ChainOf) and opens, with opts, the older archives of
// the chain of newest, an increment opened from loc, and checks the
// chain's order from their authenticated headers (CheckChain). Each
// opening derives the archive's first keys.
//
// The older archives share one pool of chunk buffers, so that each can
// start reading while the one before it drains (readLinks) and the chain
// holds no more buffers than one archive would. The increments open
// lazily (OpenOptions.Lazy), all at once, and first: opening reads their
// qubes.xml through the pool, which the full backup, opened last and
// reading ahead (it is read first), then fills. Each opening waits on two
// key derivations (header and qubes.xml); side by side, an increment's
// share the cores' lanes with the others' instead of leaving a core idle.
func OpenChain(ctx context.Context, newest *Backup, loc Location, sopts SourceOptions, opts OpenOptions) (*Chain, error) {
	if newest.Chain == nil {
		return nil, errors.New("restore: the backup is not an increment")
	}
	locs, err := ChainOf(ctx, loc, newest.Header.Base, sopts)
	if err != nil {
		return nil, err
	}
	c := &Chain{Links: make([]*Backup, len(locs), len(locs)+1), buffers: &archive.BufferPool{}}
	c.Links = append(c.Links, newest) // what Close leaves open
	opts.buffers = c.buffers
	sources := make([]*Source, len(locs))
	errs := make([]error, len(locs))
	open := func(i int) {
		if sources[i], errs[i] = OpenSource(ctx, locs[i], sopts); errs[i] == nil {
			o := opts
			o.Lazy = i > 0
			c.Links[i], errs[i] = sources[i].Open(ctx, o)
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < len(locs); i++ {
		wg.Go(func() { open(i) })
	}
	wg.Wait()
	if errors.Join(errs...) == nil {
		open(0)
	}
	c.sources = sources
	for i := len(locs) - 1; i >= 0; i-- {
		if errs[i] != nil {
			c.Close()
			return nil, fmt.Errorf("opening %s of the chain: %w", locs[i].Path, errs[i])
		}
	}
	if err := CheckChain(c.Links); err != nil {
		c.Close()
		return nil, err
	}
	c.deriveAhead(append(locs, loc), opts)
	return c, nil
}

// deriveAhead has the increments' chunk keys derived in the lanes the full
// backup's derivations leave free (archive.KeysAhead), in memory lent by
// the full backup's reader, when the increments are local files: the
// full backup's keys come one at a time, each as its chunk arrives, and
// leave a lane free beside each.
func (c *Chain) deriveAhead(locs []Location, opts OpenOptions) {
	base, ok := c.Links[0].reader.(format4)
	if !ok {
		return
	}
	var files []archive.AheadFile
	var readers []*archive.Reader
	for i, l := range c.Links[1:] {
		f4, ok := l.reader.(format4)
		if !ok || locs[i+1].Kind() != FromFile {
			continue
		}
		files = append(files, archive.AheadFile{Path: locs[i+1].Path, BackupID: l.Header.BackupID})
		readers = append(readers, f4.r)
	}
	if len(files) == 0 {
		return
	}
	c.ahead = archive.DeriveAhead(files, opts.Passphrase, opts.Limits, base.r.SpareDerivation)
	for _, r := range readers {
		r.UseKeysAhead(c.ahead)
	}
}

// needs lists, for each archive of the chain but the newest, the files the
// restore needs of the backup it made: each the files the next archive
// changes or keeps, of those needed of it. Of the newest backup, the
// files of the restored VMs are needed.
func needs(links []*Backup, restored []string) []map[string]bool {
	out := make([]map[string]bool, len(links))
	needed := func(name string) bool {
		return slices.ContainsFunc(restored, func(p string) bool { return strings.HasPrefix(name, p) })
	}
	for i := len(links) - 1; i > 0; i-- {
		out[i-1] = map[string]bool{}
		for _, name := range links[i].Chain.Files() {
			if needed(name) {
				out[i-1][name] = true
			}
		}
		next := out[i-1]
		needed = func(name string) bool { return next[name] }
	}
	return out
}

// chainFiles is what a chain's restore or verification knows of the
// files it has so far.
type chainFiles struct {
	byPath map[string]*PlannedVM // restored VMs by backup-path
	staged map[string]bool       // files staged (or checked) so far, by stored name
	// carried counts the files and bytes each VM had from the older
	// archives.
	carried map[*PlannedVM]VMReport
	// digests of each image staged, by stored name, computed as it was
	// written and kept up to date by each delta: a delta's base root and
	// result root are checked without reading the image again.
	digests map[string]*chain.Digests

	// Progress while the older archives are read: r gets an event per
	// file and per MiB. done counts the stream bytes read; total is the
	// backup-size of what all the archives give, the newest's included,
	// so that the newest's pass goes on from done towards the same total.
	r                    progress.Reporter
	stage                progress.Stage
	start                time.Time
	done, total, lastRep int64
}

func newChainFiles(plan *Plan, r progress.Reporter, stage progress.Stage) *chainFiles {
	cf := &chainFiles{byPath: map[string]*PlannedVM{}, staged: map[string]bool{}, carried: map[*PlannedVM]VMReport{},
		digests: map[string]*chain.Digests{}, r: r, stage: stage, start: time.Now()}
	if cf.r == nil {
		cf.r = progress.Discard
	}
	for _, pv := range plan.Restored() {
		if pv.VM.Class != host.AdminVM {
			cf.byPath[pv.VM.Path] = pv
		}
		cf.total += pv.VM.Size
	}
	return cf
}

// emit reports the reading of the older archives.
func (cf *chainFiles) emit(vm, file string) {
	cf.lastRep = cf.done
	cf.r.Report(progress.Event{Stage: cf.stage, VM: vm, File: file, Done: cf.done, Total: cf.total, Elapsed: time.Since(cf.start)})
}

// carryOn makes the newest archive's pass go on with the progress of the
// older ones and count their files.
func (cf *chainFiles) carryOn(ps *pass) {
	ps.done, ps.total, ps.start = cf.done, cf.total, cf.start
	for pv, n := range cf.carried {
		rep := ps.reports[pv.VM]
		rep.Files += n.Files
		rep.Bytes += n.Bytes
	}
}

// needs is needs() for the plan's restored VMs.
func (cf *chainFiles) needs(links []*Backup) []map[string]bool {
	var restored []string
	for p := range cf.byPath {
		restored = append(restored, p)
	}
	return needs(links, restored)
}

// chainHandler handles one file of a chain's archive whose map is m:
// whole (stored whole) or a delta of the file stored (isDelta).
type chainHandler func(pv *PlannedVM, f io.Reader, name, stored string, isDelta bool, v *chain.Volume, limit int64) error

// handler turns a chainHandler into a pass's handler: it checks each
// file against the map m and the files staged so far, and notes in
// applied the files it stored or changed.
func (cf *chainFiles) handler(m *chain.Map, applied map[string]bool, do chainHandler) handler {
	return func(pv *PlannedVM, f io.Reader, name string, limit int64) error {
		stored, isDelta := strings.CutSuffix(name, ".delta")
		var vol *chain.Volume
		switch {
		case !isDelta && m != nil && slices.Contains(m.Files(), name):
			return fmt.Errorf("%w: stored whole, but its map changes or keeps it", ErrBadMetadata)
		case !isDelta && cf.staged[name]:
			return fmt.Errorf("%w: a file a backup before this one holds already", ErrBrokenChain)
		case isDelta:
			if m != nil {
				for i := range m.Volumes {
					if m.Volumes[i].Name == stored {
						vol = &m.Volumes[i]
					}
				}
			}
			if vol == nil || applied[stored] {
				return fmt.Errorf("%w: a delta its map does not describe, or a second one", ErrBadMetadata)
			}
			if !cf.staged[stored] {
				return fmt.Errorf("%w: no base image for the delta", ErrBrokenChain)
			}
		}
		if err := do(pv, f, name, stored, isDelta, vol, limit); err != nil {
			return err
		}
		cf.staged[stored], applied[stored] = true, true
		return nil
	}
}

// check says whether the backup of an archive has the file name it needs:
// stored whole in it or changed by one of its deltas (applied), or kept
// from a backup before it, that had it.
func (cf *chainFiles) check(m *chain.Map, name string, applied map[string]bool) error {
	switch {
	case applied[name]:
		return nil
	case m != nil && slices.Contains(m.Keep, name):
		if cf.staged[name] {
			return nil
		}
		return fmt.Errorf("%w: %s is kept from a backup before it, which does not have it", ErrBrokenChain, elide.Quote(name))
	case m != nil && slices.ContainsFunc(m.Volumes, func(v chain.Volume) bool { return v.Name == name }):
		return fmt.Errorf("%w: its map changes %s, but it has no delta of it", ErrBrokenChain, elide.Quote(name))
	}
	return fmt.Errorf("%w: %s, which the next increment changes or keeps, is not in it", ErrBrokenChain, elide.Quote(name))
}

// checkNewest returns the check, after the newest archive's pass, that
// every file of a restored VM its map changes or keeps was there (none
// when the chain is a full backup alone, with no map).
func (cf *chainFiles) checkNewest(m *chain.Map, applied map[string]bool) func() error {
	return func() error {
		if m == nil {
			return nil
		}
		for _, name := range m.Files() {
			if cf.byPath[path.Dir(name)+"/"] == nil {
				continue
			}
			if err := cf.check(m, name, applied); err != nil {
				return err
			}
		}
		return nil
	}
}

// readLinks reads every archive of the chain but the newest, oldest
// first, handing each file the newest backup needs to do.
func (cf *chainFiles) readLinks(ctx context.Context, links []*Backup, do chainHandler) error {
	need := cf.needs(links)
	for i, l := range links[:len(links)-1] {
		for v := range l.selectedBy(need[i]) {
			cf.total += v.Size
		}
	}
	cf.emit("", "")
	older := links[:len(links)-1]
	started := make([]chan error, len(older))
	for i, l := range older {
		started[i] = make(chan error, 1)
		if i == 0 {
			started[i] <- l.start(l.selectedBy(need[i]))
		} else {
			go startAfter(older[i-1], l, need[i], started[i])
		}
	}
	for i, l := range older {
		if err := cf.readLink(ctx, l, need[i], started[i], do); err != nil {
			return fmt.Errorf("archive %s of the chain: %w", l.Header.BackupID, err)
		}
	}
	// The older archives' chunk buffers (hundreds of MiB) are idle now:
	// let them go and collect them before the newest archive allocates
	// its own, so that a chain peaks as its largest archive does.
	if len(older) > 0 {
		older[0].buffers.Drain()
		runtime.GC()
	}
	return nil
}

// startAfter starts the data pass of next, wanting the files in want, as
// soon as prev has read its whole input, and sends how that went. Its
// first key derivations then run while prev's last chunks are still being
// decompressed and applied, on cores prev no longer needs; sharing prev's
// buffer pool, it takes only the buffers prev gives back. Archives with
// buffers of their own (not opened by OpenChain) take turns whole: next
// starts once prev is closed, as it is too on a failure.
func startAfter(prev, next *Backup, want map[string]bool, started chan<- error) {
	ahead := prev.inputRead
	if prev.buffers == nil || prev.buffers != next.buffers {
		ahead = nil // never ready
	}
	select {
	case <-ahead:
	case <-prev.closed:
	}
	// The garbage prev's reading left (decompressor state, dropped
	// buffers) would pile up beside the pool's live buffers until the
	// heap doubled them: collect it before next takes over.
	runtime.GC()
	started <- next.start(next.selectedBy(want))
}

// readLink reads one older archive of the chain: the files in want go to
// do, every other file is read (and so authenticated) and dropped; started
// says how starting its data pass went.
func (cf *chainFiles) readLink(ctx context.Context, b *Backup, want map[string]bool, started <-chan error, do chainHandler) error {
	defer b.Close()
	defer context.AfterFunc(ctx, func() { b.Close() })()
	var err error
	select {
	case err = <-started:
	case <-ctx.Done():
		return cancelled(ctx)
	}
	if err != nil {
		return err
	}
	applied := map[string]bool{}
	handle := cf.handler(b.Chain, applied, do)
	for {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		name, f, err := b.reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		stored, _ := strings.CutSuffix(name, ".delta")
		pv := cf.byPath[path.Dir(stored)+"/"]
		if !want[stored] || pv == nil {
			if _, err := io.Copy(io.Discard, f); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			continue
		}
		cf.emit(pv.VM.Name, name)
		counted := &countingReader{r: f, read: func(n int) {
			if cf.done += int64(n); cf.done-cf.lastRep >= 1<<20 {
				cf.emit(pv.VM.Name, name)
			}
		}}
		if err := handle(pv, counted, name, 1<<62); err != nil {
			return fmt.Errorf("VM %s: %s: %w", pv.VM.Name, name, err)
		}
		n := cf.carried[pv]
		n.Files++
		n.Bytes += counted.n
		cf.carried[pv] = n
	}
	for name := range want {
		if err := cf.check(b.Chain, name, applied); err != nil {
			return err
		}
	}
	return nil
}

// stageChain stages, from every archive but the newest, the files the
// newest backup's restored VMs need, and sets the newest archive's pass
// to apply its deltas too.
func (hr *hostRun) stageChain(ctx context.Context, links []*Backup, r progress.Reporter) error {
	cf := newChainFiles(hr.plan, r, progress.Reading)
	hr.chainFiles = cf
	if err := cf.readLinks(ctx, links, hr.stageChained); err != nil {
		return err
	}
	last := links[len(links)-1].Chain
	applied := map[string]bool{}
	hr.handle = cf.handler(last, applied, hr.stageChained)
	hr.chainDone = cf.checkNewest(last, applied)
	return nil
}

// stageChained stages a file of a chain's archive: a delta is applied to
// the image staged before, any other file is staged as a restore stages it.
func (hr *hostRun) stageChained(pv *PlannedVM, f io.Reader, name, stored string, isDelta bool, vol *chain.Volume, limit int64) error {
	if !isDelta {
		return hr.file(pv, f, name, limit)
	}
	stage := hr.staged[pv]
	if stage == nil {
		return fmt.Errorf("%w: no base image for the delta", ErrBrokenChain)
	}
	img, err := stage.OpenImage(strings.TrimSuffix(path.Base(stored), ".img"))
	if err != nil {
		return fmt.Errorf("%w: no base image for the delta: %v", ErrBrokenChain, err)
	}
	defer img.Close()
	return applyDelta(img, f, name, stored, vol, hr.chainFiles.digests, limit)
}

// applyDelta applies the delta stored as name (of the image stored) to
// img, the image the chain has made so far: its base root is checked
// against digests[stored] first and its result root after, and
// digests[stored] becomes the result's.
func applyDelta(img *os.File, f io.Reader, name, stored string, vol *chain.Volume, digests map[string]*chain.Digests, limit int64) error {
	a, err := chain.Begin(img, *vol, digests[stored])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBrokenChain, err)
	}
	if _, err := sparsetar.ExtractFile(f, name, a, max(limit, vol.Size)); err != nil {
		return err
	}
	digests[stored], err = a.Finish()
	return err
}

// extractImage extracts the image stored as name into sw; with digests
// (a chain's), it keeps the image's block digests there, which its later
// deltas check and update.
func extractImage(f io.Reader, name string, sw *sparsetar.SparseWriter, limit int64, digests map[string]*chain.Digests) error {
	if digests == nil {
		_, err := sparsetar.ExtractFile(f, name, sw, limit)
		return err
	}
	hw := &hashingWriter{sw: sw, h: chain.NewHasher()}
	if _, err := sparsetar.ExtractFile(f, name, hw, limit); err != nil {
		return err
	}
	digests[name] = hw.h.Digests()
	return nil
}

// hashingWriter is what a chain's image is extracted into: the staged
// image's SparseWriter, and a Hasher for its digests.
type hashingWriter struct {
	sw *sparsetar.SparseWriter
	h  *chain.Hasher
}

func (w *hashingWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	return w.sw.Write(p)
}

func (w *hashingWriter) Skip(n int64) error {
	w.h.Skip(n)
	return w.sw.Skip(n)
}

// VerifyChain is VerifyOnly for a chain, links oldest first, plan made for
// the newest: it reads every archive to its end (each authenticated and
// proved complete) and checks that the chain makes the newest backup's
// files, with no scratch space: it follows each image by its block
// digests (32 bytes per 64 KiB), applies each delta to those, and checks
// the base's and the result's roots, as a restore would. Progress counts
// all the archives towards one total.
func VerifyChain(ctx context.Context, links []*Backup, plan *Plan, r progress.Reporter) (*VerifyReport, error) {
	last, err := chainPlan(links, plan)
	if err != nil {
		return nil, err
	}
	a := progress.Async(r)
	defer a.Close()
	cf := newChainFiles(plan, a, progress.Verifying)
	cv := &chainVerify{digests: cf.digests, images: map[*PlannedVM][]string{}}
	linkErr := cf.readLinks(ctx, links, cv.check)
	ps, err := newPass(last, plan, a, progress.Verifying)
	if err != nil {
		return nil, errors.Join(linkErr, err)
	}
	defer ps.closeRep()
	cf.carryOn(ps)
	for pv := range cf.carried {
		ps.images[pv.VM] = cv.images[pv]
	}
	applied := map[string]bool{}
	cv.ps = ps
	if linkErr != nil {
		ps.b.Close()
		err = ps.fail(linkErr)
	} else {
		err = ps.run(ctx, cf.handler(last.Chain, applied, cv.check))
	}
	if err == nil {
		if err = cf.checkNewest(last.Chain, applied)(); err != nil {
			err = ps.fail(err)
		}
	}
	rep, err := ps.verified(err)
	if err == nil {
		rep.Digests = cv.digests
	}
	return rep, err
}

// chainVerify checks a chain's files as VerifyOnly checks a backup's, and
// keeps the block digests of each image.
type chainVerify struct {
	ps      *pass // the newest archive's, once it runs
	digests map[string]*chain.Digests
	images  map[*PlannedVM][]string // images from the older archives
}

func (cv *chainVerify) check(pv *PlannedVM, f io.Reader, name, stored string, isDelta bool, vol *chain.Volume, limit int64) error {
	if isDelta {
		base := cv.digests[stored]
		if base == nil {
			return fmt.Errorf("%w: no base image for the delta", ErrBrokenChain)
		}
		a, err := chain.BeginDigests(base, *vol)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBrokenChain, err)
		}
		if _, err := sparsetar.ExtractFile(f, name, a, max(limit, vol.Size)); err != nil {
			return err
		}
		cv.digests[stored], err = a.Finish()
		return err
	}
	role, volName := roleOf(pv.VM, name)
	switch {
	case role == roleImage:
		images := cv.images[pv]
		if cv.ps != nil {
			images = cv.ps.images[pv.VM]
		}
		if err := noteImage(&images, volName); err != nil {
			return err
		}
		h := chain.NewHasher()
		if _, err := sparsetar.ExtractFile(f, name, h, limit); err != nil {
			return err
		}
		cv.digests[name] = h.Digests()
		if cv.ps != nil {
			cv.ps.images[pv.VM] = images
		} else {
			cv.images[pv] = images
		}
		return nil
	case cv.ps != nil:
		return cv.ps.checkFile(pv, f, name, limit)
	case role == roleSmall:
		_, _, err := readSmall(f, name, limit, 4)
		return err
	}
	return checkStored(f, name, limit)
}

// countingReader counts what is read through it, and tells read.
type countingReader struct {
	r    io.Reader
	n    int64
	read func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.read(n)
	return n, err
}

// selectedBy is the selection of the VMs owning the files in want.
func (b *Backup) selectedBy(want map[string]bool) map[*VM]bool {
	sel := map[*VM]bool{}
	for name := range want {
		if v := b.owner(name); v != nil {
			sel[v] = true
		}
	}
	return sel
}
