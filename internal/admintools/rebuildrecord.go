package admintools

import (
	"context"
	"fmt"
	"path/filepath"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/restore"
)

// rebuildRecord is --rebuild-record: dom0's record of the destination's
// last backup (what an increment is made against) is a cache, so when it
// is lost (dom0 reinstalled) or was never here (a new machine backing up
// to the chain of an old one after restoring from it) it is made again
// from the destination. The newest backup there and its chain are read
// whole and verified, as qvm-backup-restore --verify-only does, and the
// block digests of the volumes it holds become the record. Only a backup
// that verified is recorded, so the next increment is as sound as one
// made against a record kept by dom0.
func (r *backupRun) rebuildRecord(ctx context.Context, h *host.Host, opts backup.Options, pass []byte) error {
	p, err := backup.NewPlan(ctx, h, opts)
	if err != nil {
		return err
	}
	t := p.Target
	var loc restore.Location
	switch t.Kind {
	case backup.ToDirectory:
		loc = restore.Location{Path: t.Path}
	case backup.ToVM:
		loc = restore.Location{Path: t.Path, VM: t.VM}
	default:
		return fmt.Errorf("--rebuild-record reads the destination's backups back: not possible from %s; use a directory (in dom0 or a VM) or a bucket", t)
	}
	sopts := restore.SourceOptions{Stderr: r.stderr, Host: h}
	list, err := restore.List(ctx, loc, sopts)
	if err != nil {
		return fmt.Errorf("--rebuild-record: listing %s: %w", t, err)
	}
	var newest *restore.Listed
	for i := range list {
		if l := &list[i]; l.Err == nil && l.Version == 4 {
			newest = l
			break
		}
	}
	if newest == nil {
		return fmt.Errorf("--rebuild-record: no backup of format 4 in %s to rebuild the record from", t)
	}
	if !r.o.quiet {
		fmt.Fprintf(r.info, "Rebuilding the record of the last backup from %s (reading its chain whole)...\n", filepath.Base(newest.Location.Path))
	}
	src, err := restore.OpenSource(ctx, newest.Location, sopts)
	if err != nil {
		return err
	}
	defer src.Close()
	oopts := restore.OpenOptions{Passphrase: pass, MaxMemory: opts.MaxMemory}
	b, err := src.Open(ctx, oopts)
	if err != nil {
		return fmt.Errorf("--rebuild-record: opening %s: %w", newest.Location.Path, err)
	}
	defer b.Close()
	links := []*restore.Backup{b}
	if b.Chain != nil {
		c, err := restore.OpenChain(ctx, b, newest.Location, sopts, oopts)
		if err != nil {
			return fmt.Errorf("--rebuild-record: %w", err)
		}
		defer c.Close()
		links = c.Links
	}
	plan, err := restore.NewPlan(h, b, restore.PlanOptions{VerifyOnly: true})
	if err != nil {
		return err
	}
	rep, err := restore.VerifyChain(ctx, links, plan, nil)
	if err != nil {
		return fmt.Errorf("--rebuild-record: %s did not verify, so no record was made of it: %w", newest.Location.Path, err)
	}
	if err := src.Finish(); err != nil {
		return fmt.Errorf("--rebuild-record: %w", err)
	}
	ix := &chain.Index{Backup: b.Header.BackupID, Full: links[0].Header.BackupID, Depth: len(links) - 1, Volumes: rep.Digests}
	if err := p.SaveRecord(ix); err != nil {
		return fmt.Errorf("--rebuild-record: %w", err)
	}
	if !r.o.quiet {
		kind := "a full backup"
		if ix.Depth > 0 {
			kind = fmt.Sprintf("increment %d of its chain", ix.Depth)
		}
		fmt.Fprintf(r.info, "The record now names %s (%s), verified.\n", ix.Backup, kind)
	}
	return nil
}
