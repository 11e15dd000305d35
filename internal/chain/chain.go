// Package chain is the core of incremental backups (doc/incremental.md):
// a volume's block digests and root, the map an increment stores
// (pedos-chain) with its strict parser, the changes between two images,
// and applying an increment's delta to the image of its base.
//
// Nothing here knows archives: a backup stores the map as one more
// encrypted file and the delta as a sparse image; a restore hands them
// back. scripts/pedos-apply-delta.py does what Apply does with a stock
// python3, for the emergency procedure, and the tests hold the two to
// the same results.
package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"pedos.dev/backup/internal/sparsetar"
)

// MapName is the file an increment stores its map as, right after
// qubes.xml.
const MapName = "pedos-chain"

// BlockSize is the unit of change: 64 KiB.
const BlockSize = 64 << 10

// Root is a volume's digest: SHA-256 over "pedos-volume-root 1\n", its
// size and the block size in decimal, each ending in "\n", and then the
// SHA-256 of each block in order (the last one as long as the volume
// leaves it). Holes read as zeros, so a volume's root does not depend on
// which of its zeros are allocated.
type Root [32]byte

func (r Root) String() string { return fmt.Sprintf("%x", r[:]) }

// Digests are the SHA-256 of each block of a volume, as Root takes them.
type Digests struct {
	Size   int64
	Blocks [][32]byte
}

// zeroBlock is the digest of a full block of zeros.
var zeroBlock = sha256.Sum256(make([]byte, BlockSize))

// BlockSum is the SHA-256 of a block. A full block of zeros, common in
// disk images (allocated but unused, or zeroed), is recognised by a
// comparison, which runs at memory speed, several times faster than
// hashing it.
func BlockSum(p []byte) [32]byte {
	if len(p) == BlockSize && bytes.Equal(p, zeroBytes) {
		return zeroBlock
	}
	return sha256.Sum256(p)
}

// Scan reads the volume f of size bytes, its data only (holes are known
// to be zeros), and returns its block digests. The blocks are hashed on
// every core, in runs of scanRun blocks.
func Scan(f *os.File, size int64) (*Digests, error) {
	return Rescan(f, size, nil, nil, nil)
}

// A Watch, given to Rescan, is told as soon as the scan finds that the
// volume differs from Was (a hashed block's digest, or the size), once,
// while the scan goes on: a backup can start on what the change will
// cost (its key) before the whole volume is read. It is a hint; the
// digests Rescan returns are the answer.
type Watch struct {
	Was     *Digests
	Differs func()
	once    sync.Once
}

// see is told the digest of block b; a nil Watch watches nothing.
func (w *Watch) see(b int64, sum [32]byte) {
	if w != nil && (b >= int64(len(w.Was.Blocks)) || w.Was.Blocks[b] != sum) {
		w.once.Do(w.Differs)
	}
}

