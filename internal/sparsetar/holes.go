package sparsetar

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strconv"

	"pedos.dev/backup/internal/elide"
)

// Reading a sparse member through archive/tar makes zeros for all its
// holes (its hole-skipping writeTo is unexported): a 20 GiB image with 1
// GiB of data costs 19 GiB of zeroing and comparing. For PAX 1.0 sparse
// members (what AddVolume and `tar --sparse --posix` write) and old GNU
// sparse members (what `tar --sparse` writes by default, as the writers of
// formats 2 and 3 and the reference writer's file pool did) the readers
// here instead let archive/tar parse and check the headers and the sparse
// map, recover the map from the bytes archive/tar consumed for them, and
// copy the data fragments themselves, skipping the holes in a SparseWriter
// (or, for io.Discard, not producing them at all). Anything else, or
// anything unexpected in those bytes, takes the archive/tar path.
//
// What such a member may make us write is then bounded by the data it
// carries, not by its apparent length: the older writers recorded a VM's
// backup-size as disk usage, so a 64 MiB image holding 4 MiB of data must
// pass a bound of about 4 MiB. Its holes cost neither disk nor time, and
// MaxApparentSize only keeps the lengths sane. A member whose holes
// archive/tar must fill with zeros is bounded by its apparent length, as
// those zeros cost time.

// MaxApparentSize bounds the length of a sparse member whose holes are
// skipped (1 PiB: far beyond any disk image, far below what would wrap).
const MaxApparentSize = 1 << 50

// maxCapture bounds the header bytes kept for the map (a map this long has
// about a million fragments).
const maxCapture = 16 << 20

// startCapture makes the reader keep a copy of what it reads, up to
// maxCapture bytes.
func (e *endReader) startCapture() {
	e.captured, e.capturing, e.overflow = e.captured[:0], true, false
}

// stopCapture returns what was read since startCapture, or nil if it was
// more than maxCapture bytes.
func (e *endReader) stopCapture() []byte {
	e.capturing = false
	if e.overflow {
		return nil
	}
	return e.captured
}

func (e *endReader) keep(p []byte) {
	if !e.capturing || e.overflow {
		return
	}
	if len(e.captured)+len(p) > maxCapture {
		e.overflow, e.captured = true, nil
		return
	}
	e.captured = append(e.captured, p...)
}

// sparseLayout is where a sparse member's data lies.
type sparseLayout struct {
	regions  []region
	mapLen   int64 // bytes of the padded map before the data (PAX 1.0)
	physical int64 // the member's stored size: map plus data
}

// data is the number of bytes the member carries, its holes left out.
func (l sparseLayout) data() int64 { return l.physical - l.mapLen }

// layoutOf recovers the layout of a sparse member from captured, the
// bytes archive/tar read to return hdr. Reading a member's headers also
// reads the padding of the member before, which is what precedes the
// first whole block.
func layoutOf(hdr *tar.Header, captured []byte) (sparseLayout, bool) {
	if captured == nil {
		return sparseLayout{}, false
	}
	captured = captured[len(captured)%blockSize:]
	if hdr.Typeflag == tar.TypeGNUSparse {
		return gnuLayout(hdr, captured)
	}
	return pax1Layout(hdr, captured)
}

// pax1Layout recovers the layout of the PAX 1.0 sparse member hdr from
// captured, the bytes archive/tar read to return hdr (extended headers,
// the member's header block, the map). ok is false when hdr is not such a
// member or captured does not hold exactly what was expected.
func pax1Layout(hdr *tar.Header, captured []byte) (l sparseLayout, ok bool) {
	if hdr.PAXRecords["GNU.sparse.major"] != "1" || hdr.PAXRecords["GNU.sparse.minor"] != "0" || captured == nil {
		return l, false
	}
	// Only the plain layout is taken: one extended header, at most one
	// size record in it, no global headers. (Several extended headers, or
	// repeated records, have their own precedence rules in archive/tar;
	// such members take its path.)
	off := int64(0)
	physical := int64(-1)
	extended := 0
	for {
		if off+blockSize > int64(len(captured)) {
			return l, false
		}
		h := captured[off : off+blockSize]
		size, err := parseNumeric(h[124:136])
		if err != nil || size < 0 {
			return l, false
		}
		off += blockSize
		switch h[156] {
		case tar.TypeXHeader:
			end := off + size
			if extended++; extended > 1 || end > int64(len(captured)) {
				return l, false
			}
			switch values := paxValues(captured[off:end], "size"); {
			case len(values) > 1:
				return l, false
			case len(values) == 1:
				if physical, err = strconv.ParseInt(values[0], 10, 64); err != nil || physical < 0 {
					return l, false
				}
			}
			off += size + padding(size)
			continue
		case tar.TypeReg, tar.TypeRegA:
			if physical < 0 {
				physical = size
			}
		default:
			return l, false
		}
		break
	}
	regions, mapLen, ok := parseSparseMap(captured[off:])
	if !ok || off+mapLen != int64(len(captured)) {
		return l, false
	}
	return checkedLayout(hdr, sparseLayout{regions: regions, mapLen: mapLen, physical: physical})
}

// checkedLayout makes the checks archive/tar makes, so that a map it took
// and ours agree: in order, not overlapping, within the file, and the data
// filling the member exactly.
func checkedLayout(hdr *tar.Header, l sparseLayout) (sparseLayout, bool) {
	var data, end int64
	for _, r := range l.regions {
		if r.off < end || r.len < 0 || r.off+r.len > hdr.Size || r.off+r.len < r.off {
			return sparseLayout{}, false
		}
		end = r.off + r.len
		data += r.len
	}
	if l.mapLen+data != l.physical {
		return sparseLayout{}, false
	}
	return l, true
}

