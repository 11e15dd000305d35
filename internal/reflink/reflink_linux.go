package reflink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CloneFile makes the empty file dst share all of src's blocks (FICLONE).
func CloneFile(dst, src *os.File) error {
	err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("clone %s: %w (%v)", src.Name(), ErrUnsupported, err)
	}
	if err != nil {
		return fmt.Errorf("clone %s: %w", src.Name(), err)
	}
	return nil
}

// FIEMAP, as linux/fiemap.h lays it out: a 32-byte request header
// followed by room for extents of 56 bytes each.
const (
	fsIocFiemap    = 0xC020660B
	fiemapFlagSync = 0x1 // write dirty data out first, so the map is final
	flagLast       = 0x1 // the file's last extent
	headerSize     = 32
	extentSize     = 56
	extentsPerCall = 512
)

// Map returns f's extents, sorted by logical offset; holes are the gaps
// between them. Dirty data is written out first so that every extent has
// its disk address.
func Map(f *os.File) ([]Extent, error) {
	buf := make([]byte, headerSize+extentSize*extentsPerCall)
	var out []Extent
	var start uint64
	for {
		clear(buf)
		binary.NativeEndian.PutUint64(buf[0:], start)
		binary.NativeEndian.PutUint64(buf[8:], ^uint64(0)-start)
		binary.NativeEndian.PutUint32(buf[16:], fiemapFlagSync)
		binary.NativeEndian.PutUint32(buf[24:], extentsPerCall)
		_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0])))
		if e != 0 {
			if e == unix.EOPNOTSUPP || e == unix.ENOTTY || e == unix.EBADR {
				return nil, fmt.Errorf("extent map of %s: %w (%v)", f.Name(), ErrUnsupported, e)
			}
			return nil, fmt.Errorf("extent map of %s: %w", f.Name(), e)
		}
		mapped := binary.NativeEndian.Uint32(buf[20:])
		if mapped == 0 {
			return out, nil
		}
		for i := range min(mapped, extentsPerCall) {
			x := buf[headerSize+extentSize*int(i):]
			e := Extent{
				Logical:  int64(binary.NativeEndian.Uint64(x[0:])),
				Physical: int64(binary.NativeEndian.Uint64(x[8:])),
				Length:   int64(binary.NativeEndian.Uint64(x[16:])),
				Flags:    binary.NativeEndian.Uint32(x[40:]),
			}
			if n := len(out); n > 0 && e.Logical < out[n-1].Logical+out[n-1].Length {
				return nil, fmt.Errorf("extent map of %s: extents out of order at %d", f.Name(), e.Logical)
			}
			out = append(out, e)
			if e.Flags&flagLast != 0 {
				return out, nil
			}
			start = uint64(e.Logical + e.Length)
		}
	}
}
