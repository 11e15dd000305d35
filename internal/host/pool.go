package host

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Storage pools. PedOS keeps volume images in file pools laid out as
// Qubes' file driver lays them out: the committed image of a volume is
// <dir_path>/<vid>.img, its vid being appvms/NAME/VOLUME, or
// vm-templates/NAME/VOLUME for a TemplateVM. The pool a new host is made
// with, varlibpedos, has the host root as its dir_path, so there a VM's
// images and its other files (firewall.xml, notes.txt) share one
// directory, as under /var/lib/qubes; a VM in another pool keeps its
// images under that pool's dir_path and its other files under the root.
//
// A database written by Qubes may declare pools of other drivers
// (lvm_thin, linux-kernel, ...). They are kept, but hold no image PedOS
// can read or write: touching one is an error that names the pool and
// its driver.

// PoolName is the file pool a new host is made with, in its root.
const PoolName = "varlibpedos"

// FileDrivers are the pool drivers whose volumes are image files at
// <dir_path>/<vid>.img: Qubes' file driver and file-reflink, which lays
// files out the same way.
var FileDrivers = []string{"file", "file-reflink"}

// Pool is a storage pool from <pools>.
type Pool struct {
	Name, Driver string
	// DirPath is dir_path, cleaned: where a file pool keeps its images.
	DirPath string
	// RevisionsToKeep is revisions_to_keep (1 when absent, as in Qubes):
	// what new persistent volumes in the pool are given. PedOS keeps no
	// old revisions itself; the value is for Qubes reading the database.
	RevisionsToKeep int
	// Config is every attribute but name, in file order.
	Config []Property
}

// IsFile reports whether PedOS can keep images in the pool.
func (p Pool) IsFile() bool { return slices.Contains(FileDrivers, p.Driver) }

// Space returns the size of the file system that holds a file pool and
// the bytes used on it, as Qubes reports a file pool's size and usage;
// ok is false when it cannot be measured.
func (p Pool) Space() (size, usage int64, ok bool) {
	var st syscall.Statfs_t
	if !p.IsFile() || syscall.Statfs(p.DirPath, &st) != nil {
		return 0, 0, false
	}
	bs := int64(st.Frsize)
	return int64(st.Blocks) * bs, int64(st.Blocks-st.Bfree) * bs, true
}

// revisions is what a volume of the pool keeps: none unless it is saved
// on stop; never more than the file driver allows (one).
func (p Pool) revisions(saveOnStop bool, want int) int {
	switch {
	case !saveOnStop || want < 0:
		return 0
	case p.Driver == "file":
		return min(want, 1)
	}
	return want
}

func poolOf(n *node) Pool {
	p := Pool{Name: n.attr("name"), Driver: n.attr("driver"), DirPath: n.attr("dir_path"), RevisionsToKeep: 1}
	if p.DirPath != "" {
		p.DirPath = filepath.Clean(p.DirPath)
	}
	if r, err := strconv.Atoi(n.attr("revisions_to_keep")); err == nil {
		p.RevisionsToKeep = r
	}
	for _, a := range n.Attrs {
		if a.Name.Space == "" && a.Name.Local != "name" {
			p.Config = append(p.Config, Property{a.Name.Local, a.Value})
		}
	}
	return p
}

// Pools returns the storage pools in file order.
func (db *DB) Pools() []Pool {
	var out []Pool
	if ps := db.root.child("pools"); ps != nil {
		for _, n := range ps.children("pool") {
			out = append(out, poolOf(n))
		}
	}
	return out
}

// Pool returns the pool called name; the error wraps ErrNoSuchPool.
func (db *DB) Pool(name string) (Pool, error) {
	if ps := db.root.child("pools"); ps != nil {
		if n := ps.keyed("pool", "name", name); n != nil {
			return poolOf(n), nil
		}
	}
	return Pool{}, errorf(ErrNoSuchPool, "no storage pool %q", name)
}

// DefaultPool is the global default_pool: as set, else the first file
// pool (else the first pool).
func (db *DB) DefaultPool() string {
	v, _ := db.GlobalProp("default_pool")
	return v
}

// defaultPool is default_pool's default.
func (db *DB) defaultPool() string {
	ps := db.Pools()
	for _, p := range ps {
		if p.IsFile() {
			return p.Name
		}
	}
	if len(ps) > 0 {
		return ps[0].Name
	}
	return ""
}

