package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"pedos.dev/backup/internal/sparsetar"
)

// A restore adds whole VMs: a VMSpec describes one, AddVM applies it to a
// database (what it cannot apply becomes a warning, as the reference
// restore logs and goes on), and a StagedVM collects its files in a hidden
// directory until Commit adds the VM and its files in one step. So a VM
// appears on the host complete or not at all.

// VMSpec is a VM as a restore adds it. VM references (Template, the kRef
// properties, device backends) are names on this host.
type VMSpec struct {
	Name, Class string
	// Label is a label name; an unknown one becomes red, with a warning.
	Label string
	// Template: the TemplateVM of an AppVM, the disposable template of a
	// DispVM.
	Template string
	// Props are set in order after the VM exists (template_for_dispvms is
	// set first); name, qid, uuid, label, template, dispid and
	// installed_by_rpm are ignored. A property that cannot be set is left
	// at its default, with a warning.
	Props    []Property
	Features []Feature
	Tags     []string
	// Devices whose backend is missing are left out, with a warning.
	Devices []Device
	// Volumes is the backed-up volume-config. The VM gets the volumes of
	// its class in Pool; a backed-up volume of the same name gives its
	// size and revisions_to_keep (as far as the pool keeps revisions),
	// and a further save_on_stop volume is added.
	Volumes []Volume
	// Pool is the file pool of the VM's volumes; "" is the default pool.
	// StagedVM.Commit sets it to the pool the files were staged in.
	Pool string
}

// ignoredProps are set otherwise or never restored (doc/reference.md B.8).
var ignoredProps = map[string]bool{
	"name": true, "qid": true, "uuid": true, "label": true, "template": true,
	"dispid": true, "installed_by_rpm": true,
}

// AddVM adds spec's VM to db and returns it with the warnings of what was
// left out. It fails, leaving db unchanged, only when the VM itself cannot
// exist: a bad or taken name, an unknown class, a missing template.
func (db *DB) AddVM(spec VMSpec) (*Domain, []string, error) {
	var warns []string
	warn := func(format string, a ...any) { warns = append(warns, fmt.Sprintf(format, a...)) }
	label := spec.Label
	if _, err := db.Label(label); err != nil {
		warn("%s: label %q does not exist here; using red", spec.Name, label)
		label = "red"
	}
	opts := VMOptions{Label: label, Pool: spec.Pool}
	if opts.Pool == "" {
		opts.Pool = db.DefaultPool()
	}
	if spec.Class == AppVM || spec.Class == DispVM {
		if spec.Template == "" {
			return nil, nil, errorf(ErrInvalid, "%s: a %s needs a template", spec.Name, spec.Class)
		}
		opts.Template = spec.Template
	}
	d, _, err := db.addVM(spec.Name, spec.Class, opts)
	if err != nil {
		return nil, nil, err
	}
	d.restoreVolumes(spec.Volumes)
	for _, p := range spec.Props {
		if p.Name == "template_for_dispvms" {
			if err := d.SetProp(p.Name, p.Value); err != nil {
				warn("%v", err)
			}
		}
	}
	for _, p := range spec.Props {
		if ignoredProps[p.Name] || p.Name == "template_for_dispvms" {
			continue
		}
		if err := d.SetProp(p.Name, p.Value); err != nil {
			warn("%s: %s left at its default: %v", spec.Name, p.Name, err)
		}
	}
	for _, f := range spec.Features {
		if err := d.SetFeature(f.Name, f.Value); err != nil {
			warn("%v", err)
		}
	}
	for _, t := range spec.Tags {
		if err := d.AddTag(t); err != nil {
			warn("%v", err)
		}
	}
	for _, dev := range spec.Devices {
		if err := d.AssignDevice(dev); err != nil {
			warn("%s: device not assigned: %v", spec.Name, err)
		}
	}
	return d, warns, nil
}

