package sparsetar

import (
	"errors"
	"os"
	"syscall"
)

// lseek whence values on Linux (not in package syscall).
const (
	seekData = 3
	seekHole = 4
)

// dataRegions lists f's data regions below size using SEEK_DATA/SEEK_HOLE,
// so holes are never read. A filesystem without support is treated as
// all data, which is still correct, just not sparse.
func dataRegions(f *os.File, size int64) ([]region, error) {
	var regions []region
	for off := int64(0); off < size; {
		data, err := f.Seek(off, seekData)
		switch {
		case errors.Is(err, syscall.ENXIO):
			return regions, nil // no data after off: the rest is a hole
		case off == 0 && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP)):
			return []region{{0, size}}, nil
		case err != nil:
			return nil, err
		case data >= size:
			return regions, nil // data appended since size was taken
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		regions = append(regions, region{data, hole - data})
		off = hole
	}
	return regions, nil
}
