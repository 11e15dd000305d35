package host

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// VM classes, as in the class attribute of <domain>.
const (
	AdminVM      = "AdminVM"
	TemplateVM   = "TemplateVM"
	AppVM        = "AppVM"
	StandaloneVM = "StandaloneVM"
	DispVM       = "DispVM"
)

// maxQid bounds qids as Qubes does (qubes.config.max_qid).
const maxQid = 10000

// Label is a VM colour label.
type Label struct {
	ID    int    // N in id="label-N"
	Name  string // red, orange, ...
	Color string // 0xRRGGBB
}

// StandardLabels are the eight labels of every Qubes and PedOS host.
var StandardLabels = []Label{
	{1, "red", "0xcc0000"}, {2, "orange", "0xf57900"}, {3, "yellow", "0xedd400"},
	{4, "green", "0x73d216"}, {5, "gray", "0x555753"}, {6, "blue", "0x3465a4"},
	{7, "purple", "0x75507b"}, {8, "black", "0x000000"},
}

// Property is a stored property: name and text as written in the file.
type Property struct{ Name, Value string }

// DB is a snapshot of the VM database (pedos.xml, or a qubes.xml read from
// a backup). It is the XML tree itself: accessors read and edit it in
// place, and Marshal writes it back with everything it does not know.
// A DB is not safe for concurrent use.
type DB struct{ root *node }

// Order in which the writer places known children (others keep their place).
var (
	topOrder    = []string{"labels", "pools", "properties", "domains"}
	domainOrder = []string{"properties", "features", "tags", "devices", "volume-config"}
)

// ParseDB reads a qubes.xml or pedos.xml. It checks the structure and
// that no entry is ambiguous (two VMs of one name, qid or uuid, two
// AdminVMs, a label or pool declared twice, ...: see checkIdentity), not
// the consistency (see Validate): a backup's qubes.xml may name VMs that
// do not exist here.
func ParseDB(data []byte) (*DB, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, errorf(ErrInvalid, "parsing VM database: %v", err)
	}
	if root.Name.Space != "" || root.Name.Local != "qubes" {
		return nil, errorf(ErrInvalid, "VM database root element is <%s>, want <qubes>", qname(root.Name))
	}
	db := &DB{root: root}
	if err := db.checkIdentity(); err != nil {
		return nil, err
	}
	return db, nil
}

// newDB returns the database of a fresh host whose pool lives in dir.
func newDB(dir string) *DB {
	db := &DB{root: elem("qubes")}
	labels := db.root.ensure("labels", topOrder)
	for _, l := range StandardLabels {
		n := elem("label", "id", fmt.Sprintf("label-%d", l.ID), "color", l.Color)
		n.Text = l.Name
		labels.Kids = append(labels.Kids, n)
	}
	db.root.ensure("pools", topOrder).Kids = append(db.root.child("pools").Kids,
		elem("pool", "name", PoolName, "dir_path", dir, "driver", "file", "revisions_to_keep", "1"))
	db.root.ensure("properties", topOrder)
	dom0 := elem("domain", "id", "domain-0", "class", AdminVM)
	d := &Domain{db: db, n: dom0}
	d.setStored("label", "label-8")
	dom0.ensure("features", domainOrder)
	dom0.ensure("tags", domainOrder)
	db.root.ensure("domains", topOrder).Kids = append(db.root.child("domains").Kids, dom0)
	return db
}

// Marshal returns the database as Qubes writes qubes.xml: UTF-8, two-space
// indent, no XML declaration.
func (db *DB) Marshal() []byte { return db.root.marshal() }

// Clone returns an independent copy.
func (db *DB) Clone() *DB { return &DB{root: db.root.clone()} }

// Labels returns the labels in file order.
func (db *DB) Labels() []Label {
	var out []Label
	if ls := db.root.child("labels"); ls != nil {
		for _, n := range ls.children("label") {
			id, _ := strconv.Atoi(strings.TrimPrefix(n.attr("id"), "label-"))
			out = append(out, Label{ID: id, Name: strings.TrimSpace(n.Text), Color: n.attr("color")})
		}
	}
	return out
}