// restoreVolumes applies a backed-up volume-config to a new VM's.
func (d *Domain) restoreVolumes(backed []Volume) {
	prefix := vidPrefix(d.Class(), d.Name()) + "/"
	for _, b := range backed {
		v, err := d.Volume(b.Name)
		switch {
		case err == nil:
			if !v.SnapOnStart && b.Size > 0 {
				v.Size = b.Size
			}
			if p, err := d.db.Pool(v.Pool); err == nil {
				v.RevisionsToKeep = p.revisions(v.SaveOnStop, b.RevisionsToKeep)
			}
		case b.SaveOnStop && customVolRE.MatchString(b.Name):
			v = Volume{Name: b.Name, VID: prefix + b.Name, Size: b.Size, RW: b.RW, SaveOnStop: true}
			if d.placeVolume(&v, d.customPool()) != nil {
				continue
			}
			if p, err := d.db.Pool(v.Pool); err == nil {
				v.RevisionsToKeep = p.revisions(true, b.RevisionsToKeep)
			}
		default:
			continue // a kernel volume, another pool's volatile volume
		}
		d.setVolume(v)
	}
}

// SavedVolumes lists the volumes that keep an image in a VM of class
// restored with the backed-up volume-config: what a restore writes.
func SavedVolumes(class string, backed []Volume) []string {
	d, err := newDB("").NewDomain("restored", class)
	if err != nil {
		return nil
	}
	d.restoreVolumes(backed)
	var out []string
	for _, v := range d.Volumes() {
		if v.SaveOnStop {
			out = append(out, v.Name)
		}
	}
	return out
}

// StagedVM is a VM being restored: its files go to a hidden directory in
// its pool, beside where its images will live; Commit adds the VM and
// moves them in.
type StagedVM struct {
	h       *Host
	class   string
	pool    string // the file pool its volumes go to
	poolDir string // that pool's dir_path when staging began
	dir     string
	lock    *os.File // held while the directory is in use (see CleanStaging)
	done    bool
}

// Staging directories are .restoring-*; one is made as .new-restoring-*
// and renamed once its lock is held, so that CleanStaging never takes a
// directory whose lock is not yet taken for a dead restore's.
const (
	stagingPrefix = ".restoring-"
	newPrefix     = ".new-restoring-"
)

// StageVM makes the staging directory of a VM of class whose volumes go
// to the file pool pool ("" is the default pool). It is in that pool, so
// that the images written there move into place by rename.
func (h *Host) StageVM(class, pool string) (*StagedVM, error) {
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	p, err := db.FilePool(pool)
	if err != nil {
		return nil, err
	}
	parent := filepath.Join(p.DirPath, filepath.Dir(vidPrefix(class, "x")))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, newPrefix)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(parent, stagingPrefix+strings.TrimPrefix(filepath.Base(tmp), newPrefix))
	lock, err := os.OpenFile(filepath.Join(tmp, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(tmp)
		return nil, err
	}
	return &StagedVM{h: h, class: class, pool: p.Name, poolDir: p.DirPath, dir: dir, lock: lock}, nil
}

// stagingParents are the directories staging directories are made in:
// appvms and vm-templates of the root and of every file pool.
func (h *Host) stagingParents() []string {
	tops := []string{h.root}
	if db, err := h.Load(); err == nil {
		for _, p := range db.Pools() {
			if p.IsFile() && filepath.IsAbs(p.DirPath) && !slices.Contains(tops, p.DirPath) {
				tops = append(tops, p.DirPath)
			}
		}
	}
	var out []string
	for _, top := range tops {
		out = append(out, filepath.Join(top, "appvms"), filepath.Join(top, "vm-templates"))
	}
	return out
}

// CleanStaging removes staging directories left by restores that died
// (their lock is free), and directories a restore died making (over an
// hour old), in the root and every file pool. It returns the paths it
// removed.
func (h *Host) CleanStaging() []string {
	var removed []string
	for _, parent := range h.stagingParents() {
		unlocked, _ := filepath.Glob(filepath.Join(parent, newPrefix+"*"))
		for _, dir := range unlocked {
			if fi, err := os.Lstat(dir); err == nil && time.Since(fi.ModTime()) > time.Hour && os.RemoveAll(dir) == nil {
				removed = append(removed, dir)
			}
		}
		dirs, _ := filepath.Glob(filepath.Join(parent, stagingPrefix+"*"))
		for _, dir := range dirs {
			f, err := os.Open(filepath.Join(dir, ".lock"))
			if err == nil {
				err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			}
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				if os.RemoveAll(dir) == nil {
					removed = append(removed, dir)
				}
			}
			if f != nil {
				f.Close()
			}
		}
	}
	return removed
}

