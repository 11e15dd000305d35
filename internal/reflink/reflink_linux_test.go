package reflink_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"pedos.dev/backup/internal/reflink"
	"pedos.dev/backup/internal/testutil"
)

const blockSize = 64 << 10

// On real btrfs (plain and compressed) and XFS: a snapshot by Clone, the
// image written, holes punched, grown; then every block Changed calls
// unchanged must read the same in the snapshot and the image, and Changed
// must name far fewer blocks than a whole-image scan. Then the same after
// the image is defragmented, which moves blocks without changing them.
func TestChangedOnFilesystems(t *testing.T) {
	for _, fs := range []struct{ name, fstype, opts, defrag string }{
		{"btrfs", "btrfs", "", "btrfs"},
		// compress-force: plain compress gives up on a file once it has
		// met incompressible data.
		{"btrfs-zstd", "btrfs", "compress-force=zstd", "btrfs"},
		{"xfs", "xfs", "", "xfs_fsr"},
	} {
		t.Run(fs.name, func(t *testing.T) {
			dir := testutil.MountLoopFS(t, fs.fstype, fs.opts)
			defragTool := testutil.RequireTool(t, fs.defrag)
			rng := rand.New(rand.NewChaCha8([32]byte{byte(len(fs.name))}))
			img := filepath.Join(dir, "private.img")
			f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const size = 32 << 20
			writeImage(t, f, rng, size)

			snap := filepath.Join(dir, "snap-1")
			if err := reflink.Clone(snap, f); err != nil {
				t.Fatal(err)
			}
			touched := map[int64]bool{}
			for range 20 {
				off, n := rng.Int64N(size), 1+rng.Int64N(200<<10)
				writeRandom(t, f, rng, off, n)
				for b := off / blockSize; b <= (off+n-1)/blockSize; b++ {
					touched[b] = true
				}
			}
			if err := syscall.Fallocate(int(f.Fd()), 0x3 /* punch hole, keep size */, 20<<20, 1<<20); err != nil {
				t.Fatal(err)
			}
			for b := int64(20<<20) / blockSize; b < (21<<20)/blockSize; b++ {
				touched[b] = true
			}
			writeRandom(t, f, rng, size, 100<<10) // grown by 100 KiB
			changed := check(t, snap, f)
			if max := 3*len(touched) + 8; changed > max {
				t.Errorf("%d blocks reported changed, %d touched (at most %d expected)", changed, len(touched), max)
			}

			// Defragmenting moves blocks: they may count as changed, but
			// nothing changed may count as unchanged.
			snap2 := filepath.Join(dir, "snap-2")
			if err := reflink.Clone(snap2, f); err != nil {
				t.Fatal(err)
			}
			writeRandom(t, f, rng, 3<<20, 5000)
			args := []string{img}
			if fs.defrag == "btrfs" {
				args = []string{"filesystem", "defragment", "-f", img}
			}
			if out, err := exec.Command(defragTool, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", fs.defrag, err, out)
			}
			writeRandom(t, f, rng, 9<<20, 70<<10)
			check(t, snap2, f)
		})
	}
}

// check compares snap with f block by block where Changed says unchanged,
// and returns how many blocks Changed named.
func check(t *testing.T, snap string, f *os.File) int {
	t.Helper()
	s, err := os.Open(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	was, err := reflink.Map(s)
	if err != nil {
		t.Fatal(err)
	}
	now, err := reflink.Map(f)
	if err != nil {
		t.Fatal(err)
	}
	sfi, _ := s.Stat()
	ffi, _ := f.Stat()
	changed := reflink.Changed(was, now, sfi.Size(), ffi.Size(), blockSize)
	n := 0
	a, b := make([]byte, blockSize), make([]byte, blockSize)
	for i, c := range changed {
		if c {
			n++
			continue
		}
		if _, err := s.ReadAt(a, int64(i)*blockSize); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(b, int64(i)*blockSize); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("block %d reported unchanged but differs", i)
		}
	}
	t.Logf("%d of %d blocks reported changed (%d extents before, %d now)", n, len(changed), len(was), len(now))
	return n
}

// writeImage fills f like a volume: runs of random data, of text that
// compresses, and holes.
func writeImage(t *testing.T, f *os.File, rng *rand.Rand, size int64) {
	t.Helper()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += 1 << 20 {
		switch off / (1 << 20) % 3 {
		case 0:
			writeRandom(t, f, rng, off, 1<<20)
		case 1:
			text := bytes.Repeat([]byte("a line of a log file, over and over\n"), (1<<20)/36+1)
			if _, err := f.WriteAt(text[:1<<20], off); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func writeRandom(t *testing.T, f *os.File, rng *rand.Rand, off, n int64) {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A clone across filesystems, or on one that shares no blocks, is
// ErrUnsupported and leaves no file.
func TestCloneUnsupported(t *testing.T) {
	dir := testutil.MountLoopFS(t, "btrfs", "")
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := reflink.Clone(dst, src); !errors.Is(err, reflink.ErrUnsupported) {
		t.Fatalf("clone to another filesystem: %v, want ErrUnsupported", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("failed clone left %s: %v", dst, err)
	}
}