// Rescan is Scan of the blocks marked in changed only (one flag per
// block of f): the others' digests are taken from base, which must have
// them. Where the blocks that may have changed are known, it spares
// reading the rest. With changed nil, every block is hashed. watch, when
// not nil, is told of the first difference from its digests it sees.
func Rescan(f *os.File, size int64, base *Digests, changed []bool, watch *Watch) (*Digests, error) {
	if size < 0 {
		return nil, fmt.Errorf("a volume of %d bytes", size)
	}
	if watch != nil && watch.Was.Size != size {
		watch.once.Do(watch.Differs)
	}
	d := &Digests{Size: size, Blocks: make([][32]byte, blocks(size))}
	if changed != nil && len(changed) != len(d.Blocks) {
		return nil, fmt.Errorf("%d blocks marked for a volume of %d", len(changed), len(d.Blocks))
	}
	hash := func(b int64) bool { return changed == nil || changed[b] }
	for i := range d.Blocks {
		if !hash(int64(i)) {
			at := int64(i) * BlockSize
			if i >= len(base.Blocks) || min(BlockSize, base.Size-at) != min(BlockSize, size-at) {
				return nil, fmt.Errorf("block %d is to be kept from a base of %d bytes", i, base.Size)
			}
			d.Blocks[i] = base.Blocks[i]
			continue
		}
		d.Blocks[i] = zeroBlock
		if n := size % BlockSize; n != 0 && i == len(d.Blocks)-1 {
			d.Blocks[i] = sha256.Sum256(make([]byte, n))
		}
	}
	regions, err := sparsetar.DataRegions(f, size)
	if err != nil {
		return nil, err
	}
	// The blocks to hash that hold data, as runs of block numbers [from, to).
	var runs [][2]int64
	next := int64(0) // the first block not yet considered
	for _, r := range regions {
		to := (r.Offset + r.Length + BlockSize - 1) / BlockSize
		for b := max(r.Offset/BlockSize, next); b < to; b++ {
			if !hash(b) {
				continue
			}
			if k := len(runs) - 1; k >= 0 && runs[k][1] == b && b-runs[k][0] < scanRun {
				runs[k][1] = b + 1
			} else {
				runs = append(runs, [2]int64{b, b + 1})
			}
		}
		next = max(next, to)
	}
	work := make(chan [2]int64)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(1, len(runs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, scanRun*BlockSize)
			for run := range work {
				off := run[0] * BlockSize
				n := min(int64(len(buf)), (run[1]-run[0])*BlockSize, size-off)
				if _, err := f.ReadAt(buf[:n], off); err != nil {
					select {
					case errs <- fmt.Errorf("reading block %d: %w", run[0], err):
					default:
					}
					continue
				}
				for b := run[0]; b < run[1]; b++ {
					at := (b - run[0]) * BlockSize
					d.Blocks[b] = BlockSum(buf[at:min(at+BlockSize, n)])
					watch.see(b, d.Blocks[b])
				}
			}
		}()
	}
	for _, run := range runs {
		work <- run
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return d, nil
}

// scanRun is how many blocks Scan reads at once (4 MiB).
const scanRun = 64

// Sum returns the block digests of data held in memory (a VM's small
// files).
func Sum(data []byte) *Digests {
	d := &Digests{Size: int64(len(data)), Blocks: make([][32]byte, blocks(int64(len(data))))}
	for i := range d.Blocks {
		d.Blocks[i] = BlockSum(data[i*BlockSize : min(len(data), (i+1)*BlockSize)])
	}
	return d
}

func blocks(size int64) int { return int((size + BlockSize - 1) / BlockSize) }

// Root is the root of the digests.
func (d *Digests) Root() Root {
	h := sha256.New()
	fmt.Fprintf(h, "pedos-volume-root 1\n%d\n%d\n", d.Size, BlockSize)
	for _, b := range d.Blocks {
		h.Write(b[:])
	}
	var r Root
	h.Sum(r[:0])
	return r
}

// Extent is a run of a volume that an increment changes: its data, in
// the delta, or zeros.
type Extent struct {
	Zero     bool
	Off, Len int64
}

// Changes lists what turns a volume whose digests are base into the one
// of now, once resized: every block whose digest differs, as data, or as
// zeros when the block now holds only zeros (zeroing is explicit; a hole
// in a delta means unchanged). Blocks past the base's end read as zeros
// after the resize, so only their data counts. Equal digests mean equal
// bytes, lengths included. Adjacent blocks of one kind join into one
// extent.
func Changes(base, now *Digests) []Extent {
	var out []Extent
	for b := range now.Blocks {
		if b < len(base.Blocks) && base.Blocks[b] == now.Blocks[b] {
			continue
		}
		off := int64(b) * BlockSize
		n := min(BlockSize, now.Size-off)
		zero := now.Blocks[b] == zeroBlock || (n < BlockSize && now.Blocks[b] == sha256.Sum256(make([]byte, n)))
		if zero && b >= len(base.Blocks) {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].Zero == zero && out[k].Off+out[k].Len == off {
			out[k].Len += n
		} else {
			out = append(out, Extent{Zero: zero, Off: off, Len: n})
		}
	}
	return out
}

// Volume is one volume of an increment's map.
type Volume struct {
	Name     string // the file it is stored as: "vm3/private.img"
	BaseSize int64
	BaseRoot Root
	Size     int64
	Root     Root
	Extents  []Extent // in order, apart, within Size, block-aligned
}

// Map is what an increment stores as pedos-chain: the backup it applies
// to, for each volume it changes, how, and which of the base's files it
// keeps as they were. The backup an increment makes is exactly: the files
// it stores whole, its changed volumes and its kept files; any other file
// of the base (a removed VM's, a volume no longer there) is gone.
type Map struct {
	Base    string // the base backup's id
	Volumes []Volume
	Keep    []string // stored names, in increasing order: "vm3/private.img", "vm3/firewall.xml"
}