// CreateImage starts the image of volume vol. Zero blocks written to it
// become holes. The caller closes it; Commit fsyncs it.
func (s *StagedVM) CreateImage(vol string) (*sparsetar.SparseWriter, *os.File, error) {
	if !customVolRE.MatchString(vol) {
		return nil, nil, errorf(ErrInvalid, "invalid volume name %q", vol)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, vol+".img"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return sparsetar.NewSparseWriter(f), f, nil
}

// OpenImage opens the staged image of volume vol for reading and writing:
// a restore applies an increment's changes to it.
func (s *StagedVM) OpenImage(vol string) (*os.File, error) {
	if !customVolRE.MatchString(vol) {
		return nil, errorf(ErrInvalid, "invalid volume name %q", vol)
	}
	return os.OpenFile(filepath.Join(s.dir, vol+".img"), os.O_RDWR, 0)
}

// TempDir makes a scratch directory in the staging area (on the same
// file system, so that images extracted there can be adopted by rename).
// The caller removes it.
func (s *StagedVM) TempDir() (string, error) { return os.MkdirTemp(s.dir, ".scratch-") }

// AdoptImage moves an image file (made in TempDir) in as volume vol's.
func (s *StagedVM) AdoptImage(vol, path string) error {
	if !customVolRE.MatchString(vol) {
		return errorf(ErrInvalid, "invalid volume name %q", vol)
	}
	dst := filepath.Join(s.dir, vol+".img")
	if _, err := os.Lstat(dst); err == nil {
		return errorf(ErrExists, "volume %s already has an image", vol)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	// A hard link would make two volumes share one image.
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.Mode().IsRegular() || ok && st.Nlink > 1 {
		return errorf(ErrInvalid, "%s is not a regular file of its own", path)
	}
	return os.Rename(path, dst)
}

// SetFirewall stages the VM's firewall.xml after checking it.
func (s *StagedVM) SetFirewall(data []byte) error {
	if _, err := ParseFirewall(data); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, FirewallFile), data, 0o664)
}

// SetNotes stages the VM's notes after checking them.
func (s *StagedVM) SetNotes(text string) error {
	if len(text) > maxNotes {
		return errorf(ErrInvalid, "notes longer than %d bytes", maxNotes)
	}
	if err := checkText("notes", text); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, NotesFile), []byte(text), 0o664)
}

// Commit adds spec's VM with the staged files, under the host lock, in
// the pool the files were staged in: its images (a volume with no staged
// image gets an empty one of its configured size; a staged image's
// length becomes its volume's size) move into place, its firewall and
// notes into its directory under the root, then pedos.xml is saved.
// also, if not nil, makes further changes in the same update (the
// restore sets references of VMs committed earlier to this one). On
// error nothing is added and the staged files are kept for another try
// or Abort.
func (s *StagedVM) Commit(spec VMSpec, also func(*DB) error) (warnings []string, err error) {
	if s.done {
		return nil, errors.New("host: staged VM already finished")
	}
	if spec.Class != s.class {
		return nil, errorf(ErrInvalid, "%s: staged as %s, committed as %s", spec.Name, s.class, spec.Class)
	}
	spec.Pool = s.pool
	h := s.h
	err = h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		if p, err := db.FilePool(s.pool); err != nil || p.DirPath != s.poolDir {
			return errorf(ErrInvalid, "%s: pool %s changed while the VM was restored into it", spec.Name, s.pool)
		}
		d, warns, err := db.AddVM(spec)
		if err != nil {
			return err
		}
		warnings = warns
		imgDir := filepath.Join(s.poolDir, vidPrefix(spec.Class, spec.Name))
		if err := s.fitImages(d, imgDir); err != nil {
			return err
		}
		if also != nil {
			if err := also(db); err != nil {
				return err
			}
		}
		if err := db.Validate(); err != nil {
			return err
		}
		undo, err := s.moveIn(h.path(vidPrefix(spec.Class, spec.Name)), imgDir)
		if err != nil {
			return err
		}
		if err := h.save(db, old); err != nil {
			// A save can fail after pedos.xml was replaced (syncing its
			// directory): then the VM is on the host and keeps its files.
			if now, _, lerr := h.load(); lerr != nil || !hasDomain(now, spec.Name) {
				undo()
				return err
			}
		}
		s.dir = imgDir
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.done = true
	os.Remove(filepath.Join(s.dir, ".lock"))
	s.lock.Close()
	syncDir(filepath.Dir(s.dir))
	os.MkdirAll(h.path(vmFSDir, spec.Name), 0o755)
	return warnings, nil
}

