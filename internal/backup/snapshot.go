package backup

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/reflink"
	"pedos.dev/backup/internal/sparsetar"
)

// Reflink snapshots let an increment find the blocks that changed since
// its base from the filesystem's extent maps and read only those, where
// a hash scan reads every block of every volume (doc/incremental.md).
//
// A backup in a chain clones each volume it stores (no data is copied:
// the clone shares the image's blocks) into
//
//	<pool directory>/.pedos-chain/<chain key>/next-XXXX/<stored name, "/" as "-">
//
// and reads the clone, so the snapshot is exactly what the backup holds
// even if the image changes meanwhile. Once the backup is published and
// recorded as the chain's last, next-XXXX is renamed to the backup's id
// and the chain's older snapshots are removed, but for its full backup's
// (what --base full compares with). A snapshot costs the space of the
// blocks the VM overwrites afterwards, which it keeps alive. Where the
// pool's filesystem cannot clone (ext4, tmpfs) nothing is kept and every
// volume is hashed whole.
const snapshotDir = ".pedos-chain"

// The extent maps (and stamps) are trusted only as far as they are
// checked: every checkEvery-th increment hashes each volume whole as
// well, and every other one hashes a sample of the blocks the maps call
// unchanged.
const (
	checkEvery  = 4
	checkSample = 32 // blocks (2 MiB) per volume
)

// Detection says how an increment found the blocks that changed.
type Detection struct {
	// Untouched volumes were the same files, unchanged, as the base's
	// (stamp.go), and were not read. Mapped volumes were compared by
	// extent maps; Scanned were hashed whole (no stamp or snapshot to go
	// by, or the check increment).
	Untouched, Mapped, Scanned int
	// Hashed is how much of the mapped volumes was read and hashed, of
	// Size in all.
	Hashed, Size int64
	// Checked: the mapped volumes were also hashed whole, to check the
	// maps.
	Checked bool
}

// String is the result's line about it, for example "Changes found:
// 5 volume(s) untouched since the last backup; extent maps of 2 volume(s),
// reading 1.3 MiB of 4.0 GiB; 1 volume(s) hashed whole."
func (d Detection) String() string {
	var parts []string
	if d.Untouched > 0 {
		parts = append(parts, fmt.Sprintf("%d volume(s) untouched since the last backup", d.Untouched))
	}
	if d.Mapped > 0 {
		s := fmt.Sprintf("extent maps of %d volume(s), reading %s of %s",
			d.Mapped, progress.FormatSize(d.Hashed), progress.FormatSize(d.Size))
		if d.Checked {
			s += " (and checked by hashing them whole)"
		}
		parts = append(parts, s)
	}
	if d.Scanned > 0 {
		parts = append(parts, fmt.Sprintf("%d volume(s) hashed whole", d.Scanned))
	}
	if len(parts) == 0 {
		return "Changes found: no volumes."
	}
	return "Changes found: " + strings.Join(parts, "; ") + "."
}

// snapshots are the reflink snapshots one backup takes and uses.
type snapshots struct {
	key   string            // the chain's (Plan.chainKey)
	pools map[string]bool   // the pool directories of the volumes stored
	next  map[string]string // pool directory -> this backup's snapshot directory
	taken map[string]bool   // stored names with a snapshot (the item reads it)
	found Detection
	// warnings are for the result: a snapshot that failed, maps that
	// proved wrong.
	warnings []string
}

func flatName(stored string) string { return strings.ReplaceAll(stored, "/", "-") }

func (s *snapshots) chainDir(pool string) string { return filepath.Join(pool, snapshotDir, s.key) }

