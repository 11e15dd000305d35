package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Run state is not in pedos.xml: VM NAME runs while $ROOT/run/NAME exists.
// Starting a VM gives each of its save_on_stop volumes a working copy,
// <vid>-dirty.img, made from the committed image (reflink or sparse copy);
// the running VM uses only that copy. Shutting down syncs each copy and
// renames it over the committed image. So the committed image of a running
// VM is its state from before its start, and it is never half-written.
// A crash during shutdown leaves some copies committed and the VM marked
// running; the next Shutdown commits the rest.

// IsRunning reports whether VM name runs. dom0 always runs.
func (h *Host) IsRunning(name string) bool {
	if name == "dom0" {
		return true
	}
	if !filepath.IsLocal(name) {
		return false
	}
	_, err := os.Stat(h.path(runDir, name))
	return err == nil
}

// Running is IsRunning, under the name qrexec.VMResolver uses.
func (h *Host) Running(name string) bool { return h.IsRunning(name) }

// Start starts a halted VM: working copies of its persistent volumes, then
// the run marker.
func (h *Host) Start(name string) error {
	return h.locked(func() error {
		d, err := h.runnable(name)
		if err != nil {
			return err
		}
		if h.IsRunning(name) {
			return errorf(ErrRunning, "VM %s is already running", name)
		}
		var made []string
		fail := func(err error) error {
			for _, p := range made {
				os.Remove(p)
			}
			return fmt.Errorf("starting %s: %w", name, err)
		}
		for _, v := range d.Volumes() {
			if !v.SaveOnStop {
				continue
			}
			img, err := d.imagePath(v)
			if err != nil {
				return fail(err)
			}
			dirty := dirtyPath(img)
			made = append(made, dirty)
			if err := copyFile(dirty, img); err != nil {
				return fail(err)
			}
		}
		if err := os.MkdirAll(h.path(runDir), 0o755); err != nil {
			return fail(err)
		}
		stamp := []byte(time.Now().UTC().Format(time.RFC3339) + "\n")
		if err := writeFileAtomic(h.path(runDir, name), stamp, 0o644); err != nil {
			return fail(err)
		}
		return nil
	})
}

// Shutdown stops a running VM, committing its working copies.
func (h *Host) Shutdown(name string) error {
	return h.locked(func() error {
		d, err := h.runnable(name)
		if err != nil {
			return err
		}
		if !h.IsRunning(name) {
			return errorf(ErrNotRunning, "VM %s is not running", name)
		}
		dirs := map[string]bool{}
		for _, v := range d.Volumes() {
			if !v.SaveOnStop {
				continue
			}
			img, err := d.imagePath(v)
			if err != nil {
				return err
			}
			if err := commit(dirtyPath(img), img); err != nil {
				return fmt.Errorf("shutting down %s: volume %s: %w", name, v.Name, err)
			}
			dirs[filepath.Dir(img)] = true
		}
		for dir := range dirs {
			if err := syncDir(dir); err != nil {
				return err
			}
		}
		if err := os.Remove(h.path(runDir, name)); err != nil {
			return err
		}
		return syncDir(h.path(runDir))
	})
}

// runnable returns VM name if it is one that can start and stop.
func (h *Host) runnable(name string) (*Domain, error) {
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	d, err := db.Domain(name)
	if err != nil {
		return nil, err
	}
	if d.Class() == AdminVM {
		return nil, errorf(ErrInvalid, "dom0 always runs")
	}
	return d, nil
}

// WorkingPath is the image VM vm uses for volume vol now: the working copy
// while it runs, else the committed image.
func (h *Host) WorkingPath(vm, vol string) (string, error) {
	info, err := h.VolumeInfo(vm, vol)
	switch {
	case err != nil:
		return "", err
	case info.Path == "":
		return "", errorf(ErrInvalid, "VM %s volume %s has no image of its own", vm, vol)
	case info.Running:
		return dirtyPath(info.Path), nil
	}
	return info.Path, nil
}

// copyFile makes dst (replaced if it exists) a synced copy of src.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o660)
	if err != nil {
		return err
	}
	err = copyImage(out, in, fi.Size())
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// commit syncs the working copy and renames it over the committed image;
// a missing working copy was committed already.
func commit(dirty, img string) error {
	f, err := os.OpenFile(dirty, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(dirty, img)
}
