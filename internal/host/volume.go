package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"pedos.dev/backup/internal/reflink"
	"pedos.dev/backup/internal/sparsetar"
)

// Volumes live in file pools as sparse images <dir_path>/<vid>.img (see
// pool.go), for example appvms/work/private.img under the host root in
// the pool varlibpedos. Only save_on_stop volumes have an image
// of their own; an AppVM's root is its template's root (snap_on_start) and
// volatile volumes keep nothing.
//
// A committed image is never written in place: a start copies it to
// <vid>-dirty.img, which the running VM uses, and a shutdown, an import or
// a forced shrink replaces it by rename. So a reader that opened it (a
// backup) keeps a consistent image to the end, whatever happens meanwhile.
// Growing an image (truncate) is the one in-place change: it only appends
// a hole.

// VolumeInfo describes a volume and the image a backup reads.
type VolumeInfo struct {
	Volume        // the volume-config entry
	VM     string // owner
	// Path is the committed image: what a backup stores and an export
	// copies. "" for a volume without an image of its own.
	Path string
	// PoolDir is the directory of the image's pool (its dir_path); ""
	// when Path is.
	PoolDir string
	// Nominal is the image's length (the configured size when there is
	// no image); Usage is the space it takes on disk (st_blocks*512),
	// what Qubes calls usage.
	Nominal, Usage int64
	// Running: the VM runs, so Path holds its state from before its start.
	Running bool
}

var customVolRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

func dirtyPath(img string) string { return strings.TrimSuffix(img, ".img") + "-dirty.img" }

func (h *Host) lookupVolume(vm, vol string) (*Domain, Volume, error) {
	db, err := h.Load()
	if err != nil {
		return nil, Volume{}, err
	}
	d, err := db.Domain(vm)
	if err != nil {
		return nil, Volume{}, err
	}
	v, err := d.Volume(vol)
	return d, v, err
}

// VolumeInfo describes one volume of a VM.
func (h *Host) VolumeInfo(vm, vol string) (VolumeInfo, error) {
	d, v, err := h.lookupVolume(vm, vol)
	if err != nil {
		return VolumeInfo{}, err
	}
	return h.volumeInfo(d, v)
}

// Volumes describes every volume of a VM, in volume-config order.
func (h *Host) Volumes(vm string) ([]VolumeInfo, error) {
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	d, err := db.Domain(vm)
	if err != nil {
		return nil, err
	}
	var out []VolumeInfo
	for _, v := range d.Volumes() {
		info, err := h.volumeInfo(d, v)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (h *Host) volumeInfo(d *Domain, v Volume) (VolumeInfo, error) {
	info := VolumeInfo{Volume: v, VM: d.Name(), Nominal: v.Size, Running: h.IsRunning(d.Name())}
	if !v.SaveOnStop {
		return info, nil
	}
	p, err := d.imagePath(v)
	if err != nil {
		return info, err
	}
	info.Path = p
	if pool, err := d.db.FilePool(v.Pool); err == nil { // imagePath checked it
		info.PoolDir = pool.DirPath
	}
	fi, err := os.Stat(p)
	if err != nil {
		return info, fmt.Errorf("VM %s volume %s: %w", d.Name(), v.Name, err)
	}
	info.Nominal, info.Usage = sizes(fi)
	return info, nil
}

func sizes(fi os.FileInfo) (nominal, usage int64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		usage = st.Blocks * 512
	}
	return fi.Size(), usage
}

// OpenVolume opens the committed image for reading: the open file stays a
// consistent image even if the VM starts, stops or is re-imported while it
// is read. info describes that file.
func (h *Host) OpenVolume(vm, vol string) (*os.File, VolumeInfo, error) {
	info, err := h.VolumeInfo(vm, vol)
	if err != nil {
		return nil, info, err
	}
	if info.Path == "" {
		return nil, info, errorf(ErrInvalid, "VM %s volume %s has no image of its own", vm, vol)
	}
	f, err := os.Open(info.Path)
	if err != nil {
		return nil, info, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, info, err
	}
	info.Nominal, info.Usage = sizes(fi)
	return f, info, nil
}

// ExportVolume copies the committed image to a new file dst, keeping it
// sparse (a reflink where the filesystem can). It returns the length.
func (h *Host) ExportVolume(vm, vol, dst string) (int64, error) {
	src, info, err := h.OpenVolume(vm, vol)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	err = copyImage(out, src, info.Nominal)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return 0, err
	}
	return info.Nominal, nil
}