// takeSnapshots clones every volume of items, each item then reading its
// clone.
func takeSnapshots(items [][]*item, key string) *snapshots {
	s := &snapshots{key: key, pools: map[string]bool{}, next: map[string]string{}, taken: map[string]bool{}}
	unsupported := map[string]bool{}
	for _, its := range items {
		for _, it := range its {
			if it.kind != volumeFile || it.pool == "" {
				continue
			}
			s.pools[it.pool] = true
			if unsupported[it.pool] {
				continue
			}
			err := s.take(it)
			if errors.Is(err, reflink.ErrUnsupported) {
				unsupported[it.pool] = true
			} else if err != nil {
				s.warnings = append(s.warnings, fmt.Sprintf("%s: no snapshot was kept, so the next increment hashes it whole: %v", it.Name, err))
			}
		}
	}
	for pool, dir := range s.next {
		if os.Remove(dir) == nil { // empty: nothing could be cloned there
			delete(s.next, pool)
			s.removeEmpty(pool)
		}
	}
	return s
}

// take clones one volume into this backup's snapshot directory of its
// pool and makes the item read the clone.
func (s *snapshots) take(it *item) error {
	dir, ok := s.next[it.pool]
	if !ok {
		if err := os.MkdirAll(s.chainDir(it.pool), 0o700); err != nil {
			return err
		}
		d, err := os.MkdirTemp(s.chainDir(it.pool), "next-")
		if err != nil {
			return err
		}
		dir, s.next[it.pool] = d, d
	}
	path := filepath.Join(dir, flatName(it.Name))
	if err := reflink.Clone(path, it.f); err != nil {
		return err
	}
	clone, err := os.Open(path)
	if err == nil {
		// The archive's sizes are the image's: the clone must measure alike.
		var member int64
		member, _, err = sparsetar.VolumeSize(it.Name, clone)
		if err == nil && member+sparsetar.EndSize != it.Data {
			err = fmt.Errorf("the clone measures %d bytes, the image %d", member+sparsetar.EndSize, it.Data)
		}
		if err != nil {
			clone.Close()
		}
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	it.f.Close()
	it.f = clone
	s.taken[it.Name] = true
	return nil
}

// volumeDigests returns the block digests of a volume item: for an
// increment (base not nil) from the extent maps where the base left a
// snapshot of the volume, else by hashing it whole. check hashes it
// whole in any case, to check the maps.
func (s *snapshots) volumeDigests(it *item, base *chain.Index, check bool, watch *chain.Watch) (*chain.Digests, error) {
	size, err := volumeLength(it.f)
	if err != nil {
		return nil, err
	}
	var mapped *chain.Digests
	if was := base.Volumes[it.Name]; was != nil && s.taken[it.Name] {
		var hashed int64
		mapped, hashed, err = s.fromMaps(it, size, base.Backup, was, !check, watch)
		switch {
		case err == nil:
			s.found.Hashed += hashed
			s.found.Size += size
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, reflink.ErrUnsupported):
			// The base kept no snapshot of it.
		default:
			s.warnings = append(s.warnings, fmt.Sprintf("%s: finding its changes from extent maps failed, so it was hashed whole: %v", it.Name, err))
		}
	}
	if mapped != nil && !check {
		s.found.Mapped++
		return mapped, nil
	}
	whole, err := chain.Rescan(it.f, size, nil, nil, watch)
	if err != nil {
		return nil, err
	}
	if mapped == nil {
		s.found.Scanned++
		return whole, nil
	}
	s.found.Mapped++
	s.found.Checked = true
	if missed := missedBlocks(mapped, whole); missed > 0 {
		s.warnings = append(s.warnings, fmt.Sprintf("%s: the filesystem's extent maps missed %d changed block(s), found by hashing it whole (this backup is right; increments since the last check may not be)", it.Name, missed))
	}
	return whole, nil
}

