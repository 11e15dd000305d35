// Package reflink finds which blocks of a volume image changed since a
// reflink snapshot of it was taken, without reading either: on a
// filesystem that shares blocks between files (btrfs, XFS), a snapshot
// made with FICLONE starts out pointing at the image's own disk blocks,
// and a later write to the image goes to new blocks (copy on write). So a
// block whose disk mapping is the same in the image and in the snapshot
// holds the same data; one whose mapping differs may have changed.
//
// The answer errs one way only: a block reported unchanged must be
// unchanged, while one reported changed may not be (a defragmented or
// rewritten block moves without changing). Whoever uses it hashes the
// reported blocks to know, and checks the whole image by hashing now and
// then (doc/incremental.md), because a detector that reads metadata is
// only as right as the filesystem's reports.
package reflink

import (
	"errors"
	"os"
)

// ErrUnsupported is returned where the filesystem cannot share blocks
// between files or cannot report where a file's blocks are.
var ErrUnsupported = errors.New("the filesystem makes no reflinks or reports no extents")

// Extent is one run of a file's blocks as FIEMAP reports it: Length bytes
// from Logical in the file, stored from Physical on the disk.
type Extent struct {
	Logical, Physical, Length int64
	Flags                     uint32
}

// FIEMAP extent flags that matter here.
const (
	flagUnknown   = 0x2   // where the data is, is not known
	flagDelalloc  = 0x4   // not yet given blocks
	flagEncoded   = 0x8   // compressed (or otherwise encoded): Physical is the encoded extent's start
	flagEncrypted = 0x80  // encrypted data
	flagNotAlign  = 0x100 // not block-aligned
	flagInline    = 0x200 // stored in the metadata
	flagTail      = 0x400 // packed with other files' tails
	flagUnwritten = 0x800 // allocated, reads as zeros

	// unplaced: a block touched by such an extent has no disk address to
	// compare, so it counts as changed.
	unplaced = flagUnknown | flagDelalloc | flagNotAlign | flagInline | flagTail
	// compared: flags that change what the same disk blocks read as.
	compared = flagEncoded | flagEncrypted | flagUnwritten
)

// Clone makes path a reflink snapshot of src: a new file (path must not
// exist) sharing src's blocks. Where the filesystem cannot, it returns an
// error wrapping ErrUnsupported and leaves no file.
func Clone(path string, src *os.File) error {
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = CloneFile(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// Changed compares the extent maps of a snapshot (was, of a file then
// wasSize bytes long) and of the file now (nowSize bytes), and returns
// for each block of blockSize bytes of the file now whether it may have
// changed. A block is unchanged only when it lies wholly within both
// sizes and every byte of it is mapped alike in both: the same disk
// address (or a hole in both) with the same encoding.
func Changed(was, now []Extent, wasSize, nowSize, blockSize int64) []bool {
	n := (nowSize + blockSize - 1) / blockSize
	changed := make([]bool, n)
	wasAt, nowAt := 0, 0
	for b := range n {
		from, to := b*blockSize, min((b+1)*blockSize, nowSize)
		if to > wasSize || to-from != blockSize && to != wasSize {
			// Beyond the old size, or a last block whose length changed.
			changed[b] = true
			continue
		}
		var p, q []piece
		p, wasAt = pieces(was, wasAt, from, to)
		q, nowAt = pieces(now, nowAt, from, to)
		changed[b] = !samePieces(p, q)
	}
	return changed
}

// piece is the part of an extent within one block, as compared: its
// range, and what identifies its data on the disk.
type piece struct {
	from, to int64
	// where: for a plain extent, the disk address of from; for an encoded
	// one, the extent's own start, with at and length saying which part of
	// the file it was (an encoded extent cannot be addressed inside).
	where, at, length int64
	flags             uint32
	unplaced          bool
}

// pieces returns the parts of exts (sorted by Logical) within [from, to),
// adjacent plain ones that continue each other on the disk joined (so
// that two reports of the same blocks, cut differently, compare equal),
// and the index of the first extent a later block can touch.
func pieces(exts []Extent, i int, from, to int64) ([]piece, int) {
	for i < len(exts) && exts[i].Logical+exts[i].Length <= from {
		i++
	}
	var out []piece
	for j := i; j < len(exts) && exts[j].Logical < to; j++ {
		e := exts[j]
		p := piece{from: max(from, e.Logical), to: min(to, e.Logical+e.Length), flags: e.Flags & compared,
			unplaced: e.Flags&unplaced != 0}
		if e.Flags&flagEncoded != 0 {
			p.where, p.at, p.length = e.Physical, e.Logical, e.Length
		} else {
			p.where = e.Physical + (p.from - e.Logical)
		}
		if k := len(out) - 1; k >= 0 && p.flags&flagEncoded == 0 && out[k].flags == p.flags && !out[k].unplaced && !p.unplaced &&
			out[k].to == p.from && out[k].where+(out[k].to-out[k].from) == p.where {
			out[k].to = p.to
			continue
		}
		out = append(out, p)
	}
	return out, i
}

func samePieces(p, q []piece) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] || p[i].unplaced {
			return false
		}
	}
	return true
}