// ResizeVolume sets a volume's size. Growing extends the image with a
// hole (the working copy while the VM runs). Shrinking cuts data off, so
// it fails with ErrShrink unless force is set, and never runs on a running
// VM. Volumes without an image only change their configured size.
func (h *Host) ResizeVolume(vm, vol string, size int64, force bool) error {
	if size <= 0 {
		return errorf(ErrInvalid, "invalid size %d", size)
	}
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		d, err := db.Domain(vm)
		if err != nil {
			return err
		}
		v, err := d.Volume(vol)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("VM %s volume %s", vm, vol)
		running := h.IsRunning(vm)
		cur, undo := v.Size, func() {}
		if v.SaveOnStop {
			img, err := d.imagePath(v)
			if err != nil {
				return err
			}
			target := img
			if running {
				target = dirtyPath(img)
			}
			fi, err := os.Stat(target)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			cur = fi.Size()
			switch {
			case size < cur && !force:
				return errorf(ErrShrink, "%s: shrinking from %d to %d bytes discards data (force to shrink anyway)", what, cur, size)
			case size < cur && running:
				return errorf(ErrRunning, "%s cannot shrink while %s runs", what, vm)
			case size < cur:
				err = replaceImage(img, func(tmp *os.File) error {
					src, err := os.Open(img)
					if err != nil {
						return err
					}
					defer src.Close()
					return sparsetar.CopySparse(tmp, src, size)
				})
			default:
				err = os.Truncate(target, size)
				undo = func() { os.Truncate(target, cur) }
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		} else if size < cur && !force {
			return errorf(ErrShrink, "%s: shrinking from %d to %d bytes discards data (force to shrink anyway)", what, cur, size)
		}
		v.Size = size
		d.setVolume(v)
		if err := h.save(db, old); err != nil {
			undo()
			return err
		}
		return nil
	})
}

// AddVolume adds a custom persistent volume (save_on_stop, so backed up as
// <name>.img) with an empty sparse image of size bytes, in the pool of
// the VM's private volume.
func (h *Host) AddVolume(vm, name string, size int64) error {
	if !customVolRE.MatchString(name) || name == "root" || name == "private" || name == "volatile" || name == "kernel" {
		return errorf(ErrInvalid, "invalid volume name %q (lower-case letters, digits, '_', '-'; not a standard volume)", name)
	}
	if size <= 0 {
		return errorf(ErrInvalid, "invalid size %d", size)
	}
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		d, err := db.Domain(vm)
		if err != nil {
			return err
		}
		switch {
		case d.Class() == AdminVM || d.Class() == DispVM:
			return errorf(ErrInvalid, "%s has no persistent volumes", withArticle(d.Class()))
		case d.volumeNode(name) != nil:
			return errorf(ErrExists, "VM %s already has a volume %s", vm, name)
		case h.IsRunning(vm):
			return errorf(ErrRunning, "VM %s is running", vm)
		}
		v := Volume{Name: name, VID: vidPrefix(d.Class(), vm) + "/" + name, Size: size, RW: true, SaveOnStop: true}
		if err := d.placeVolume(&v, d.customPool()); err != nil {
			return err
		}
		img, err := d.imagePath(v)
		if err != nil {
			return err
		}
		if exists(img) {
			return errorf(ErrExists, "%s already exists (left from an earlier volume? remove it first)", img)
		}
		d.setVolume(v)
		if err := createSparse(img, size); err != nil {
			return err
		}
		if err := h.save(db, old); err != nil {
			os.Remove(img)
			return err
		}
		return nil
	})
}