// fromMaps compares the extent maps of the base's snapshot of the volume
// and of this backup's, and hashes the blocks they do not show as
// unchanged; the others keep the base's digests (was). sample also
// hashes a few of those, to check them. It returns the digests and how
// much it hashed.
func (s *snapshots) fromMaps(it *item, size int64, baseID string, was *chain.Digests, sample bool, watch *chain.Watch) (*chain.Digests, int64, error) {
	f, err := os.Open(filepath.Join(s.chainDir(it.pool), baseID, flatName(it.Name)))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if fi.Size() != was.Size {
		return nil, 0, fmt.Errorf("its snapshot is %d bytes, but %d were backed up", fi.Size(), was.Size)
	}
	wasMap, err := reflink.Map(f)
	if err != nil {
		return nil, 0, err
	}
	nowMap, err := reflink.Map(it.f)
	if err != nil {
		return nil, 0, err
	}
	changed := reflink.Changed(wasMap, nowMap, was.Size, size, chain.BlockSize)
	d, err := chain.Rescan(it.f, size, was, changed, watch)
	if err != nil {
		return nil, 0, err
	}
	var hashed int64
	var kept []int // blocks kept from the base that hold data now
	next := 0
	for b, c := range changed {
		from := int64(b) * chain.BlockSize
		if c {
			hashed += min(chain.BlockSize, size-from)
			continue
		}
		for next < len(nowMap) && nowMap[next].Logical+nowMap[next].Length <= from {
			next++
		}
		if next < len(nowMap) && nowMap[next].Logical < from+chain.BlockSize {
			kept = append(kept, b)
		}
	}
	if sample {
		if err := checkKept(it.f, d, kept); err != nil {
			return nil, 0, err
		}
	}
	return d, hashed, nil
}

// checkKept hashes up to checkSample of the blocks d keeps from the base
// (those holding data: a hole costs nothing to lie about), chosen at
// random, and fails if one differs.
func checkKept(f *os.File, d *chain.Digests, kept []int) error {
	buf := make([]byte, chain.BlockSize)
	for range min(checkSample, len(kept)) {
		i := rand.IntN(len(kept))
		b := kept[i]
		kept[i] = kept[len(kept)-1]
		kept = kept[:len(kept)-1]
		n := min(chain.BlockSize, d.Size-int64(b)*chain.BlockSize)
		if _, err := f.ReadAt(buf[:n], int64(b)*chain.BlockSize); err != nil && err != io.EOF {
			return err
		}
		if sha256.Sum256(buf[:n]) != d.Blocks[b] {
			return fmt.Errorf("the extent maps show block %d unchanged, but it changed", b)
		}
	}
	return nil
}

// missedBlocks counts the blocks whose digest the maps got wrong (both
// digests are of the same file, so of one size).
func missedBlocks(mapped, whole *chain.Digests) int {
	n := 0
	for b := range whole.Blocks {
		if mapped.Blocks[b] != whole.Blocks[b] {
			n++
		}
	}
	return n
}

// publish keeps this backup's snapshots as those of backup id, the
// chain's last, and removes the chain's others but for its full
// backup's. It returns what failed: the next increment then hashes the
// volumes whole.
func (s *snapshots) publish(id, full string) error {
	var errs []error
	for pool, next := range s.next {
		if err := os.Rename(next, filepath.Join(s.chainDir(pool), id)); err != nil {
			errs = append(errs, err)
			os.RemoveAll(next)
		}
	}
	s.next = nil
	for pool := range s.pools {
		entries, err := os.ReadDir(s.chainDir(pool))
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if name == id || name == full {
				continue
			}
			if info, err := e.Info(); err == nil && strings.HasPrefix(name, "next-") && time.Since(info.ModTime()) < 24*time.Hour {
				continue // another backup's, perhaps running
			}
			if err := os.RemoveAll(filepath.Join(s.chainDir(pool), name)); err != nil {
				errs = append(errs, err)
			}
		}
		s.removeEmpty(pool)
	}
	return errors.Join(errs...)
}

// discard removes the snapshots of a backup that failed.
func (s *snapshots) discard() {
	for pool, next := range s.next {
		os.RemoveAll(next)
		s.removeEmpty(pool)
	}
	s.next = nil
}

// removeEmpty removes the pool's chain directory and .pedos-chain when
// they hold nothing.
func (s *snapshots) removeEmpty(pool string) {
	if os.Remove(s.chainDir(pool)) == nil {
		os.Remove(filepath.Join(pool, snapshotDir))
	}
}