const mapHeader = "pedos-chain 1"

// Files lists the files the map changes or keeps.
func (m *Map) Files() []string {
	out := slices.Clone(m.Keep)
	for _, v := range m.Volumes {
		out = append(out, v.Name)
	}
	return out
}

// Marshal writes the map as text, one item a line:
//
//	pedos-chain 1
//	base ID
//	volume NAME BASE-SIZE BASE-ROOT SIZE ROOT
//	data OFFSET LENGTH | zero OFFSET LENGTH   (the volume's extents)
//	keep NAME                                 (after every volume)
//	end
func (m *Map) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nbase %s\n", mapHeader, m.Base)
	for _, v := range m.Volumes {
		fmt.Fprintf(&b, "volume %s %d %s %d %s\n", v.Name, v.BaseSize, v.BaseRoot, v.Size, v.Root)
		for _, e := range v.Extents {
			kind := "data"
			if e.Zero {
				kind = "zero"
			}
			fmt.Fprintf(&b, "%s %d %d\n", kind, e.Off, e.Len)
		}
	}
	for _, name := range m.Keep {
		fmt.Fprintf(&b, "keep %s\n", name)
	}
	b.WriteString("end\n")
	return b.Bytes()
}

// MaxVolumeSize bounds a volume a map may describe (16 TiB), and
// MaxMapSize a map (a 10 GiB volume changed in every other block takes
// about 4 MiB).
const (
	MaxVolumeSize = 16 << 40
	MaxMapSize    = 64 << 20
)

// ErrBadMap is wrapped by every reason Parse refuses a map.
var ErrBadMap = errors.New("bad increment map")

// Parse reads a map, refusing anything Marshal would not write: unknown
// lines, a file named twice, extents out of order, overlapping, past the
// volume's end or off the block grid, a volume after a kept file. A
// refused map has changed nothing yet.
func Parse(data []byte) (*Map, error) {
	if len(data) > MaxMapSize {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrBadMap, len(data), MaxMapSize)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 4 || lines[0] != mapHeader || lines[len(lines)-1] != "" || lines[len(lines)-2] != "end" {
		return nil, fmt.Errorf("%w: not a pedos-chain 1 map ending in \"end\"", ErrBadMap)
	}
	lines = lines[1 : len(lines)-2]
	bad := func(n int, why string) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadMap, n+2, why)
	}
	base, ok := strings.CutPrefix(lines[0], "base ")
	if !ok || !plainID(base) {
		return nil, bad(0, "no base backup id")
	}
	m := &Map{Base: base}
	names := map[string]bool{}
	var v *Volume
	for i, line := range lines[1:] {
		i++
		f := strings.Split(line, " ")
		switch {
		case f[0] == "volume" && len(f) == 6:
			baseSize, err1 := size(f[2])
			baseRoot, err2 := root(f[3])
			sz, err3 := size(f[4])
			r, err4 := root(f[5])
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				return nil, bad(i, err.Error())
			}
			if !plainName(f[1]) || names[f[1]] || len(m.Keep) > 0 {
				return nil, bad(i, fmt.Sprintf("volume name %q unsafe or repeated, or after a kept file", truncate(f[1])))
			}
			names[f[1]] = true
			m.Volumes = append(m.Volumes, Volume{Name: f[1], BaseSize: baseSize, BaseRoot: baseRoot, Size: sz, Root: r})
			v = &m.Volumes[len(m.Volumes)-1]
		case f[0] == "keep" && len(f) == 2:
			if !PlainFile(f[1]) || names[f[1]] || len(m.Keep) > 0 && f[1] <= m.Keep[len(m.Keep)-1] {
				return nil, bad(i, fmt.Sprintf("kept file %q unsafe, repeated or out of order", truncate(f[1])))
			}
			names[f[1]] = true
			m.Keep = append(m.Keep, f[1])
			v = nil
		case (f[0] == "data" || f[0] == "zero") && len(f) == 3 && v != nil:
			off, err1 := size(f[1])
			n, err2 := size(f[2])
			if err := errors.Join(err1, err2); err != nil {
				return nil, bad(i, err.Error())
			}
			e := Extent{Zero: f[0] == "zero", Off: off, Len: n}
			if err := checkExtent(v, e); err != nil {
				return nil, bad(i, err.Error())
			}
			v.Extents = append(v.Extents, e)
		default:
			return nil, bad(i, fmt.Sprintf("unexpected %q", truncate(line)))
		}
	}
	return m, nil
}

