package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/sparsetar"
)

// DefaultFullEvery is how many increments a chain gets before the next
// backup is full again.
const DefaultFullEvery = 7

// Chain is what a backup asked to be incremental (Options.Incremental)
// will be: an increment of Base, or a full backup that starts a chain.
type Chain struct {
	// Increment: the archive stores only what changed since Base.
	Increment bool
	// Base is the backup the increment applies to, Full the full backup
	// its chain starts with; Depth counts the increments from Full to this
	// backup (0: this backup is full).
	Base, Full string
	Depth      int
	// Why says why a backup asked to be incremental is full; "" for an
	// increment.
	Why string
}

// Describe is the summary's line for the chain.
func (c *Chain) Describe() string {
	if !c.Increment {
		return "full backup, starting a chain of increments (" + c.Why + ")"
	}
	return fmt.Sprintf("increment %d of the chain of %s, on %s: only the blocks that changed are stored", c.Depth, c.Full, c.Base)
}

// Index files: the last backup of a destination's chain, and its full one.
const (
	lastIndex = "last"
	fullIndex = "full"
)

// indexPath is where dom0 keeps one index of the target's chain: one
// chain per destination (a directory, a VM's location, a command).
func (p *Plan) indexPath(which string) string {
	dir := p.opts.IndexDir
	if dir == "" {
		dir = filepath.Join(p.h.Root(), "backup-chains")
	}
	return filepath.Join(dir, p.chainKey()+"."+which)
}

// chainKey names the target's chain in dom0's records: a hash of where
// its backups go.
func (p *Plan) chainKey() string {
	t := p.Target
	where := t.Path
	if t.Kind == ToFile {
		where = filepath.Dir(t.Path) // each backup gets a new name in it
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s\x00%s", t.Kind, t.VM, where)))
	return hex.EncodeToString(sum[:16])
}

// baseIndexPath is the record an increment is based on: the chain's
// last backup, or with FromFull its full one.
func (p *Plan) baseIndexPath() string {
	if p.opts.FromFull {
		return p.indexPath(fullIndex)
	}
	return p.indexPath(lastIndex)
}

// planChain decides whether the backup is an increment, and on which base.
func (p *Plan) planChain() {
	if !p.opts.Incremental {
		return
	}
	every := p.opts.FullEvery
	if every <= 0 {
		every = DefaultFullEvery
	}
	ix, err := chain.LoadIndex(p.baseIndexPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.Chain = &Chain{Why: "no earlier backup to this destination is known"}
	case err != nil:
		p.Chain = &Chain{Why: "the record of the last backup cannot be used"}
		p.Warnings = append(p.Warnings, fmt.Sprintf("%v: this backup is full", err))
	case ix.Depth+1 > every && !p.opts.FromFull:
		p.Chain = &Chain{Why: fmt.Sprintf("the chain has its %d increments", every)}
	default:
		p.Chain = &Chain{Increment: true, Base: ix.Backup, Full: ix.Full, Depth: ix.Depth + 1}
	}
}

// baseIndex reloads the index the plan chose as base, and checks that it
// still names the same backup (another backup to the destination may have
// run since the plan was made).
func (p *Plan) baseIndex() (*chain.Index, error) {
	ix, err := chain.LoadIndex(p.baseIndexPath())
	if err != nil {
		return nil, fmt.Errorf("reading the record of the base backup: %w", err)
	}
	if ix.Backup != p.Chain.Base {
		return nil, fmt.Errorf("the destination's last backup is now %s, not %s: make the plan again", ix.Backup, p.Chain.Base)
	}
	return ix, nil
}

// saveIndex records the backup just published as the chain's last (and,
// for a full backup, its full) one. Only a published backup gets here, so
// a killed or failed backup leaves the record as it was.
func (p *Plan) saveIndex(id string, digests map[string]*chain.Digests, stamps map[string]string) error {
	ix := &chain.Index{Backup: id, Full: id, Volumes: digests, Stamps: stamps}
	if p.Chain.Increment {
		ix.Full, ix.Depth = p.Chain.Full, p.Chain.Depth
	}
	return p.SaveRecord(ix)
}

// SaveRecord makes ix dom0's record of the last backup to the plan's
// destination (and, for a full backup, of its full one), replacing what
// was there: saveIndex after a backup, or a record rebuilt from the
// destination's newest backup (qvm-backup --rebuild-record). Make the
// plan again to use it.
func (p *Plan) SaveRecord(ix *chain.Index) error {
	if err := chain.SaveIndex(p.indexPath(lastIndex), ix); err != nil {
		return err
	}
	if ix.Depth == 0 {
		return chain.SaveIndex(p.indexPath(fullIndex), ix)
	}
	return nil
}

// scan hashes every VM file the backup stores (the dom0 home aside: it is
// always stored whole) and returns their digests and the volumes' stamps
// by stored name. Each volume is hashed on every core (chain.Scan); for
// an increment (base not nil), one whose stamp is the base's is not read
// (stamp.go), and one with a reflink snapshot in the base only where its
// extent maps show changes (snapshot.go); check hashes every volume.
// changed, when not nil, is told of each volume as soon as its scan finds
// it differs from the base's, before the scan ends.
func scan(ctx context.Context, items [][]*item, base *chain.Index, snaps *snapshots, check bool, changed func(*item)) (map[string]*chain.Digests, map[string]string, error) {
	digests, stamps := map[string]*chain.Digests{}, map[string]string{}
	for _, its := range items {
		for _, it := range its {
			if err := ctx.Err(); err != nil {
				return nil, nil, cancelled(ctx)
			}
			switch it.kind {
			case volumeFile:
				var d *chain.Digests
				var err error
				switch {
				case base != nil && !check && it.stamp != "" && base.Stamps[it.Name] == it.stamp && base.Volumes[it.Name] != nil:
					d = base.Volumes[it.Name]
					snaps.found.Untouched++
				case base != nil:
					var watch *chain.Watch
					if was := base.Volumes[it.Name]; was != nil && changed != nil {
						watch = &chain.Watch{Was: was, Differs: func() { changed(it) }}
					}
					d, err = snaps.volumeDigests(it, base, check, watch)
				default:
					d, err = scanVolume(it)
				}
				if it.stamp != "" {
					stamps[it.Name] = it.stamp
				}
				if err != nil {
					return nil, nil, fmt.Errorf("%s: hashing %s: %w", it.vm, it.Name, err)
				}
				digests[it.Name] = d
			case smallFile, emptyFile:
				digests[it.Name] = chain.Sum(it.content)
			}
		}
	}
	return digests, stamps, nil
}

func scanVolume(it *item) (*chain.Digests, error) {
	size, err := volumeLength(it.f)
	if err != nil {
		return nil, err
	}
	return chain.Scan(it.f, size)
}

// volumeLength is the length of an image (a regular file, or a device).
func volumeLength(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return f.Seek(0, io.SeekEnd)
	}
	return fi.Size(), nil
}

