package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

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
// options, result and progress (the older archives are read while the
// progress says Preparing), and the same all-or-nothing rule.
func RestoreChain(ctx context.Context, h *host.Host, links []*Backup, plan *Plan, opts Options, r progress.Reporter) (*Result, error) {
	if err := CheckChain(links); err != nil {
		return nil, err
	}
	last := links[len(links)-1]
	if plan.backup != last {
		return nil, errors.New("restore: the plan was not made for the chain's newest archive")
	}
	plan.chained = true
	return restore(ctx, h, last, plan, opts, r, func(hr *hostRun) error { return hr.stageChain(ctx, links) })
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

// chainRun is what a chain's restore knows of the files staged so far.
type chainRun struct {
	hr     *hostRun
	byPath map[string]*PlannedVM // restored VMs by backup-path
	staged map[string]bool       // files staged so far, by stored name
}

// stageChain stages, from every archive but the newest, the files the
// newest backup's restored VMs need, and sets the handler of the newest
// archive's pass.
func (hr *hostRun) stageChain(ctx context.Context, links []*Backup) error {
	cr := &chainRun{hr: hr, byPath: map[string]*PlannedVM{}, staged: map[string]bool{}}
	var restored []string
	for _, pv := range hr.plan.Restored() {
		if pv.VM.Class != host.AdminVM {
			restored = append(restored, pv.VM.Path)
			cr.byPath[pv.VM.Path] = pv
		}
	}
	need := needs(links, restored)
	for i, l := range links[:len(links)-1] {
		if err := cr.stageLink(ctx, l, need[i]); err != nil {
			return fmt.Errorf("archive %s of the chain: %w", l.Header.BackupID, err)
		}
	}
	last := links[len(links)-1]
	applied := map[string]bool{}
	hr.handle = cr.handler(last.Chain, applied)
	hr.chainDone = func() error {
		for _, name := range last.Chain.Files() {
			if cr.byPath[path.Dir(name)+"/"] == nil {
				continue
			}
			if err := cr.check(last.Chain, name, applied); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

// check says whether the backup of an archive has the file name it needs:
// stored whole in it (applied also marks those), changed by one of its
// deltas, or kept from a backup before it, whose restore staged it.
func (cr *chainRun) check(m *chain.Map, name string, applied map[string]bool) error {
	switch {
	case applied[name]:
		return nil
	case m != nil && slices.Contains(m.Keep, name):
		if cr.staged[name] {
			return nil
		}
		return fmt.Errorf("%w: %s is kept from a backup before it, which does not have it", ErrBrokenChain, elide.Quote(name))
	case m != nil && slices.ContainsFunc(m.Volumes, func(v chain.Volume) bool { return v.Name == name }):
		return fmt.Errorf("%w: its map changes %s, but it has no delta of it", ErrBrokenChain, elide.Quote(name))
	}
	return fmt.Errorf("%w: %s, which the next increment changes or keeps, is not in it", ErrBrokenChain, elide.Quote(name))
}

// stageLink reads one older archive of the chain, staging the files in
// want that it stores and applying its deltas to them; every other file
// is read (and so authenticated) and dropped.
func (cr *chainRun) stageLink(ctx context.Context, b *Backup, want map[string]bool) error {
	defer b.Close()
	defer context.AfterFunc(ctx, func() { b.Close() })()
	sel := map[*VM]bool{}
	for name := range want {
		if v := b.owner(name); v != nil {
			sel[v] = true
		}
	}
	if err := b.start(sel); err != nil {
		return err
	}
	applied := map[string]bool{}
	handle := cr.handler(b.Chain, applied)
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
		pv := cr.byPath[path.Dir(stored)+"/"]
		if !want[stored] || pv == nil {
			if _, err := io.Copy(io.Discard, f); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			continue
		}
		counted := &countingReader{r: f}
		if err := handle(pv, counted, name, 1<<62); err != nil {
			return fmt.Errorf("VM %s: %s: %w", pv.VM.Name, name, err)
		}
		n := cr.hr.carried[pv]
		n.Files++
		n.Bytes += counted.n
		cr.hr.carried[pv] = n
	}
	for name := range want {
		if err := cr.check(b.Chain, name, applied); err != nil {
			return err
		}
	}
	return nil
}

// handler is the file handler of a chain's archive whose map is m: a
// delta the map describes is applied to the image staged before; any
// other file is staged as a restore stages it. applied gets the names of
// the files it staged or changed.
func (cr *chainRun) handler(m *chain.Map, applied map[string]bool) handler {
	hr := cr.hr
	return func(pv *PlannedVM, f io.Reader, name string, limit int64) error {
		stored, isDelta := strings.CutSuffix(name, ".delta")
		if !isDelta {
			if m != nil && slices.Contains(m.Files(), name) {
				return fmt.Errorf("%w: stored whole, but its map changes or keeps it", ErrBadMetadata)
			}
			if cr.staged[name] {
				return fmt.Errorf("%w: a file a backup before this one staged already", ErrBrokenChain)
			}
			if err := hr.file(pv, f, name, limit); err != nil {
				return err
			}
			cr.staged[name], applied[name] = true, true
			return nil
		}
		var vol *chain.Volume
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
		stage := hr.staged[pv]
		if stage == nil || !cr.staged[stored] {
			return fmt.Errorf("%w: no base image for the delta", ErrBrokenChain)
		}
		img, err := stage.OpenImage(strings.TrimSuffix(path.Base(stored), ".img"))
		if err != nil {
			return fmt.Errorf("%w: no base image for the delta: %v", ErrBrokenChain, err)
		}
		defer img.Close()
		a, err := chain.Begin(img, *vol)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBrokenChain, err)
		}
		if _, err := sparsetar.ExtractFile(f, name, a, max(limit, vol.Size)); err != nil {
			return err
		}
		if err := a.Finish(); err != nil {
			return err
		}
		applied[stored] = true
		return nil
	}
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
