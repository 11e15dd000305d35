package sparsetar

import (
	"archive/tar"
	"io/fs"
	"os"
	"time"
)

// The lengths of what Writer writes, known before writing: the backup
// engine records each VM's size in the archive's qubes.xml, which comes
// before the VMs' data.

// EndSize is the length of the end-of-archive marker Close writes.
const EndSize = 2 * blockSize

// VolumeSize is the exact length of the member AddVolume writes for f as it
// is now, and the data bytes in it (the rest is holes).
func VolumeSize(name string, f *os.File) (member, data int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size, err := fileSize(f)
	if err != nil {
		return 0, 0, err
	}
	regions, err := dataRegions(f, size)
	if err != nil {
		return 0, 0, err
	}
	hdr, spMap, data, err := sparseHeaders(name, size, regions, fi.ModTime())
	if err != nil {
		return 0, 0, err
	}
	return int64(len(hdr)+len(spMap)) + data + padding(data), data, nil
}

// ExtentsSize is the exact length of the member AddExtents writes for
// these runs of a size-byte image, and the data bytes in it.
func ExtentsSize(name string, size int64, runs []Region, mtime time.Time) (member, data int64, err error) {
	regions := make([]region, len(runs))
	for i, r := range runs {
		regions[i] = region{r.Offset, r.Length}
	}
	hdr, spMap, data, err := sparseHeaders(name, size, regions, mtime)
	if err != nil {
		return 0, 0, err
	}
	return int64(len(hdr)+len(spMap)) + data + padding(data), data, nil
}

// FileSize is the exact length of the member AddBytes or AddFile writes for
// size bytes of content.
func FileSize(name string, size int64, mode fs.FileMode, mtime time.Time) (int64, error) {
	hdr := header(tar.TypeReg, name, mode, mtime)
	hdr.Size = size
	return entryLen(hdr)
}

// TreeSize is the exact length of the members AddTree writes for dir as it
// is now (a file that changes size meanwhile changes it too).
func TreeSize(name, dir string) (int64, error) {
	var total int64
	err := walkTree(name, dir, func(hdr *tar.Header, _ string) error {
		n, err := entryLen(hdr)
		total += n
		return err
	})
	return total, err
}

// entryLen is a header's length as archive/tar writes it (pax records
// included) plus its padded data.
func entryLen(hdr *tar.Header) (int64, error) {
	var n counter
	if err := tar.NewWriter(&n).WriteHeader(hdr); err != nil {
		return 0, err
	}
	return int64(n) + hdr.Size + padding(hdr.Size), nil
}

type counter int64

func (c *counter) Write(p []byte) (int, error) {
	*c += counter(len(p))
	return len(p), nil
}

// Region is a run of data in a sparse file.
type Region struct{ Offset, Length int64 }

// DataRegions lists f's data below size, found with SEEK_DATA/SEEK_HOLE
// (all of it where the filesystem cannot tell), the runs AddVolume stores.
func DataRegions(f *os.File, size int64) ([]Region, error) {
	regions, err := dataRegions(f, size)
	out := make([]Region, len(regions))
	for i, r := range regions {
		out[i] = Region{r.off, r.len}
	}
	return out, err
}
