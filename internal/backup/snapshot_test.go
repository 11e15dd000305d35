package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/reflink"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// reflinkChainHost is a chain host whose pool is on a btrfs or XFS loop
// mount, so that backups keep reflink snapshots.
func reflinkChainHost(t *testing.T, fstype string) *chainHost {
	c := newChainHost(t)
	h, err := host.Demo(filepath.Join(testutil.MountLoopFS(t, fstype, ""), "root"), host.InitOptions{User: "user"})
	if err != nil {
		t.Fatal(err)
	}
	c.h = h
	return c
}

// snapshotIDs lists the backups the chain keeps snapshots of.
func snapshotIDs(t *testing.T, c *chainHost) []string {
	t.Helper()
	p := mustPlan(t, c.h, c.opts)
	entries, err := os.ReadDir(filepath.Join(c.h.Root(), snapshotDir, p.chainKey()))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

// On btrfs and XFS an increment finds the changed blocks from the
// extent maps of the base's snapshots: the chain restores byte for byte
// after every increment (writes, a discard, a resize, a new and a
// removed VM), the maps did the work (the new VM aside), far less was
// hashed than the volumes hold, and only the last and the full backup's
// snapshots are kept.
func TestIncrementalFromExtentMaps(t *testing.T) {
	for _, fstype := range []string{"btrfs", "xfs"} {
		t.Run(fstype, func(t *testing.T) {
			c := reflinkChainHost(t, fstype)
			_, full := c.backup()
			if ids := snapshotIDs(t, c); !slices.Equal(ids, []string{full.BackupID}) {
				t.Fatalf("after the full backup, snapshots of %v, want [%s]", ids, full.BackupID)
			}
			locs := []string{full.Location}
			for k, change := range c.changes() {
				change()
				_, res := c.backup()
				locs = append(locs, res.Location)
				d := res.Detection
				if d == nil || d.Mapped == 0 || d.Hashed*4 > d.Size {
					t.Fatalf("increment %d: %+v, want most volumes mapped and a small part hashed", k+1, d)
				}
				if want := 0; k == 1 {
					want = 1 // the new VM's volume has no snapshot in the base
					if d.Scanned != want {
						t.Errorf("increment %d: %d volumes hashed whole, want %d", k+1, d.Scanned, want)
					}
				}
				if len(res.Warnings) > 0 {
					t.Errorf("increment %d: warnings %q", k+1, res.Warnings)
				}
				t.Logf("increment %d: %s", k+1, d)
				want := []string{full.BackupID, res.BackupID}
				slices.Sort(want)
				if ids := snapshotIDs(t, c); !slices.Equal(ids, want) {
					t.Errorf("increment %d: snapshots of %v, want %v", k+1, ids, want)
				}
				target := freshHost(t)
				if got, err := restoreChain(t, target, locs); err != nil {
					t.Fatalf("restoring the chain up to increment %d: %v (%+v)", k+1, err, got)
				}
				sameVMs(t, c.h, target, c.vms)
			}
		})
	}
}

// The maps are checked, not trusted: here the base's snapshot of a volume
// is replaced by a clone of the volume as it is now, so its map shows
// nothing changed although blocks did. The fourth increment hashes every
// volume whole as well, finds the blocks the maps missed, says so, and
// stores them; an increment between checks finds the lie by its sample
// when the lie covers many blocks.
func TestIncrementalExtentMapsChecked(t *testing.T) {
	c := reflinkChainHost(t, "btrfs")
	_, full := c.backup()
	locs := []string{full.Location}
	var last *Result
	lie := func(whole bool) {
		if whole { // every data block rewritten
			f := c.volume("work", "private")
			fi, _ := f.Stat()
			regions, err := sparsetar.DataRegions(f, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range regions {
				buf := make([]byte, r.Length)
				for i := range buf {
					buf[i] = byte(c.rng.Uint32())
				}
				if _, err := f.WriteAt(buf, r.Offset); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
		} else {
			c.write("work", "private", 3)
		}
		p := mustPlan(t, c.h, c.opts)
		snap := filepath.Join(c.h.Root(), snapshotDir, p.chainKey(), last.BackupID, flatName("vm"+vmQid(t, c.h, "work")+"/private.img"))
		if err := os.Remove(snap); err != nil {
			t.Fatal(err)
		}
		f := c.volume("work", "private")
		defer f.Close()
		if err := reflink.Clone(snap, f); err != nil {
			t.Fatal(err)
		}
	}
	last = full
	for k := 1; k <= 4; k++ {
		switch k {
		case 2:
			lie(true) // every block: the sample of "unchanged" blocks sees it
		case 4:
			lie(false) // a few blocks: the whole check sees it
		default:
			c.write("vault", "private", 2)
		}
		_, res := c.backup()
		locs = append(locs, res.Location)
		warned := slices.ContainsFunc(res.Warnings, func(w string) bool {
			return strings.Contains(w, "private.img") && (strings.Contains(w, "missed") || strings.Contains(w, "unchanged, but it changed"))
		})
		if warned != (k == 2 || k == 4) {
			t.Errorf("increment %d: warnings %q", k, res.Warnings)
		}
		if (k == 4) != res.Detection.Checked {
			t.Errorf("increment %d: checked %v", k, res.Detection.Checked)
		}
		last = res
	}
	target := freshHost(t)
	if got, err := restoreChain(t, target, locs); err != nil {
		t.Fatalf("restoring the chain: %v (%+v)", err, got)
	}
	sameVMs(t, c.h, target, c.vms)
}

// A backup that fails keeps no snapshot of its own: the chain's stay as
// they were, and the next increment still uses them.
func TestFailedBackupLeavesNoSnapshot(t *testing.T) {
	c := reflinkChainHost(t, "btrfs")
	_, full := c.backup()
	c.write("work", "private", 2)
	opts := c.opts
	opts.syncProgress = true
	p := mustPlan(t, c.h, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := Run(ctx, p, nil, &cancelAt{stage: progress.Writing, cancel: cancel}); !errors.Is(err, ErrCancelled) {
		t.Fatalf("a backup cancelled while writing: %v", err)
	}
	if ids := snapshotIDs(t, c); !slices.Equal(ids, []string{full.BackupID}) {
		t.Fatalf("after a cancelled backup, snapshots of %v, want [%s]", ids, full.BackupID)
	}
	if _, res := c.backup(); res.Detection == nil || res.Detection.Mapped == 0 {
		t.Errorf("the increment after a cancelled backup: %+v", res.Detection)
	}
}