// FilePool returns the file pool called name ("" is the default pool).
// It fails, naming the pool, if there is none (ErrNoSuchPool), if its
// driver keeps no image files (ErrPoolDriver) or if it has no absolute
// dir_path.
func (db *DB) FilePool(name string) (Pool, error) {
	if name == "" {
		if name = db.DefaultPool(); name == "" {
			return Pool{}, errorf(ErrNoSuchPool, "the host has no storage pool")
		}
	}
	p, err := db.Pool(name)
	switch {
	case err != nil:
		return p, err
	case !p.IsFile():
		return p, errorf(ErrPoolDriver, "pool %s has driver %s; PedOS keeps volumes only in pools of driver %s",
			p.Name, p.Driver, strings.Join(FileDrivers, " or "))
	case !filepath.IsAbs(p.DirPath):
		return p, errorf(ErrInvalid, "pool %s: dir_path %q is not an absolute path", p.Name, p.DirPath)
	}
	return p, nil
}

// imagePath is where volume v of d keeps its committed image:
// <dir_path of its pool>/<vid>.img.
func (d *Domain) imagePath(v Volume) (string, error) {
	what := fmt.Sprintf("VM %s volume %s", d.Name(), v.Name)
	if !filepath.IsLocal(v.VID) {
		return "", errorf(ErrInvalid, "%s has an unsafe vid %q", what, v.VID)
	}
	if v.Pool == "" {
		return "", errorf(ErrNoSuchPool, "%s names no pool", what)
	}
	p, err := d.db.FilePool(v.Pool)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return filepath.Join(p.DirPath, v.VID+".img"), nil
}

// checkImages refuses a database in which two volumes have one image
// file, or a VM's image lies in another VM's directory under root:
// removing or importing into one VM would change the other.
func (db *DB) checkImages(root string) error {
	type owner struct{ vm, what string }
	seen := map[string]owner{}
	dirs := map[string]string{} // VM directory -> VM
	for i, n := range db.domainNodes() {
		d := &Domain{db: db, n: n}
		if d.Class() != AdminVM {
			dirs[filepath.Join(root, vidPrefix(d.Class(), d.Name()))] = d.Name()
		}
		for _, v := range d.Volumes() {
			if !v.SaveOnStop {
				continue
			}
			img, err := d.imagePath(v)
			if err != nil {
				continue // an error when the volume is used
			}
			me := owner{d.Name(), fmt.Sprintf("<domain> #%d (%s) volume %s", i+1, d.Name(), v.Name)}
			if prev, ok := seen[img]; ok {
				return errorf(ErrInvalid, "two volumes have the image %s: %s and %s", img, prev.what, me.what)
			}
			seen[img] = me
		}
	}
	for img, o := range seen {
		for dir := filepath.Dir(img); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if vm, ok := dirs[dir]; ok && vm != o.vm {
				return errorf(ErrInvalid, "%s has its image %s in the directory of VM %s", o.what, img, vm)
			}
		}
	}
	return nil
}

var poolNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// poolOptions are the options of each driver a pool can be added with.
var poolOptions = map[string][]string{
	"file":         {"dir_path", "revisions_to_keep"},
	"file-reflink": {"dir_path", "revisions_to_keep"},
}