// moveIn moves the staged files into place: the staging directory
// becomes imgDir, the VM's directory in its pool; when that is not
// vmDir, its directory under the root (a pool elsewhere), the firewall
// and notes are copied there. Neither directory may exist. undo puts
// everything back as it was.
func (s *StagedVM) moveIn(vmDir, imgDir string) (undo func(), err error) {
	for _, dir := range []string{vmDir, imgDir} {
		if exists(dir) {
			return nil, errorf(ErrExists, "%s already exists (left from an earlier VM? remove it first)", dir)
		}
	}
	if err := syncDir(s.dir); err != nil {
		return nil, err
	}
	var own []string // the staged files that belong under the root
	if vmDir != imgDir {
		for _, f := range []string{FirewallFile, NotesFile} {
			if exists(filepath.Join(s.dir, f)) {
				own = append(own, f)
			}
		}
		if err := os.MkdirAll(filepath.Dir(vmDir), 0o755); err != nil {
			return nil, err
		}
		if err := os.Mkdir(vmDir, 0o755); err != nil {
			return nil, err
		}
		for _, f := range own {
			src, dst := filepath.Join(s.dir, f), filepath.Join(vmDir, f)
			fi, err := os.Stat(src)
			if err == nil {
				err = copyFile(dst, src)
			}
			if err == nil {
				err = os.Chmod(dst, fi.Mode().Perm())
			}
			if err != nil {
				os.RemoveAll(vmDir)
				return nil, err
			}
		}
		if err := syncDir(vmDir); err != nil {
			os.RemoveAll(vmDir)
			return nil, err
		}
	}
	if err := os.Rename(s.dir, imgDir); err != nil {
		if vmDir != imgDir {
			os.RemoveAll(vmDir)
		}
		return nil, err
	}
	for _, f := range own {
		os.Remove(filepath.Join(imgDir, f))
	}
	return func() {
		if vmDir != imgDir {
			os.RemoveAll(vmDir)
		}
		os.Rename(imgDir, s.dir)
	}, nil
}

func hasDomain(db *DB, name string) bool {
	_, err := db.Domain(name)
	return err == nil
}

// fitImages makes the staged images match d's volumes: every save_on_stop
// volume has an image (fsynced) that will be in imgDir, each image's
// length is its volume's size, and no other image is staged.
func (s *StagedVM) fitImages(d *Domain, imgDir string) error {
	want := map[string]bool{}
	for _, v := range d.Volumes() {
		if !v.SaveOnStop {
			continue
		}
		if img, err := d.imagePath(v); err != nil {
			return err
		} else if img != filepath.Join(imgDir, v.Name+".img") {
			return errorf(ErrInvalid, "%s: volume %s would not be in the directory its image is staged for", d.Name(), v.Name)
		}
		want[v.Name+".img"] = true
		img := filepath.Join(s.dir, v.Name+".img")
		fi, err := os.Stat(img)
		if errors.Is(err, fs.ErrNotExist) {
			if err := createSparse(img, v.Size); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		v.Size = fi.Size()
		d.setVolume(v)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".img") && !want[e.Name()] {
			return errorf(ErrInvalid, "%s: staged image %s is not a volume of the VM", d.Name(), e.Name())
		}
	}
	return nil
}

// Abort removes the staged files; after Commit it does nothing.
func (s *StagedVM) Abort() {
	if !s.done {
		s.done = true
		os.RemoveAll(s.dir)
		s.lock.Close()
	}
}
