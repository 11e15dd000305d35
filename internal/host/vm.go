package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// VMOptions are the settings of a new VM.
type VMOptions struct {
	// Label is a label name or id; required.
	Label string
	// Template: for an AppVM its TemplateVM, for a DispVM its disposable
	// template; empty means the global default_template / default_dispvm.
	// For a StandaloneVM or TemplateVM, the VM whose root image is copied
	// (empty: an empty root).
	Template string
	// Props are further properties, set in name order.
	Props map[string]string
	// Pool is the file pool of every volume that is not a snapshot of the
	// template's (those stay in the template's pool); empty means each
	// volume's global default (default_pool_private, ...).
	Pool string
}

// CreateVM adds a halted VM with its empty sparse images (or a copy of
// opts.Template's root) in its pools, its directory and its vm-fs
// directory. On any error nothing is left behind.
func (h *Host) CreateVM(name, class string, opts VMOptions) error {
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		d, clone, err := db.addVM(name, class, opts)
		if err != nil {
			return err
		}
		if err := db.Validate(); err != nil {
			return err
		}
		undo, err := h.makeFiles(d, clone)
		if err != nil {
			undo()
			return err
		}
		if err := h.save(db, old); err != nil {
			undo()
			return err
		}
		return nil
	})
}

// addVM adds VM name to the database with opts applied. It returns the VM
// whose root a StandaloneVM or TemplateVM copies (or nil). On error the
// database is unchanged.
func (db *DB) addVM(name, class string, opts VMOptions) (_, clone *Domain, err error) {
	d, err := db.NewDomain(name, class)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			db.root.child("domains").remove(d.n)
			if !strings.HasPrefix(err.Error(), name+": ") { // property errors name the VM already
				err = fmt.Errorf("%s: %w", name, err)
			}
		}
	}()
	if opts.Label == "" {
		return nil, nil, errorf(ErrInvalid, "a label is required")
	}
	if err := d.SetProp("label", opts.Label); err != nil {
		return nil, nil, err
	}
	switch t := opts.Template; class {
	case AppVM, DispVM:
		if t == "" {
			def := map[string]string{AppVM: "default_template", DispVM: "default_dispvm"}[class]
			if t, _ = db.GlobalProp(def); t == "" {
				return nil, nil, errorf(ErrInvalid, "no template given and no global %s", def)
			}
		}
		if err := d.SetProp("template", t); err != nil {
			return nil, nil, err
		}
	default:
		if t != "" {
			if clone, err = db.Domain(t); err != nil {
				return nil, nil, err
			}
			if v, err := clone.Volume("root"); err != nil || !v.SaveOnStop {
				return nil, nil, errorf(ErrInvalid, "%s has no root image to copy", t)
			}
		}
	}
	if opts.Pool != "" {
		if err := d.moveVolumes(opts.Pool); err != nil {
			return nil, nil, err
		}
	}
	for _, v := range d.Volumes() {
		if v.SaveOnStop {
			if _, err := d.imagePath(v); err != nil {
				return nil, nil, err
			}
		}
	}
	names := make([]string, 0, len(opts.Props))
	for k := range opts.Props {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if err := d.SetProp(k, opts.Props[k]); err != nil {
			return nil, nil, err
		}
	}
	return d, clone, nil
}

// makeFiles makes a new VM's files: its directory under the root, its
// directory in each pool that holds one of its images, the images, and
// its vm-fs directory. None of these directories may exist yet (but
// vm-fs). undo removes what it made.
func (h *Host) makeFiles(d, clone *Domain) (undo func(), err error) {
	var made []string
	undo = func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.RemoveAll(made[i])
		}
	}
	mkdir := func(dir string) error {
		if slices.Contains(made, dir) {
			return nil
		}
		if _, err := os.Lstat(dir); err == nil {
			return errorf(ErrExists, "%s already exists (left from an earlier VM? remove it first)", dir)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		made = append(made, dir)
		return nil
	}
	if err := mkdir(h.path(vidPrefix(d.Class(), d.Name()))); err != nil {
		return undo, err
	}
	for _, v := range d.Volumes() {
		if !v.SaveOnStop {
			continue
		}
		img, err := d.imagePath(v)
		if err != nil {
			return undo, err
		}
		if err := mkdir(filepath.Dir(img)); err != nil {
			return undo, err
		}
		if v.Name != "root" || clone == nil {
			if err := createSparse(img, v.Size); err != nil {
				return undo, err
			}
			continue
		}
		cv, _ := clone.Volume("root")
		src, err := clone.imagePath(cv)
		if err != nil {
			return undo, err
		}
		if err := copyFile(img, src); err != nil {
			return undo, err
		}
		fi, err := os.Stat(img)
		if err != nil {
			return undo, err
		}
		v.Size = fi.Size()
		d.setVolume(v)
	}
	if fsDir := h.path(vmFSDir, d.Name()); !exists(fsDir) {
		if err := os.MkdirAll(fsDir, 0o755); err != nil {
			return undo, err
		}
		made = append(made, fsDir)
	}
	return undo, nil
}