// AddPool declares a new pool of driver (file or file-reflink) with the
// driver's options: dir_path (required, absolute), revisions_to_keep
// (default 1; at most 1 for file). No directory is made (see
// Host.AddPool).
func (db *DB) AddPool(name, driver string, opts map[string]string) (Pool, error) {
	what := "pool " + name
	known, ok := poolOptions[driver]
	switch {
	case !poolNameRE.MatchString(name) || len(name) > 64:
		return Pool{}, errorf(ErrInvalid, "invalid pool name %q (letters, digits, '_', '.', '-'; at most 64)", name)
	case !ok:
		return Pool{}, errorf(ErrPoolDriver, "%s: PedOS cannot keep volumes in driver %q (drivers: %s)", what, driver, strings.Join(FileDrivers, ", "))
	}
	if _, err := db.Pool(name); err == nil {
		return Pool{}, errorf(ErrExists, "%s already exists", what)
	}
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		if !slices.Contains(known, k) {
			return Pool{}, errorf(ErrInvalid, "%s: driver %s has no option %q (its options: %s)", what, driver, k, strings.Join(known, ", "))
		}
		if err := checkText(what+" "+k, opts[k]); err != nil {
			return Pool{}, err
		}
	}
	dir := opts["dir_path"]
	switch {
	case dir == "":
		return Pool{}, errorf(ErrInvalid, "%s: the option dir_path is required", what)
	case !filepath.IsAbs(dir) || filepath.Clean(dir) == "/":
		return Pool{}, errorf(ErrInvalid, "%s: dir_path %q must be an absolute path below /", what, dir)
	}
	dir = filepath.Clean(dir)
	for _, p := range db.Pools() {
		if !p.IsFile() || !filepath.IsAbs(p.DirPath) {
			continue
		}
		if p.DirPath == dir {
			return Pool{}, errorf(ErrExists, "%s: pool %s already keeps its volumes in %s", what, p.Name, dir)
		}
		if err := checkNesting(what, dir, p.DirPath, "pool "+p.Name); err != nil {
			return Pool{}, err
		}
	}
	rev := 1
	if s, ok := opts["revisions_to_keep"]; ok {
		r, err := strconv.Atoi(s)
		most := map[string]int{"file": 1, "file-reflink": 99}[driver]
		if err != nil || r < 0 || r > most {
			return Pool{}, errorf(ErrInvalid, "%s: revisions_to_keep %q must be a number from 0 to %d", what, s, most)
		}
		rev = r
	}
	// The attributes in the order Qubes writes them.
	n := elem("pool", "name", name, "dir_path", dir, "driver", driver, "revisions_to_keep", strconv.Itoa(rev))
	ps := db.root.ensure("pools", topOrder)
	ps.Kids = append(ps.Kids, n)
	return poolOf(n), nil
}

// checkNesting refuses a pool directory dir inside the VM directories
// (appvms, vm-templates) of other, which holds what: there a VM's
// directory would hold another VM's images, and the other way round.
func checkNesting(what, dir, other, whose string) error {
	for _, a := range [][2]string{{dir, other}, {other, dir}} {
		for _, sub := range []string{"appvms", "vm-templates"} {
			if within(a[0], filepath.Join(a[1], sub)) {
				return errorf(ErrInvalid, "%s: dir_path %s and the VM directories of %s (%s) lie within each other", what, dir, whose, other)
			}
		}
	}
	return nil
}

// within reports whether path is dir or below it (lexically).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}

// poolProps are the global properties that name a pool.
var poolProps = []string{"default_pool", "default_pool_kernel", "default_pool_private", "default_pool_root", "default_pool_volatile"}

// RemovePool removes a pool from the database. It fails with ErrInUse
// while a VM has a volume in it (naming them) or a global default_pool*
// property names it (the default pool). Its files are not touched.
func (db *DB) RemovePool(name string) error {
	if _, err := db.Pool(name); err != nil {
		return err
	}
	var users []string
	for _, d := range db.Domains() {
		var vols []string
		for _, v := range d.Volumes() {
			if v.Pool == name {
				vols = append(vols, v.Name)
			}
		}
		if len(vols) > 0 {
			users = append(users, fmt.Sprintf("%s (%s)", d.Name(), strings.Join(vols, ", ")))
		}
	}
	if len(users) > 0 {
		return errorf(ErrInUse, "pool %s holds volumes of %s", name, strings.Join(users, ", "))
	}
	for _, prop := range poolProps {
		if v, isDefault := db.GlobalProp(prop); v == name {
			how := "is the global " + prop
			if isDefault {
				how += " (by default)"
			}
			return errorf(ErrInUse, "pool %s %s", name, how)
		}
	}
	ps := db.root.child("pools")
	ps.remove(ps.keyed("pool", "name", name))
	return nil
}

// AddPool adds a file pool (see DB.AddPool) and makes its directories:
// dir_path with appvms and vm-templates in it.
func (h *Host) AddPool(name, driver string, opts map[string]string) error {
	return h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		p, err := db.AddPool(name, driver, opts)
		if err != nil {
			return err
		}
		if err := checkNesting("pool "+name, p.DirPath, h.root, "the host root"); err != nil {
			return err
		}
		for _, sub := range []string{"appvms", "vm-templates"} {
			if err := os.MkdirAll(filepath.Join(p.DirPath, sub), 0o755); err != nil {
				return fmt.Errorf("pool %s: %w", name, err)
			}
		}
		return h.save(db, old)
	})
}

// RemovePool removes a pool that nothing uses (see DB.RemovePool),
// leaving its directory and files.
func (h *Host) RemovePool(name string) error {
	return h.Update(func(db *DB) error { return db.RemovePool(name) })
}
