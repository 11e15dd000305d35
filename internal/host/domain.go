package host

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Domain is one VM of a DB. It is a view of the DB's tree: changes are
// made in the DB and saved with it.
type Domain struct {
	db *DB
	n  *node
}

// Class is the VM class: AdminVM, TemplateVM, AppVM, StandaloneVM, DispVM.
func (d *Domain) Class() string { return d.n.attr("class") }

// Name is the VM name; for the AdminVM it is always "dom0".
func (d *Domain) Name() string {
	if d.Class() == AdminVM {
		return "dom0"
	}
	v, _ := d.stored("name")
	return v
}

// Qid is the VM's number (property qid, else the id attribute domain-N);
// -1 if it has none.
func (d *Domain) Qid() int {
	v, ok := d.stored("qid")
	if !ok {
		v = strings.TrimPrefix(d.n.attr("id"), "domain-")
	}
	if q, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return q
	}
	return -1
}

// Label is the name of the VM's label ("" if unset or unknown).
func (d *Domain) Label() string {
	v, _ := d.Prop("label")
	if l, err := d.db.Label(v); err == nil {
		return l.Name
	}
	return ""
}

// Template is the template's name ("" for VMs that have none).
func (d *Domain) Template() string {
	if !vmProps["template"].applies(d.Class()) {
		return ""
	}
	v, _ := d.stored("template")
	return v
}

// NetVM is the effective netvm: the VM's own setting, else the default;
// "" means no network.
func (d *Domain) NetVM() string {
	v, _ := d.Prop("netvm")
	return v
}

// IncludeInBackups is the effective include_in_backups.
func (d *Domain) IncludeInBackups() bool { return d.PropBool("include_in_backups") }

// Feature is a VM feature. Qubes stores True as "1" and False as "".
type Feature struct{ Name, Value string }

var featureRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// Features returns the features in file order.
func (d *Domain) Features() []Feature {
	var out []Feature
	if fs := d.n.child("features"); fs != nil {
		for _, f := range fs.children("feature") {
			out = append(out, Feature{f.attr("name"), f.Text})
		}
	}
	return out
}

// Feature returns a feature's value and whether it is set.
func (d *Domain) Feature(name string) (string, bool) {
	if fs := d.n.child("features"); fs != nil {
		if f := fs.keyed("feature", "name", name); f != nil {
			return f.Text, true
		}
	}
	return "", false
}

// SetFeature sets a feature, keeping its place if it exists.
func (d *Domain) SetFeature(name, value string) error {
	if !featureRE.MatchString(name) {
		return errorf(ErrInvalid, "%s: invalid feature name %q (use letters, digits, '_', '.', '-')", d.Name(), name)
	}
	if err := checkText(d.Name()+": feature "+name, value); err != nil {
		return err
	}
	fs := d.n.ensure("features", domainOrder)
	f := fs.keyed("feature", "name", name)
	if f == nil {
		f = elem("feature", "name", name)
		fs.Kids = append(fs.Kids, f)
	}
	f.Text = value
	return nil
}

// DeleteFeature removes a feature and reports whether it was set.
func (d *Domain) DeleteFeature(name string) bool {
	if fs := d.n.child("features"); fs != nil {
		return fs.remove(fs.keyed("feature", "name", name))
	}
	return false
}

// Tags returns the tags in file order.
func (d *Domain) Tags() []string {
	var out []string
	if ts := d.n.child("tags"); ts != nil {
		for _, t := range ts.children("tag") {
			out = append(out, t.attr("name"))
		}
	}
	return out
}

// HasTag reports whether the VM has the tag.
func (d *Domain) HasTag(name string) bool {
	ts := d.n.child("tags")
	return ts != nil && ts.keyed("tag", "name", name) != nil
}

// AddTag adds a tag (nothing happens if it is there).
func (d *Domain) AddTag(name string) error {
	if !featureRE.MatchString(name) {
		return errorf(ErrInvalid, "%s: invalid tag %q (use letters, digits, '_', '.', '-')", d.Name(), name)
	}
	if !d.HasTag(name) {
		ts := d.n.ensure("tags", domainOrder)
		ts.Kids = append(ts.Kids, elem("tag", "name", name))
	}
	return nil
}