// RemoveVM removes a halted VM that nothing refers to (ErrInUse names the
// users), then its files: its directory with firewall and notes, its
// images in every pool (and their directories there, once empty), and
// its vm-fs directory. A VM with an image PedOS cannot locate (in a pool
// of another driver) is not removed.
func (h *Host) RemoveVM(name string) error {
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		d, err := db.Domain(name)
		if err != nil {
			return err
		}
		if d.Class() != AdminVM && h.IsRunning(name) {
			return errorf(ErrRunning, "VM %s is running (shut it down first)", name)
		}
		var imgs []string
		for _, v := range d.Volumes() {
			if v.SaveOnStop {
				img, err := d.imagePath(v)
				if err != nil {
					return fmt.Errorf("cannot remove %s: %w", name, err)
				}
				imgs = append(imgs, img)
			}
		}
		if err := db.RemoveDomain(name); err != nil {
			return err
		}
		if err := h.save(db, old); err != nil {
			return err
		}
		dir := h.path(vidPrefix(d.Class(), name))
		err = errors.Join(os.RemoveAll(dir), os.RemoveAll(h.path(vmFSDir, name)))
		var dirs []string
		for _, img := range imgs {
			for _, f := range []string{img, dirtyPath(img)} {
				if rerr := os.Remove(f); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
					err = errors.Join(err, rerr)
				}
			}
			if d := filepath.Dir(img); d != dir && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
		for _, d := range dirs {
			os.Remove(d) // only if empty: what else is there is not the VM's
		}
		if rerr := os.Remove(h.path(runDir, name)); !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			return fmt.Errorf("removed %s from %s, but not all of its files: %w", name, DBFile, err)
		}
		return nil
	})
}

// VMDir is the directory of a VM's files: appvms/NAME, or
// vm-templates/NAME for a TemplateVM. dom0 has none (see Dom0).
func (h *Host) VMDir(name string) (string, error) {
	db, err := h.Load()
	if err != nil {
		return "", err
	}
	d, err := db.Domain(name)
	if err != nil {
		return "", err
	}
	if d.Class() == AdminVM {
		return "", errorf(ErrInvalid, "dom0 has no VM directory")
	}
	return h.path(vidPrefix(d.Class(), name)), nil
}

// VMFSPath is $ROOT/vm-fs/NAME, the directory that is VM NAME's filesystem
// for its services. It checks only that name is a VM name.
func (h *Host) VMFSPath(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return h.path(vmFSDir, name), nil
}

// FS returns VM vm's filesystem directory, made if missing. With Running
// it implements qrexec.VMResolver.
func (h *Host) FS(vm string) (string, error) {
	if _, err := h.VMDir(vm); err != nil {
		return "", err
	}
	dir, err := h.VMFSPath(vm)
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// Files a VM may have in its directory; a backup stores them.
const (
	FirewallFile = "firewall.xml"
	NotesFile    = "notes.txt"
)

// maxNotes bounds notes.txt.
const maxNotes = 256 << 10

// Firewall returns a VM's firewall.xml, or nil if it has none (no rules:
// everything allowed).
func (h *Host) Firewall(vm string) ([]byte, error) { return h.readVMFile(vm, FirewallFile) }

// SetFirewall replaces a VM's firewall.xml after checking it (see
// ParseFirewall); nil removes it.
func (h *Host) SetFirewall(vm string, data []byte) error {
	if data != nil {
		if _, err := ParseFirewall(data); err != nil {
			return fmt.Errorf("VM %s: %w", vm, err)
		}
	}
	return h.writeVMFile(vm, FirewallFile, data)
}

// Notes returns a VM's notes ("" if none).
func (h *Host) Notes(vm string) (string, error) {
	b, err := h.readVMFile(vm, NotesFile)
	return string(b), err
}

// SetNotes replaces a VM's notes (UTF-8 text); "" removes them.
func (h *Host) SetNotes(vm, text string) error {
	if len(text) > maxNotes {
		return errorf(ErrInvalid, "notes of %s are longer than %d bytes", vm, maxNotes)
	}
	if err := checkText("notes of "+vm, text); err != nil {
		return err
	}
	var data []byte
	if text != "" {
		data = []byte(text)
	}
	return h.writeVMFile(vm, NotesFile, data)
}

func (h *Host) readVMFile(vm, file string) ([]byte, error) {
	dir, err := h.VMDir(vm)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func (h *Host) writeVMFile(vm, file string, data []byte) error {
	return h.locked(func() error {
		dir, err := h.VMDir(vm)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, file)
		if data == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return writeFileAtomic(p, data, 0o664)
	})
}