// RemoveVolume removes a custom volume and its image.
func (h *Host) RemoveVolume(vm, name string) error {
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		d, err := db.Domain(vm)
		if err != nil {
			return err
		}
		v, err := d.Volume(name)
		switch {
		case err != nil:
			return err
		case name == "root" || name == "private" || name == "volatile" || name == "kernel":
			return errorf(ErrInvalid, "%s is a standard volume of %s", name, vm)
		case h.IsRunning(vm):
			return errorf(ErrRunning, "VM %s is running", vm)
		}
		img := ""
		if v.SaveOnStop {
			// An image that cannot be found cannot be removed: the
			// volume stays rather than leave its data behind unseen.
			if img, err = d.imagePath(v); err != nil {
				return err
			}
		}
		d.n.child("volume-config").remove(d.volumeNode(name))
		if err := h.save(db, old); err != nil {
			return err
		}
		if img != "" {
			os.Remove(dirtyPath(img))
			if err := os.Remove(img); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// VolumeImport writes a new committed image for a volume; Commit puts it
// in place. All-zero 4 KiB blocks become holes.
type VolumeImport struct {
	h       *Host
	vm, vol string
	f       *os.File
	w       *sparsetar.SparseWriter
	size    int64 // bytes written
	copied  bool  // filled by CopySparse instead of w
	done    bool
}

// BeginImport starts replacing the content of a volume that has an image.
// The data goes to a temp file next to the image; nothing changes until
// Commit.
func (h *Host) BeginImport(vm, vol string) (*VolumeImport, error) {
	info, err := h.VolumeInfo(vm, vol)
	if err != nil && info.Path == "" {
		return nil, err
	}
	if info.Path == "" {
		return nil, errorf(ErrInvalid, "VM %s volume %s has no image of its own", vm, vol)
	}
	if info.Running {
		return nil, errorf(ErrRunning, "VM %s is running (cannot import into volume %s)", vm, vol)
	}
	if err := os.MkdirAll(filepath.Dir(info.Path), 0o755); err != nil {
		return nil, err
	}
	// An import killed before (SIGKILL, a crash) left its temp file, as
	// large as the image: it goes now. A live import's is locked.
	removeDeadImports(filepath.Dir(info.Path), vol)
	f, err := os.CreateTemp(filepath.Dir(info.Path), "."+vol+"-import-*.img")
	if err != nil {
		return nil, err
	}
	// Locked while open, which tells removeDeadImports that the import
	// lives. (A file found in the instant before the lock is taken is
	// one removeDeadImports takes for dead: so it spares files less than
	// a minute old.)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &VolumeImport{h: h, vm: vm, vol: vol, f: f, w: sparsetar.NewSparseWriter(f)}, nil
}

// removeDeadImports removes the temp files of imports into volume vol in
// dir whose process died: unlocked and over a minute old.
func removeDeadImports(dir, vol string) {
	files, _ := filepath.Glob(filepath.Join(dir, "."+vol+"-import-*.img"))
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > time.Minute &&
			syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}

// Write appends data to the new image.
func (im *VolumeImport) Write(p []byte) (int, error) {
	n, err := im.w.Write(p)
	im.size += int64(n)
	return n, err
}

// Abort discards the import.
func (im *VolumeImport) Abort() {
	if !im.done {
		im.done = true
		im.f.Close()
		os.Remove(im.f.Name())
	}
}

// Commit makes the written data the volume's committed image and its
// length the volume's size. It fails, discarding the data, if the VM
// was started or the volume removed meanwhile.
func (im *VolumeImport) Commit() error {
	if im.done {
		return errors.New("host: import already finished")
	}
	defer im.Abort()
	var err error
	if !im.copied {
		err = im.w.Close()
	}
	if err == nil {
		err = im.f.Sync()
	}
	if err != nil {
		return err
	}
	h := im.h
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		d, err := db.Domain(im.vm)
		if err != nil {
			return err
		}
		v, err := d.Volume(im.vol)
		if err != nil {
			return err
		}
		img, err := d.imagePath(v)
		switch {
		case err != nil:
			return err
		case !v.SaveOnStop || filepath.Dir(img) != filepath.Dir(im.f.Name()):
			return errorf(ErrInvalid, "VM %s volume %s changed during the import", im.vm, im.vol)
		case h.IsRunning(im.vm):
			return errorf(ErrRunning, "VM %s is running (cannot import into volume %s)", im.vm, im.vol)
		}
		if err := os.Rename(im.f.Name(), img); err != nil {
			return err
		}
		im.done = true
		im.f.Close()
		if err := syncDir(filepath.Dir(img)); err != nil {
			return err
		}
		v.Size = im.size
		d.setVolume(v)
		return h.save(db, old)
	})
}

// ImportVolume replaces a volume's committed image with the content of r,
// sparsely (the holes of a regular file at offset 0 are not even read),
// and returns its length, which becomes the volume's size. The VM must be
// halted.
func (h *Host) ImportVolume(vm, vol string, r io.Reader) (int64, error) {
	im, err := h.BeginImport(vm, vol)
	if err != nil {
		return 0, err
	}
	defer im.Abort()
	if f, ok := r.(*os.File); ok {
		pos, perr := f.Seek(0, io.SeekCurrent)
		if fi, err := f.Stat(); err == nil && perr == nil && pos == 0 && fi.Mode().IsRegular() {
			if err := sparsetar.CopySparse(im.f, f, fi.Size()); err != nil {
				return 0, err
			}
			im.size, im.copied = fi.Size(), true
			return fi.Size(), im.Commit()
		}
	}
	if _, err := io.Copy(im, r); err != nil {
		return 0, err
	}
	return im.size, im.Commit()
}

// createSparse makes a new all-hole image of size bytes (and its directory).
func createSparse(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaceImage writes a new version of img through fill and renames it
// into place.
func replaceImage(img string, fill func(tmp *os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(img), "."+filepath.Base(img)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(0o660); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), img); err != nil {
		return err
	}
	return syncDir(filepath.Dir(img))
}

// copyImage makes the empty file dst a copy of src (size bytes): a reflink
// where the filesystem shares blocks (btrfs, xfs), else a sparse copy.
func copyImage(dst, src *os.File, size int64) error {
	if fi, err := src.Stat(); err == nil && fi.Size() == size {
		if reflink.CloneFile(dst, src) == nil {
			return nil
		}
	}
	return sparsetar.CopySparse(dst, src, size)
}