// RemoveTag removes a tag and reports whether it was there.
func (d *Domain) RemoveTag(name string) bool {
	if ts := d.n.child("tags"); ts != nil {
		return ts.remove(ts.keyed("tag", "name", name))
	}
	return false
}

// Device is a persistent device assignment.
type Device struct {
	Class   string // bus: pci, usb, block, mic, ...
	Backend string // backend-domain
	Port    string // id attribute: the port, e.g. "00_1f.6", "2-1", "sda"
	// Mode is required, auto-attach or ask-to-attach. Read from a file it
	// follows format.md §6.2: the old required attribute if present
	// (yes/True = required, else auto-attach), else mode, else required.
	Mode     string
	Identity string // device identity; "*" is any device on the port
	Options  []Feature
}

var (
	devModes   = map[string]bool{"required": true, "auto-attach": true, "ask-to-attach": true}
	devClassRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
)

// Devices returns the assignments, by bus in file order.
func (d *Domain) Devices() []Device {
	var out []Device
	for _, ds := range d.n.children("devices") {
		for _, n := range ds.children("device") {
			dev := Device{Class: ds.attr("class"), Backend: n.attr("backend-domain"), Port: n.attr("id"),
				Mode: "required", Identity: n.attr("identity")}
			if n.hasAttr("required") {
				if r, err := parseBool(n.attr("required")); err == nil && !r {
					dev.Mode = "auto-attach"
				}
			} else if m := n.attr("mode"); m != "" {
				dev.Mode = m
			}
			for _, o := range n.children("option") {
				dev.Options = append(dev.Options, Feature{o.attr("name"), o.Text})
			}
			out = append(out, dev)
		}
	}
	return out
}

// AssignDevice adds a persistent assignment. The backend must exist and
// the (bus, backend, port) must be free. An empty Mode is auto-attach and
// an empty Identity "*", as qvm-device assign does.
func (d *Domain) AssignDevice(dev Device) error {
	what := fmt.Sprintf("%s: %s device %s:%s", d.Name(), dev.Class, dev.Backend, dev.Port)
	if dev.Mode == "" {
		dev.Mode = "auto-attach"
	}
	if dev.Identity == "" {
		dev.Identity = "*"
	}
	switch {
	case !devClassRE.MatchString(dev.Class):
		return errorf(ErrInvalid, "%s: invalid device class", what)
	case dev.Port == "" || strings.ContainsAny(dev.Port, "/ "):
		return errorf(ErrInvalid, "%s: invalid port id", what)
	case !devModes[dev.Mode]:
		return errorf(ErrInvalid, "%s: mode %q (want required, auto-attach or ask-to-attach)", what, dev.Mode)
	case dev.Backend == d.Name():
		return errorf(ErrInvalid, "%s: a VM cannot be its own device backend", what)
	}
	if _, err := d.db.Domain(dev.Backend); err != nil {
		return fmt.Errorf("%s: backend: %w", what, err)
	}
	for _, o := range dev.Options {
		if !featureRE.MatchString(o.Name) {
			return errorf(ErrInvalid, "%s: invalid option name %q", what, o.Name)
		}
		if err := checkText(what+" option "+o.Name, o.Value); err != nil {
			return err
		}
	}
	for _, have := range d.Devices() {
		if have.Class == dev.Class && have.Backend == dev.Backend && have.Port == dev.Port {
			return errorf(ErrExists, "%s is already assigned", what)
		}
	}
	ds := d.devicesNode(dev.Class)
	n := elem("device", "backend-domain", dev.Backend, "id", dev.Port, "mode", dev.Mode, "identity", dev.Identity)
	for _, o := range dev.Options {
		on := elem("option", "name", o.Name)
		on.Text = o.Value
		n.Kids = append(n.Kids, on)
	}
	ds.Kids = append(ds.Kids, n)
	return nil
}

