package sparsetar

import (
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

const blockSize = 512

// region is one run of data in a sparse file; everything else is a hole.
type region struct{ off, len int64 }

// AddVolume stores the disk image f as name in the PAX 1.0 sparse format
// (GNU tar --sparse --posix): holes are found with SEEK_DATA/SEEK_HOLE and
// never read. It returns the number of data bytes stored, for progress.
// f may be a regular file or a block device; its size must not change
// while it is being stored, or AddVolume fails.
func (w *Writer) AddVolume(name string, f *os.File) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := checkName(name); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size, err := fileSize(f)
	if err != nil {
		return 0, err
	}
	regions, err := dataRegions(f, size)
	if err != nil {
		return 0, err
	}
	data, err := w.addSparse(name, f, f.Name(), size, regions, fi.ModTime())
	if err != nil {
		return 0, err
	}
	// The map was taken from the old size; a file that grew or shrank
	// meanwhile would be stored inconsistently.
	if now, err := fileSize(f); err != nil || now != size {
		if err == nil {
			err = fmt.Errorf("sparsetar: %s changed size from %d to %d while being read", f.Name(), size, now)
		}
		return 0, w.fail(err)
	}
	return data, nil
}

// AddExtents stores as name, in the same format, a sparse image of size
// bytes holding only the given runs of r (in order and apart; the rest
// are holes): an increment's delta of a volume, whose holes mean
// "unchanged". It returns the number of data bytes stored.
func (w *Writer) AddExtents(name string, r io.ReaderAt, size int64, runs []Region, mtime time.Time) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := checkName(name); err != nil {
		return 0, err
	}
	regions := make([]region, 0, len(runs))
	end := int64(0)
	for _, run := range runs {
		if run.Length <= 0 || run.Offset < end || run.Length > size-run.Offset {
			return 0, fmt.Errorf("sparsetar: %s: run %d+%d out of order or past %d bytes", name, run.Offset, run.Length, size)
		}
		regions = append(regions, region{run.Offset, run.Length})
		end = run.Offset + run.Length
	}
	return w.addSparse(name, r, name, size, regions, mtime)
}

// addSparse writes a sparse member: its headers and map, then the data
// of each region read from r (what names r in errors).
func (w *Writer) addSparse(name string, r io.ReaderAt, what string, size int64, regions []region, mtime time.Time) (int64, error) {
	hdr, spMap, data, err := sparseHeaders(name, size, regions, mtime)
	if err != nil {
		return 0, err
	}
	// From here on the stream is being written: any error is sticky.
	if err := w.tw.Flush(); err != nil {
		return 0, w.fail(err)
	}
	if _, err := w.w.Write(append(hdr, spMap...)); err != nil {
		return 0, w.fail(err)
	}
	buf := make([]byte, 1<<20)
	for _, rg := range regions {
		n, err := io.CopyBuffer(w.w, io.NewSectionReader(r, rg.off, rg.len), buf)
		if err == nil && n < rg.len {
			err = fmt.Errorf("sparsetar: %s shrank while being read", what)
		}
		if err != nil {
			return 0, w.fail(err)
		}
	}
	if _, err := w.w.Write(make([]byte, padding(data))); err != nil {
		return 0, w.fail(err)
	}
	return data, nil
}

// fileSize returns the size of a regular file or block device.
func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	switch {
	case fi.Mode().IsRegular():
		return fi.Size(), nil
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		return f.Seek(0, io.SeekEnd) // Stat reports 0 for block devices
	}
	return 0, fmt.Errorf("sparsetar: %s is neither a regular file nor a block device", f.Name())
}

func padding(n int64) int64 { return -n & (blockSize - 1) }