// checkExtent checks e against the volume and its extents so far.
func checkExtent(v *Volume, e Extent) error {
	switch {
	case e.Len <= 0:
		return errors.New("an empty extent")
	case e.Off%BlockSize != 0:
		return fmt.Errorf("extent at %d is off the %d-byte block grid", e.Off, BlockSize)
	case e.Len > v.Size-e.Off:
		return fmt.Errorf("extent %d+%d runs past the volume's %d bytes", e.Off, e.Len, v.Size)
	case e.Len%BlockSize != 0 && e.Off+e.Len != v.Size:
		return fmt.Errorf("extent %d+%d ends off the block grid", e.Off, e.Len)
	}
	if k := len(v.Extents) - 1; k >= 0 && e.Off < v.Extents[k].Off+v.Extents[k].Len {
		return fmt.Errorf("extent at %d overlaps or precedes the one before", e.Off)
	}
	return nil
}

func size(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > MaxVolumeSize || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not a size", truncate(s))
	}
	return n, nil
}

func root(s string) (Root, error) {
	var r Root
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(r) || strings.ToLower(s) != s {
		return r, fmt.Errorf("%q is not a root", truncate(s))
	}
	copy(r[:], b)
	return r, nil
}

// plainID is a backup id's alphabet.
func plainID(s string) bool {
	return s != "" && len(s) <= 128 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
}

// plainName is a stored volume's name: "vmN/NAME.img", plain characters.
func plainName(s string) bool { return PlainFile(s) && strings.HasSuffix(s, ".img") }