// Label finds a label by name ("blue") or id ("label-6").
func (db *DB) Label(nameOrID string) (Label, error) {
	for _, l := range db.Labels() {
		if l.Name == nameOrID || fmt.Sprintf("label-%d", l.ID) == nameOrID {
			return l, nil
		}
	}
	return Label{}, errorf(ErrInvalid, "no label %q", nameOrID)
}

func (db *DB) domainNodes() []*node {
	if ds := db.root.child("domains"); ds != nil {
		return ds.children("domain")
	}
	return nil
}

// Domains returns every VM, dom0 included, ordered by qid.
func (db *DB) Domains() []*Domain {
	var out []*Domain
	for _, n := range db.domainNodes() {
		out = append(out, &Domain{db: db, n: n})
	}
	slices.SortStableFunc(out, func(a, b *Domain) int { return a.Qid() - b.Qid() })
	return out
}

// Domain returns the VM called name (dom0 is "dom0"); the error wraps
// ErrNoSuchVM.
func (db *DB) Domain(name string) (*Domain, error) {
	for _, n := range db.domainNodes() {
		if d := (&Domain{db: db, n: n}); d.Name() == name {
			return d, nil
		}
	}
	return nil, errorf(ErrNoSuchVM, "no VM named %q", name)
}

var nameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)

// ValidateName checks a new VM name by Qubes' rules: a letter, then
// letters, digits, "_", "." or "-"; at most 31 characters; not "none",
// "default", "Domain-0" and not ending in "-dm" (the name of a stub domain).
func ValidateName(name string) error {
	bad := func(why string) error { return errorf(ErrInvalid, "invalid VM name %s: %s", elide.Quote(name), why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 31:
		return bad("longer than 31 characters")
	case !nameRE.MatchString(name):
		return bad("must start with a letter and contain only letters, digits, '_', '.' and '-'")
	case name == "none" || name == "default" || name == "Domain-0":
		return bad("reserved")
	case strings.HasSuffix(name, "-dm"):
		return bad("cannot end with -dm")
	}
	return nil
}

// NewDomain adds a halted VM of class (TemplateVM, AppVM, StandaloneVM or
// DispVM) with the lowest free qid, a fresh uuid and the volume-config of
// its class. The caller must still set its label and, for AppVM and
// DispVM, its template. No files are made (see Host.CreateVM).
func (db *DB) NewDomain(name, class string) (*Domain, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	switch class {
	case TemplateVM, AppVM, StandaloneVM, DispVM:
	default:
		return nil, errorf(ErrInvalid, "unknown VM class %q (want TemplateVM, AppVM, StandaloneVM or DispVM)", class)
	}
	if _, err := db.Domain(name); err == nil {
		return nil, errorf(ErrExists, "VM %s already exists", name)
	}
	used := map[int]bool{}
	for _, d := range db.Domains() {
		used[d.Qid()] = true
	}
	qid := 1
	for used[qid] {
		qid++
	}
	if qid >= maxQid {
		return nil, errorf(ErrInvalid, "no free qid")
	}
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	n := elem("domain", "id", fmt.Sprintf("domain-%d", qid), "class", class)
	d := &Domain{db: db, n: n}
	d.setStored("name", name)
	d.setStored("qid", strconv.Itoa(qid))
	d.setStored("uuid", fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:]))
	n.ensure("features", domainOrder)
	n.ensure("tags", domainOrder)
	d.defaultVolumes()
	ds := db.root.ensure("domains", topOrder)
	ds.Kids = append(ds.Kids, n)
	return d, nil
}

// RemoveDomain deletes a VM from the database. It fails with ErrInUse,
// naming the users, while other VMs or global properties refer to it.
// Files are not touched (see Host.RemoveVM).
func (db *DB) RemoveDomain(name string) error {
	d, err := db.Domain(name)
	if err != nil {
		return err
	}
	if d.Class() == AdminVM {
		return errorf(ErrInvalid, "dom0 cannot be removed")
	}
	if users := db.UsedBy(name); len(users) > 0 {
		return errorf(ErrInUse, "VM %s is used by %s", name, strings.Join(users, ", "))
	}
	db.root.child("domains").remove(d.n)
	return nil
}