// sparseHeaders returns the pax extended header and ustar header blocks,
// the padded sparse map, and the number of data bytes of a PAX 1.0 sparse
// member.
func sparseHeaders(name string, size int64, regions []region, mtime time.Time) (hdr, spMap []byte, data int64, err error) {
	// The map must end with an entry that reaches EOF: GNU tar sets the
	// file's length from it, so a trailing hole would otherwise be lost.
	if n := len(regions); n == 0 || regions[n-1].off+regions[n-1].len < size {
		regions = append(regions, region{size, 0})
	}
	spMap = strconv.AppendInt(nil, int64(len(regions)), 10)
	spMap = append(spMap, '\n')
	for _, r := range regions {
		spMap = strconv.AppendInt(spMap, r.off, 10)
		spMap = append(spMap, '\n')
		spMap = strconv.AppendInt(spMap, r.len, 10)
		spMap = append(spMap, '\n')
		data += r.len
	}
	spMap = append(spMap, make([]byte, padding(int64(len(spMap))))...)
	stored := int64(len(spMap)) + data

	var pax []byte
	pax = paxRecord(pax, "GNU.sparse.major", "1")
	pax = paxRecord(pax, "GNU.sparse.minor", "0")
	pax = paxRecord(pax, "GNU.sparse.name", name)
	pax = paxRecord(pax, "GNU.sparse.realsize", strconv.FormatInt(size, 10))
	if stored > maxOctal11 {
		pax = paxRecord(pax, "size", strconv.FormatInt(stored, 10))
	}
	// Named as GNU tar does, so a tar without sparse support extracts
	// the condensed data under a name that cannot clobber the real file.
	dir, base := path.Split(name)
	xhdr, err := ustarHeader(dir+"PaxHeaders/"+base, 'x', int64(len(pax)), mtime)
	if err != nil {
		return nil, nil, 0, err
	}
	shdr, err := ustarHeader(dir+"GNUSparseFile.0/"+base, '0', stored, mtime)
	if err != nil {
		return nil, nil, 0, err
	}
	hdr = append(xhdr, pax...)
	hdr = append(hdr, make([]byte, padding(int64(len(pax))))...)
	return append(hdr, shdr...), spMap, data, nil
}

// paxRecord appends "<len> key=value\n", where len counts the whole record
// including its own digits.
func paxRecord(b []byte, key, value string) []byte {
	n := len(key) + len(value) + 3 // space, '=', newline
	l := n + len(strconv.Itoa(n))
	if len(strconv.Itoa(l)) > len(strconv.Itoa(n)) {
		l++ // the length grew a digit by counting itself
	}
	return fmt.Appendf(b, "%d %s=%s\n", l, key, value)
}

const maxOctal11 = 1<<33 - 1 // largest value of an 11-digit octal field

// ustarHeader formats one POSIX ustar header block, mode 0644, owner 0:0.
// A size too large for the field is left 0 for a pax "size" record.
func ustarHeader(name string, typ byte, size int64, mtime time.Time) ([]byte, error) {
	b := make([]byte, blockSize)
	prefix := ""
	if len(name) > 100 {
		// Split at a slash into the 155-byte prefix and 100-byte name.
		i := strings.LastIndexByte(name[:min(len(name), 156)], '/')
		if i <= 0 || len(name)-i-1 > 100 {
			return nil, fmt.Errorf("sparsetar: name %q too long for a sparse member", name)
		}
		prefix, name = name[:i], name[i+1:]
	}
	if size > maxOctal11 {
		size = 0
	}
	secs := min(max(mtime.Unix(), 0), maxOctal11)
	copy(b[0:100], name)
	octal(b[100:108], 0o644)
	octal(b[108:116], 0) // uid
	octal(b[116:124], 0) // gid
	octal(b[124:136], size)
	octal(b[136:148], secs)
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	octal(b[329:337], 0) // devmajor
	octal(b[337:345], 0) // devminor
	copy(b[345:500], prefix)
	// The checksum is summed with its own field as spaces, then stored as
	// six octal digits, NUL, space (as GNU tar and archive/tar write it).
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b, nil
}

// octal fills a numeric field with zero-padded octal digits and a NUL.
func octal(field []byte, v int64) {
	copy(field, fmt.Sprintf("%0*o\x00", len(field)-1, v))
}