// increment turns the measured VMs into what the increment stores: for
// each file, whole when the base has no file of that name, a delta of
// the changed blocks for a changed volume, whole for another changed
// file, or kept (stored nothing) when unchanged; the dom0 home is stored
// whole. A VM whose files are all kept stores none. It returns the files
// to store per VM (vms' sizes now count those only), the map, and the VMs
// incomplete in the archive.
func increment(vms []PlannedVM, items [][]*item, digests map[string]*chain.Digests, base *chain.Index, m *measurer) ([][]*item, *chain.Map, map[string]bool, error) {
	cm := &chain.Map{Base: base.Backup}
	incomplete := map[string]bool{}
	outItems := make([][]*item, len(vms))
	for i := range vms {
		v := &vms[i]
		var store []*item
		for _, it := range items[i] {
			now, was := digests[it.Name], base.Volumes[it.Name]
			switch {
			case now == nil || was == nil:
				store = append(store, it) // the home, or a file the base lacks
			case now.Size == was.Size && now.Root() == was.Root():
				cm.Keep = append(cm.Keep, it.Name)
				incomplete[v.Name] = true
				it.close()
			case it.kind == volumeFile:
				vol := chain.Volume{Name: it.Name, BaseSize: was.Size, BaseRoot: was.Root(), Size: now.Size, Root: now.Root(),
					Extents: chain.Changes(was, now)}
				cm.Volumes = append(cm.Volumes, vol)
				d, err := m.delta(it, vol)
				if err != nil {
					return nil, nil, nil, err
				}
				store = append(store, d)
				incomplete[v.Name] = true
			default:
				store = append(store, it)
			}
		}
		v.Files, v.Size, v.Data = nil, 0, 0
		for _, it := range store {
			v.Files = append(v.Files, it.PlannedFile)
			v.Size += it.Stored
			v.Data += it.Data
		}
		outItems[i] = store
	}
	slices.Sort(cm.Keep)
	return outItems, cm, incomplete, nil
}

// delta is the item that stores a changed volume's data extents as
// NAME.delta, a sparse image of the volume's new size whose holes mean
// "unchanged". It reads the same open image the scan hashed.
func (m *measurer) delta(it *item, v chain.Volume) (*item, error) {
	d := &item{vm: it.vm, kind: deltaFile, f: it.f, size: v.Size}
	for _, e := range v.Extents {
		if !e.Zero {
			d.runs = append(d.runs, sparsetar.Region{Offset: e.Off, Length: e.Len})
		}
	}
	d.Name, d.Source = deltaName(it.Name), it.Source
	fi, err := it.f.Stat()
	if err != nil {
		return nil, err
	}
	d.mtime = fi.ModTime()
	member, _, err := sparsetar.ExtentsSize(d.Name, v.Size, d.runs, d.mtime)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	m.finish(d, member+sparsetar.EndSize)
	it.f = nil // the delta reads and closes it now
	return d, nil
}

// deltaName is the name a changed volume's delta is stored under.
func deltaName(volume string) string { return volume + ".delta" }