// Old GNU sparse headers ('S'): four map entries of offset and length (12
// bytes each) at 386, an "extended" flag at 482 saying that blocks of 21
// more entries (flag at 504) follow the header, and the real size at 483.
// The stored size at 124 counts the data only.
const (
	gnuSparseMap      = 386
	gnuSparseEntries  = 4
	gnuIsExtended     = 482
	gnuExtEntries     = 21
	gnuExtIsExtended  = 504
	gnuSparseEntryLen = 24
)

// gnuLayout recovers the layout of an old GNU sparse member: captured may
// start with GNU long-name or long-link members, then holds the 'S'
// header and its extension blocks, nothing else.
func gnuLayout(hdr *tar.Header, captured []byte) (l sparseLayout, ok bool) {
	off := 0
	for {
		if off+blockSize > len(captured) {
			return l, false
		}
		h := captured[off : off+blockSize]
		if h[156] != 'L' && h[156] != 'K' {
			break
		}
		size, err := parseNumeric(h[124:136])
		if err != nil || size < 0 || size > int64(len(captured)) {
			return l, false
		}
		off += blockSize + int(size+padding(size))
	}
	h := captured[off : off+blockSize]
	if h[156] != tar.TypeGNUSparse {
		return l, false
	}
	physical, err := parseNumeric(h[124:136])
	if err != nil || physical < 0 {
		return l, false
	}
	entries, more := h[gnuSparseMap:gnuSparseMap+gnuSparseEntries*gnuSparseEntryLen], h[gnuIsExtended] != 0
	off += blockSize
	for {
		for i := 0; i+gnuSparseEntryLen <= len(entries); i += gnuSparseEntryLen {
			e := entries[i : i+gnuSparseEntryLen]
			if e[0] == 0 { // as GNU tar and archive/tar end the list
				break
			}
			o, err1 := parseNumeric(e[:12])
			n, err2 := parseNumeric(e[12:])
			if err1 != nil || err2 != nil {
				return l, false
			}
			l.regions = append(l.regions, region{o, n})
		}
		if !more {
			break
		}
		if off+blockSize > len(captured) {
			return l, false
		}
		ext := captured[off : off+blockSize]
		entries, more = ext[:gnuExtEntries*gnuSparseEntryLen], ext[gnuExtIsExtended] != 0
		off += blockSize
	}
	if off != len(captured) {
		return sparseLayout{}, false
	}
	l.physical = physical
	return checkedLayout(hdr, l)
}

// parseSparseMap reads a PAX 1.0 map: decimal numbers, one per line, the
// count of regions then offset and length of each, padded to blocks.
func parseSparseMap(b []byte) (regions []region, mapLen int64, ok bool) {
	pos := 0
	number := func() (int64, bool) {
		i := bytes.IndexByte(b[pos:], '\n')
		if i <= 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(string(b[pos:pos+i]), 10, 64)
		pos += i + 1
		return n, err == nil && n >= 0
	}
	// Each region takes at least four bytes ("0\n0\n"), so a count above
	// len(b)/4 is a lie; checked before it sizes the slice.
	count, ok := number()
	if !ok || count > int64(len(b)/4) {
		return nil, 0, false
	}
	regions = make([]region, 0, count)
	for range count {
		o, ok1 := number()
		n, ok2 := number()
		if !ok1 || !ok2 {
			return nil, 0, false
		}
		regions = append(regions, region{o, n})
	}
	mapLen = int64(pos) + padding(int64(pos))
	return regions, mapLen, true
}

// parseNumeric reads a numeric header field: octal, or GNU's base-256
// (first byte 0x80, then big-endian) that `tar` uses for sizes and
// offsets of 8 GiB and more. Negative base-256 values are refused.
func parseNumeric(b []byte) (int64, error) {
	if len(b) > 0 && b[0] == 0x80 {
		var v uint64
		for _, c := range b[1:] {
			if v > 1<<55 {
				return 0, strconv.ErrRange
			}
			v = v<<8 | uint64(c)
		}
		if v > 1<<62 {
			return 0, strconv.ErrRange
		}
		return int64(v), nil
	}
	s := string(bytes.Trim(b, " \x00"))
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// paxValues lists the values of key in pax records "<len> key=value\n"
// (archive/tar has checked their form).
func paxValues(b []byte, key string) []string {
	var out []string
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return append(out, "") // malformed: make the caller decline
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp+1 || n > len(b) {
			return append(out, "")
		}
		k, v, _ := bytes.Cut(b[sp+1:n-1], []byte("="))
		if string(k) == key {
			out = append(out, string(v))
		}
		b = b[n:]
	}
	return out
}

// copyFragments writes the logical content of a sparse member whose data
// follows in er to dst, a Skipper (holes skipped) or io.Discard
// (nothing produced), and reads the member's padding.
func copyFragments(dst io.Writer, er *endReader, l sparseLayout, size int64, name string) (int64, error) {
	sw, _ := dst.(Skipper)
	buf := make([]byte, 1<<20)
	var pos int64
	for _, r := range l.regions {
		if sw != nil {
			if err := sw.Skip(r.off - pos); err != nil {
				return pos, err
			}
		}
		n, err := io.CopyBuffer(dst, io.LimitReader(er, r.len), buf)
		pos = r.off + n
		if err == nil && n < r.len {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return pos, fmt.Errorf("sparsetar: copying %s: %w", elide.Quote(name), err)
		}
	}
	if sw != nil {
		if err := sw.Skip(size - pos); err != nil {
			return pos, err
		}
	}
	if n, err := io.CopyN(io.Discard, er, padding(l.physical)); err != nil || n < padding(l.physical) {
		return size, fmt.Errorf("sparsetar: copying %s: %w", elide.Quote(name), io.ErrUnexpectedEOF)
	}
	return size, nil
}