// UsedBy lists what refers to VM name: "work (netvm)", "sys-usb (usb
// device 2-1 backend)", "global default_template".
func (db *DB) UsedBy(name string) []string {
	var out []string
	for _, p := range db.GlobalProps() {
		if globalProps[p.Name].ref != refNone && p.Value == name {
			out = append(out, "global "+p.Name)
		}
	}
	for _, d := range db.Domains() {
		if d.Name() == name {
			continue
		}
		for _, p := range d.Props() {
			if def, ok := vmProps[p.Name]; ok && def.kind == kRef && p.Value == name {
				out = append(out, fmt.Sprintf("%s (%s)", d.Name(), p.Name))
			}
		}
		for _, dev := range d.Devices() {
			if dev.Backend == name {
				out = append(out, fmt.Sprintf("%s (%s device %s backend)", d.Name(), dev.Class, dev.Port))
			}
		}
	}
	return out
}

// Validate checks the whole database: no ambiguous entry (checkIdentity),
// one AdminVM, valid names and qids, known classes, resolvable labels,
// references to VMs that exist and have the right class and flags, no
// network loops, well-formed values of the properties this package knows.
// Host.Update refuses to save a database that fails it.
func (db *DB) Validate() error {
	errs := []error{db.checkIdentity()}
	var admins []string // their qids
	for _, d := range db.Domains() {
		name, class := d.Name(), d.Class()
		switch class {
		case AdminVM:
			admins = append(admins, strconv.Itoa(d.Qid()))
			if len(admins) > 1 {
				// Reported once below; its name and qid would only add
				// consequences ("two VMs called dom0") ahead of the cause.
				continue
			}
			if d.Qid() != 0 {
				errs = append(errs, errorf(ErrInvalid, "dom0 has qid %d, want 0", d.Qid()))
			}
		case TemplateVM, AppVM, StandaloneVM, DispVM, "RemoteVM":
			if err := ValidateName(name); err != nil {
				errs = append(errs, err)
			}
			if q := d.Qid(); q <= 0 || q >= maxQid {
				errs = append(errs, errorf(ErrInvalid, "VM %s: qid %d out of range", name, q))
			}
		default:
			errs = append(errs, errorf(ErrInvalid, "VM %s: unknown class %q", name, class))
		}
		errs = append(errs, d.checkAll())
	}
	switch {
	case len(admins) == 0:
		errs = append([]error{errorf(ErrInvalid, "no AdminVM entry (dom0)")}, errs...)
	case len(admins) > 1:
		errs = append([]error{errorf(ErrInvalid, "%d AdminVM entries (qids %s), want one: there is one dom0",
			len(admins), strings.Join(admins, ", "))}, errs...)
	}
	for _, name := range slices.Sorted(maps.Keys(globalProps)) {
		errs = append(errs, db.checkGlobal(name))
	}
	return errors.Join(errs...)
}

// KeepDomains removes every VM but dom0 and those keep accepts, with no
// check of what refers to them: for building a backup's qubes.xml with
// only some VMs' metadata, where the caller keeps every VM a kept one or a
// global property names.
func (db *DB) KeepDomains(keep func(*Domain) bool) {
	ds := db.root.child("domains")
	for _, d := range db.Domains() {
		if d.Class() != AdminVM && !keep(d) {
			ds.remove(d.n)
		}
	}
}

// Refs lists the VMs a VM names: the VM-valued properties (template,
// netvm, default_dispvm, guivm, ...) and its devices' backends.
func (d *Domain) Refs() []string {
	var out []string
	for _, p := range d.Props() {
		if IsRefProp(p.Name) && p.Value != "" {
			out = append(out, p.Value)
		}
	}
	for _, dev := range d.Devices() {
		out = append(out, dev.Backend)
	}
	return out
}
