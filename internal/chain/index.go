package chain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Index is what dom0 keeps of the last backup to a destination: its id
// and the block digests of every volume it stored, so that the next
// increment hashes the volumes now and stores the blocks that differ. It
// is a cache: a full backup stores the same digests, so a lost or
// refused index means a full backup (or rebuilding it from there), never
// a wrong increment; an increment's roots catch a stale one.
type Index struct {
	Backup string // the id of the backup the digests describe
	// Full is the id of the full backup that starts its chain (Backup
	// itself for a full backup), Depth how many increments lead from it
	// to Backup.
	Full  string
	Depth int
	// Volumes are the digests of every VM file the backup holds, by stored
	// name: volumes and small files alike (PlainFile names).
	Volumes map[string]*Digests
	// Stamps say, for some of the volumes, which file the backup read and
	// when it last changed (device, inode, size, change and modification
	// times, as the backup engine writes them): an image with the same
	// stamp now holds the same data, so its digests need not be computed
	// again. Optional; a stamp without digests is refused.
	Stamps map[string]string
}

const indexHeader = "pedos-index 1"

// ErrBadIndex is wrapped by every reason LoadIndex refuses a file.
var ErrBadIndex = errors.New("bad backup index")

// SaveIndex replaces the index at path as one step: it writes a hidden
// file beside it, syncs it and renames it over the old one, so that a
// backup killed at any point leaves the old index whole. The file is the
// header line, "backup ID", "chain FULL DEPTH", then per file "volume
// NAME SIZE BLOCKS" and its digests (32 bytes each), then per stamp
// "stamp NAME STAMP", "end", and the SHA-256 of all before it.
func SaveIndex(path string, ix *Index) error {
	if !plainID(ix.Backup) || !plainID(ix.Full) || ix.Depth < 0 {
		return fmt.Errorf("backup index: %q, %q and %d are not a backup, its chain and depth", ix.Backup, ix.Full, ix.Depth)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nbackup %s\nchain %s %d\n", indexHeader, ix.Backup, ix.Full, ix.Depth)
	for _, name := range slices.Sorted(maps.Keys(ix.Volumes)) { // one index, one file
		d := ix.Volumes[name]
		if !PlainFile(name) || len(d.Blocks) != blocks(d.Size) {
			return fmt.Errorf("backup index: volume %q does not fit its digests", name)
		}
		fmt.Fprintf(&b, "volume %s %d %d\n", name, d.Size, len(d.Blocks))
		for _, blk := range d.Blocks {
			b.Write(blk[:])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ix.Stamps)) {
		stamp := ix.Stamps[name]
		if ix.Volumes[name] == nil || !plainStamp(stamp) {
			return fmt.Errorf("backup index: stamp %q of %q", stamp, name)
		}
		fmt.Fprintf(&b, "stamp %s %s\n", name, stamp)
	}
	b.WriteString("end\n")
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return nil
}

// plainStamp: a stamp is a word of digits, letters and ":" (at most 200).
func plainStamp(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == ':') {
			return false
		}
	}
	return true
}

// LoadIndex reads an index SaveIndex wrote, refusing a damaged or
// truncated one (ErrBadIndex); a missing one is an error wrapping
// os.ErrNotExist.
func LoadIndex(path string) (*Index, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(why string) error { return fmt.Errorf("%w %s: %s", ErrBadIndex, path, why) }
	if len(data) < sha256.Size {
		return nil, bad("too short")
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, bad("its checksum does not match (damaged or cut short)")
	}
	r := bufio.NewReader(bytes.NewReader(body))
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			return "\x00" // matches nothing below
		}
		return strings.TrimSuffix(s, "\n")
	}
	if line() != indexHeader {
		return nil, bad("not a pedos-index 1 file")
	}
	id, ok := strings.CutPrefix(line(), "backup ")
	if !ok || !plainID(id) {
		return nil, bad("no backup id")
	}
	ix := &Index{Backup: id, Volumes: map[string]*Digests{}, Stamps: map[string]string{}}
	f := strings.Split(line(), " ")
	if len(f) != 3 || f[0] != "chain" || !plainID(f[1]) {
		return nil, bad("no chain line")
	}
	if ix.Depth, err = strconv.Atoi(f[2]); err != nil || ix.Depth < 0 || strconv.Itoa(ix.Depth) != f[2] {
		return nil, bad("no chain depth")
	}
	ix.Full = f[1]
	for {
		l := line()
		if l == "end" {
			break
		}
		f := strings.Split(l, " ")
		if len(f) == 3 && f[0] == "stamp" {
			if ix.Volumes[f[1]] == nil || ix.Stamps[f[1]] != "" || !plainStamp(f[2]) {
				return nil, bad(fmt.Sprintf("unexpected %q", truncate(l)))
			}
			ix.Stamps[f[1]] = f[2]
			continue
		}
		if len(ix.Stamps) > 0 || len(f) != 4 || f[0] != "volume" || !PlainFile(f[1]) || ix.Volumes[f[1]] != nil {
			return nil, bad(fmt.Sprintf("unexpected %q", truncate(l)))
		}
		sz, err := size(f[2])
		n, err2 := strconv.Atoi(f[3])
		if err != nil || err2 != nil || n != blocks(sz) {
			return nil, bad(fmt.Sprintf("volume %s: size and block count disagree", f[1]))
		}
		if int64(n)*sha256.Size > int64(len(body)) {
			return nil, bad(fmt.Sprintf("volume %s: digests cut short", f[1]))
		}
		d := &Digests{Size: sz, Blocks: make([][32]byte, n)}
		for i := range d.Blocks {
			if _, err := io.ReadFull(r, d.Blocks[i][:]); err != nil {
				return nil, bad(fmt.Sprintf("volume %s: digests cut short", f[1]))
			}
		}
		ix.Volumes[f[1]] = d
	}
	if r.Buffered() != 0 {
		return nil, bad("data after its end")
	}
	return ix, nil
}