// UnassignDevice removes an assignment.
func (d *Domain) UnassignDevice(class, backend, port string) error {
	for _, ds := range d.n.children("devices") {
		if ds.attr("class") != class {
			continue
		}
		for _, n := range ds.children("device") {
			if n.attr("backend-domain") == backend && n.attr("id") == port {
				ds.remove(n)
				return nil
			}
		}
	}
	return errorf(ErrInvalid, "%s: no %s device %s:%s assigned", d.Name(), class, backend, port)
}

// devicesNode returns <devices class=class>, made after the last
// <devices>, or where domainOrder puts the first one, if missing.
func (d *Domain) devicesNode(class string) *node {
	all := d.n.children("devices")
	for _, ds := range all {
		if ds.attr("class") == class {
			return ds
		}
	}
	if len(all) == 0 {
		ds := d.n.ensure("devices", domainOrder)
		ds.setAttr("class", class)
		return ds
	}
	ds := elem("devices", "class", class)
	for i, k := range d.n.Kids {
		if k == all[len(all)-1] {
			d.n.insert(i+1, ds)
			break
		}
	}
	return ds
}

// Volume is one <volume> of a VM's volume-config.
type Volume struct {
	Name, Pool, VID string
	Size            int64 // configured (nominal) size in bytes
	RW              bool
	SnapOnStart     bool // starts as a snapshot of Source (AppVM root)
	SaveOnStop      bool // persistent: what a backup stores, as <Name>.img
	Source          string
	RevisionsToKeep int // -1: snapshots disabled
}

// Default sizes of new volumes (Qubes' root_img_size and private_img_size).
const (
	DefaultRootSize    = 10 << 30
	DefaultPrivateSize = 2 << 30
)

// Volumes returns the volume-config in file order (Qubes' order: root,
// private, volatile, kernel, then custom volumes).
func (d *Domain) Volumes() []Volume {
	var out []Volume
	if vc := d.n.child("volume-config"); vc != nil {
		for _, n := range vc.children("volume") {
			out = append(out, volumeOf(n))
		}
	}
	return out
}

// Volume returns the named volume's config.
func (d *Domain) Volume(name string) (Volume, error) {
	if n := d.volumeNode(name); n != nil {
		return volumeOf(n), nil
	}
	return Volume{}, errorf(ErrNoSuchVolume, "VM %s has no volume %q", d.Name(), name)
}

func (d *Domain) volumeNode(name string) *node {
	if vc := d.n.child("volume-config"); vc != nil {
		return vc.keyed("volume", "name", name)
	}
	return nil
}

func volumeOf(n *node) Volume {
	b := func(k string) bool { v, _ := parseBool(n.attr(k)); return v }
	size, _ := strconv.ParseInt(n.attr("size"), 10, 64)
	rev, _ := strconv.Atoi(n.attr("revisions_to_keep"))
	return Volume{Name: n.attr("name"), Pool: n.attr("pool"), VID: n.attr("vid"), Size: size,
		RW: b("rw"), SnapOnStart: b("snap_on_start"), SaveOnStop: b("save_on_stop"),
		Source: n.attr("source"), RevisionsToKeep: rev}
}

// setVolume writes v's config, in place if the volume exists. Attributes
// go in the order Qubes writes them.
func (d *Domain) setVolume(v Volume) {
	n := d.volumeNode(v.Name)
	if n == nil {
		n = elem("volume")
		vc := d.n.ensure("volume-config", domainOrder)
		vc.Kids = append(vc.Kids, n)
	}
	n.setAttr("name", v.Name)
	n.setAttr("pool", v.Pool)
	n.setAttr("vid", v.VID)
	n.setAttr("revisions_to_keep", strconv.Itoa(v.RevisionsToKeep))
	n.setAttr("rw", boolText(v.RW))
	n.setAttr("save_on_stop", boolText(v.SaveOnStop))
	n.setAttr("snap_on_start", boolText(v.SnapOnStart))
	if v.Size > 0 {
		n.setAttr("size", strconv.FormatInt(v.Size, 10))
	} else {
		n.delAttr("size")
	}
	if v.Source != "" {
		n.setAttr("source", v.Source)
	} else {
		n.delAttr("source")
	}
}