// PlainFile reports whether s is a VM's stored file an increment can
// change or keep: "vm<qid>/NAME" in plain characters ("vm3/private.img",
// "vm3/firewall.xml").
func PlainFile(s string) bool {
	vm, file, ok := strings.Cut(s, "/")
	qid, isVM := strings.CutPrefix(vm, "vm")
	return ok && isVM && len(s) <= 255 && qid != "" && len(qid) <= 9 && strings.Trim(qid, "0123456789") == "" && file != "" &&
		strings.Trim(file, "abcdefghijklmnopqrstuvwxyz0123456789_-.") == "" && !strings.Contains(file, "..")
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// Apply turns img, the volume as the base backup left it, into the
// volume the increment describes: it checks img's size and root against
// the base's first (a wrong or missing base changes nothing), then
// resizes it, copies the data extents from delta (the increment's
// sparse image of the volume) and zeroes the zero extents, and checks
// the result's root last. The caller commits the image only after that.
func Apply(img *os.File, delta io.ReaderAt, v Volume) error {
	a, err := Begin(img, v, nil)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	pos := int64(0)
	for _, e := range v.Extents {
		if err := a.Skip(e.Off - pos); err != nil {
			return err
		}
		for pos = e.Off; pos < e.Off+e.Len; {
			n := min(int64(len(buf)), e.Off+e.Len-pos)
			if e.Zero {
				err = a.Skip(n)
			} else if _, err = delta.ReadAt(buf[:n], pos); err == nil {
				_, err = a.Write(buf[:n])
			}
			if err != nil {
				return fmt.Errorf("%s: the delta at %d: %w", v.Name, pos, err)
			}
			pos += n
		}
	}
	if err := a.Skip(v.Size - pos); err != nil {
		return err
	}
	_, err = a.Finish()
	return err
}

// Applier applies one volume's delta as it streams past: the delta's
// logical content (its holes skipped, or read as zeros) is written to it
// from offset 0, and only the bytes of the map's data extents reach the
// image. It is a sparsetar.Skipper, so that sparsetar.ExtractFile reads
// a sparse delta's data regions only. It follows the image's digests as
// it goes, so that the result's root is known without reading the image
// again.
type Applier struct {
	img  *os.File
	v    Volume
	pos  int64 // the delta's offset of the next byte written
	next int   // the first extent that may still take bytes
	d    *DigestApplier
}

// Begin checks that img is the base the volume's delta applies to (its
// size and root), changing nothing otherwise, and resizes it to the new
// size. base are img's digests when the caller knows them (a restore
// that wrote img), else nil: img is then read to find them. Write the
// delta's content to the Applier, then call Finish.
func Begin(img *os.File, v Volume, base *Digests) (*Applier, error) {
	fi, err := img.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != v.BaseSize {
		return nil, fmt.Errorf("%s: the base image has %d bytes, the increment applies to %d", v.Name, fi.Size(), v.BaseSize)
	}
	if base == nil {
		if base, err = Scan(img, fi.Size()); err != nil {
			return nil, fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	d, err := BeginDigests(base, v)
	if err != nil {
		return nil, err
	}
	if err := img.Truncate(v.Size); err != nil {
		return nil, err
	}
	return &Applier{img: img, v: v, d: d}, nil
}

// Write takes the next len(p) bytes of the delta's content.
func (a *Applier) Write(p []byte) (int, error) {
	end := a.pos + int64(len(p))
	if _, err := a.d.Write(p); err != nil {
		return 0, err
	}
	for ; a.next < len(a.v.Extents); a.next++ {
		e := a.v.Extents[a.next]
		if e.Off >= end {
			break
		}
		from, to := max(e.Off, a.pos), min(e.Off+e.Len, end)
		if !e.Zero && from < to {
			if _, err := a.img.WriteAt(p[from-a.pos:to-a.pos], from); err != nil {
				return 0, err
			}
		}
		if e.Off+e.Len > end {
			break // the extent goes on in the next Write
		}
	}
	a.pos = end
	return len(p), nil
}

// Skip passes over n bytes of the delta that are a hole: unchanged.
func (a *Applier) Skip(n int64) error {
	if err := a.d.Skip(n); err != nil {
		return err
	}
	for a.next < len(a.v.Extents) && a.v.Extents[a.next].Off+a.v.Extents[a.next].Len <= a.pos+n {
		a.next++
	}
	a.pos += n
	return nil
}

// Finish zeroes the zero extents once the whole delta was written, and
// checks the result's root; it returns the result's digests. The caller
// commits the image only after that.
func (a *Applier) Finish() (*Digests, error) {
	d, err := a.d.Finish()
	if err != nil {
		return nil, err
	}
	for _, e := range a.v.Extents {
		if e.Zero {
			if err := zero(a.img, e.Off, e.Len); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// zero makes n bytes at off read as zeros: a hole where the filesystem can
// punch one, else written zeros.
func zero(f *os.File, off, n int64) error {
	const punchHole = 0x02 | 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	if punch(f, off, n, punchHole) == nil {
		return nil
	}
	zeros := make([]byte, min(n, 1<<20))
	for end := off + n; off < end; {
		k := min(int64(len(zeros)), end-off)
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// Hasher computes the block digests of an image as it streams past: its
// content is written to it from offset 0, and holes are skipped (it is a
// sparsetar.Skipper). A restore that verifies keeps only these digests of
// an image, so that a later increment's delta can be checked against it
// without the image.
type Hasher struct {
	d   Digests
	buf []byte // the current block's bytes so far
}

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher { return &Hasher{buf: make([]byte, 0, BlockSize)} }

// Write hashes the next len(p) bytes.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(h.buf) == 0 && len(p) >= BlockSize {
			// A whole block in p: hashed where it is, not copied.
			h.d.Blocks = append(h.d.Blocks, BlockSum(p[:BlockSize]))
			p = p[BlockSize:]
			continue
		}
		k := min(len(p), BlockSize-len(h.buf))
		h.buf = append(h.buf, p[:k]...)
		p = p[k:]
		if len(h.buf) == BlockSize {
			h.d.Blocks = append(h.d.Blocks, BlockSum(h.buf))
			h.buf = h.buf[:0]
		}
	}
	h.d.Size += int64(n)
	return n, nil
}

// Skip hashes n zero bytes, a hole.
func (h *Hasher) Skip(n int64) error {
	for n > 0 && len(h.buf) > 0 {
		k := min(n, int64(BlockSize-len(h.buf)))
		h.Write(zeroBytes[:k])
		n -= k
	}
	for ; n >= BlockSize; n -= BlockSize {
		h.d.Blocks = append(h.d.Blocks, zeroBlock)
		h.d.Size += BlockSize
	}
	h.Write(zeroBytes[:n])
	return nil
}

// Digests returns the digests of everything written.
func (h *Hasher) Digests() *Digests {
	d := &Digests{Size: h.d.Size, Blocks: h.d.Blocks}
	if len(h.buf) > 0 {
		d.Blocks = append(d.Blocks, sha256.Sum256(h.buf))
	}
	return d
}

var zeroBytes = make([]byte, BlockSize)

// DigestApplier applies a volume's delta to the digests of its base
// image instead of the image: what a verification of a chain does, with
// no scratch space. Write the delta's content to it, then call Finish.
type DigestApplier struct {
	v     Volume
	base  *Digests
	kind  []byte // per block of the result: 0 unchanged, 'd' data, 'z' zeros
	out   [][32]byte
	pos   int64
	block []byte
}

// BeginDigests checks that base is the base the volume's delta applies to
// (its size and root).
func BeginDigests(base *Digests, v Volume) (*DigestApplier, error) {
	if base.Size != v.BaseSize || base.Root() != v.BaseRoot {
		return nil, fmt.Errorf("%s: the base image is not the one this increment applies to (%d bytes, root %s; want %d bytes, root %s)", v.Name, base.Size, base.Root(), v.BaseSize, v.BaseRoot)
	}
	a := &DigestApplier{v: v, base: base, kind: make([]byte, blocks(v.Size)), out: make([][32]byte, blocks(v.Size))}
	for _, e := range v.Extents {
		k := byte('d')
		if e.Zero {
			k = 'z'
		}
		for b := e.Off / BlockSize; b*BlockSize < e.Off+e.Len; b++ {
			a.kind[b] = k
		}
	}
	return a, nil
}

// blockLen is the length of block b of the result.
func (a *DigestApplier) blockLen(b int64) int64 { return min(BlockSize, a.v.Size-b*BlockSize) }

// Write takes the next len(p) bytes of the delta's content.
func (a *DigestApplier) Write(p []byte) (int, error) {
	n := len(p)
	if a.pos+int64(n) > a.v.Size {
		return 0, fmt.Errorf("%s: the delta is longer than the volume's %d bytes", a.v.Name, a.v.Size)
	}
	for len(p) > 0 {
		b := a.pos / BlockSize
		k := min(int64(len(p)), (b+1)*BlockSize-a.pos)
		if a.kind[b] == 'd' {
			a.block = append(a.block, p[:k]...)
			if int64(len(a.block)) == a.blockLen(b) {
				a.out[b] = BlockSum(a.block)
				a.block = a.block[:0]
			}
		}
		p = p[k:]
		a.pos += k
	}
	return n, nil
}

// Skip passes over n bytes of the delta that are a hole: unchanged.
func (a *DigestApplier) Skip(n int64) error {
	if a.pos+n > a.v.Size {
		return fmt.Errorf("%s: the delta is longer than the volume's %d bytes", a.v.Name, a.v.Size)
	}
	for b := a.pos / BlockSize; n > 0 && b*BlockSize < a.pos+n; b++ {
		if a.kind[b] == 'd' {
			return fmt.Errorf("%s: the delta has a hole at %d where the map says data", a.v.Name, max(b*BlockSize, a.pos))
		}
	}
	a.pos += n
	return nil
}

// Finish completes the result's digests (unchanged blocks from the base,
// zeroed ones as zeros) and checks its root; it returns them.
func (a *DigestApplier) Finish() (*Digests, error) {
	v := a.v
	if a.pos != v.Size {
		return nil, fmt.Errorf("%s: the delta has %d bytes, the volume %d: the delta is damaged or cut short", v.Name, a.pos, v.Size)
	}
	for b := range a.out {
		n := a.blockLen(int64(b))
		switch {
		case a.kind[b] == 'd':
		case a.kind[b] == 0 && b < len(a.base.Blocks):
			a.out[b] = a.base.Blocks[b]
		case n == BlockSize:
			a.out[b] = zeroBlock
		default:
			a.out[b] = sha256.Sum256(zeroBytes[:n])
		}
	}
	d := &Digests{Size: v.Size, Blocks: a.out}
	if d.Root() != v.Root {
		return nil, fmt.Errorf("%s: the result does not match the increment's root (root %s, want %s): the delta is damaged", v.Name, d.Root(), v.Root)
	}
	return d, nil
}
