package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files in the host root.
const (
	DBFile   = "pedos.xml"      // the VM database
	lockFile = "pedos.xml.lock" // flock'ed around every change
	dom0File = "dom0.json"      // dom0 user and home (not in pedos.xml, which is backed up)
	runDir   = "run"            // run/NAME exists while VM NAME runs
	vmFSDir  = "vm-fs"          // vm-fs/NAME is VM NAME's filesystem for its services
)

// Host is a PedOS host: a state directory holding pedos.xml, the VMs'
// volumes and files, run state and the dom0 user's settings. A Host holds
// no state of its own; every call reads the directory, so any number of
// processes may use one host at once.
type Host struct{ root string }

// InitOptions are the settings of a new host.
type InitOptions struct {
	User string // dom0 user name; default: the current user
	Home string // dom0 home directory; default: $HOME
}

// DefaultRoot is $PEDOS_ROOT, else /var/lib/pedos.
func DefaultRoot() string {
	if r := os.Getenv("PEDOS_ROOT"); r != "" {
		return r
	}
	return "/var/lib/pedos"
}

// Init makes a new host in root (created if needed): dom0 (qid 0, label
// black), the eight standard labels, the file pool varlibpedos and the dom0
// user. It refuses a root that already has a pedos.xml.
func Init(root string, opts InitOptions) (*Host, error) {
	dom0, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	h := &Host{root: root}
	err = h.locked(func() error {
		if _, err := os.Stat(h.path(DBFile)); err == nil {
			return errorf(ErrExists, "a PedOS host already exists at %s", root)
		}
		for _, dir := range []string{"appvms", "vm-templates", runDir, vmFSDir} {
			if err := os.MkdirAll(h.path(dir), 0o755); err != nil {
				return err
			}
		}
		if err := writeFileAtomic(h.path(dom0File), dom0.marshal(), 0o644); err != nil {
			return err
		}
		db := newDB(root)
		if err := db.SetGlobalProp("default_pool", PoolName); err != nil {
			return err
		}
		return h.save(db, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("creating host at %s: %w", root, err)
	}
	return h, nil
}

// Open returns the host in root; the error wraps ErrNoHost when root has no
// pedos.xml.
func Open(root string) (*Host, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(ErrNoHost, "no PedOS host at %s (run pedos-host init)", root)
		}
		return nil, err
	}
	return &Host{root: root}, nil
}

// Root is the host's state directory (absolute).
func (h *Host) Root() string { return h.root }

func (h *Host) path(elem ...string) string {
	return filepath.Join(append([]string{h.root}, elem...)...)
}

// Load reads a snapshot of pedos.xml. It needs no lock: saves replace the
// file by rename, so a reader sees the old or the new file, never a mix.
// A database with ambiguous entries (see ParseDB), without dom0, or
// whose VMs share an image file is refused, so no tool acts on it.
func (h *Host) Load() (*DB, error) {
	db, _, err := h.load()
	return db, err
}

func (h *Host) load() (*DB, []byte, error) {
	data, err := os.ReadFile(h.path(DBFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errorf(ErrNoHost, "no PedOS host at %s (run pedos-host init)", h.root)
	}
	if err != nil {
		return nil, nil, err
	}
	db, err := ParseDB(data)
	if err == nil {
		err = db.checkHost(h.root)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.path(DBFile), err)
	}
	return db, data, nil
}

// Update changes pedos.xml: under the host lock it loads the current file,
// calls fn, validates the result (DB.Validate) and saves it atomically.
// If fn or the validation fails, nothing is written. Concurrent Updates,
// from any process, are serialised and none is lost. fn must not call
// other Host methods that change the host (they take the same lock).
func (h *Host) Update(fn func(*DB) error) error {
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		if err := fn(db); err != nil {
			return err
		}
		return h.save(db, old)
	})
}

// save validates db and writes it unless it equals old. The lock must be
// held; any temp file left by a save that died is removed first. What
// load would refuse is never written.
func (h *Host) save(db *DB, old []byte) error {
	if err := db.Validate(); err != nil {
		return err
	}
	if err := db.checkHost(h.root); err != nil {
		return err
	}
	data := db.Marshal()
	if old != nil && bytes.Equal(data, old) {
		return nil
	}
	stale, _ := filepath.Glob(h.path(tmpName(DBFile) + "*"))
	for _, f := range stale {
		os.Remove(f)
	}
	return writeFileAtomic(h.path(DBFile), data, 0o660)
}

// exists reports whether there is anything at path (a dangling symlink
// too).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func tmpName(name string) string { return "." + name + ".tmp-" }

// testHookBeforeRename, when set (by tests), runs after a temp file is
// written and synced and before it is renamed into place.
var testHookBeforeRename func(tmp string)

// writeFileAtomic replaces path with data: a temp file in the same
// directory, fsync, rename, fsync of the directory. A crash leaves the old
// file or the new one (and maybe a temp file), never a partial file.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, name := filepath.Split(path)
	f, err := os.CreateTemp(dir, tmpName(name)+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if testHookBeforeRename != nil {
		testHookBeforeRename(f.Name())
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