// vidPrefix is where the VM's files live, relative to the host root, and
// its images, relative to a file pool's dir_path.
func vidPrefix(class, name string) string {
	if class == TemplateVM {
		return "vm-templates/" + name
	}
	return "appvms/" + name
}

// placeVolume puts v in pool, with the revisions_to_keep the pool gives
// it. The pool must exist.
func (d *Domain) placeVolume(v *Volume, pool string) error {
	p, err := d.db.Pool(pool)
	if err != nil {
		return fmt.Errorf("VM %s volume %s: %w", d.Name(), v.Name, err)
	}
	v.Pool = pool
	v.RevisionsToKeep = p.revisions(v.SaveOnStop, p.RevisionsToKeep)
	return nil
}

// customPool is where a further volume of d goes: with its private
// volume, else in the default pool.
func (d *Domain) customPool() string {
	if v, err := d.Volume("private"); err == nil && !v.SnapOnStart && v.Pool != "" {
		return v.Pool
	}
	return d.db.DefaultPool()
}

// defaultVolumes writes the volume-config of a new VM of its class, as
// Qubes' file pool would, each volume in the global default pool for it
// (default_pool_root, default_pool_private, default_pool_volatile).
// Sources, pools and sizes of snap_on_start volumes follow the template
// (linkVolumes).
func (d *Domain) defaultVolumes() {
	p := vidPrefix(d.Class(), d.Name()) + "/"
	vol := func(name string, size int64, snap, save bool) Volume {
		v := Volume{Name: name, VID: p + name, Size: size, RW: true, SnapOnStart: snap, SaveOnStop: save}
		pool, _ := d.db.GlobalProp("default_pool_" + name)
		if d.placeVolume(&v, pool) != nil {
			v.Pool = pool // a pool the database lacks: an error when used
		}
		return v
	}
	switch d.Class() {
	case TemplateVM, StandaloneVM:
		d.setVolume(vol("root", DefaultRootSize, false, true))
		d.setVolume(vol("private", DefaultPrivateSize, false, true))
		d.setVolume(vol("volatile", DefaultRootSize, false, false))
	case AppVM:
		d.setVolume(vol("root", 0, true, false))
		d.setVolume(vol("private", DefaultPrivateSize, false, true))
		d.setVolume(vol("volatile", DefaultRootSize, false, false))
	case DispVM:
		d.setVolume(vol("root", 0, true, false))
		d.setVolume(vol("private", 0, true, false))
		d.setVolume(vol("volatile", DefaultRootSize+DefaultPrivateSize, false, false))
	}
}

// moveVolumes puts every volume of a new VM that is not a snapshot of its
// template's in pool, which must be a file pool (qvm-create -P, a
// restore's pool).
func (d *Domain) moveVolumes(pool string) error {
	if _, err := d.db.FilePool(pool); err != nil {
		return err
	}
	for _, v := range d.Volumes() {
		if v.SnapOnStart {
			continue
		}
		if err := d.placeVolume(&v, pool); err != nil {
			return err
		}
		d.setVolume(v)
	}
	return nil
}

// linkVolumes points snap_on_start volumes at the template's: an AppVM's
// root at its template's root, a DispVM's root and private at its
// disposable template's. A snapshot lives in its origin's pool.
func (d *Domain) linkVolumes() {
	t, err := d.db.Domain(d.Template())
	if err != nil {
		return
	}
	for _, v := range d.Volumes() {
		if !v.SnapOnStart {
			continue
		}
		if tv, err := t.Volume(v.Name); err == nil {
			v.Source, v.Size, v.Pool = tv.VID, tv.Size, tv.Pool
			d.setVolume(v)
		}
	}
}
