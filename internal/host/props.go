package host

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Properties are stored as Qubes stores them: only values that were set
// (not defaults), as text: booleans "True"/"False", numbers in decimal,
// VMs by name ("" is None), the label as its id "label-N". What this file
// knows of each property (its type, which classes have it, its default,
// which VMs it may name) follows qubes-core-admin.

type propKind uint8

const (
	kText      propKind = iota
	kBool               // "True" / "False"
	kPosInt             // > 0
	kNonNegInt          // >= 0
	kOptInt             // >= 0, or "" for None
	kRef                // a VM name, or "" for None
	kLabel              // a label id, set by name or id
	kPool               // a pool name
	kFixed              // set at creation, read-only
)

// refKind is what a VM reference must point at.
type refKind uint8

const (
	refNone     refKind = iota
	refAny              // any VM
	refTemplate         // a TemplateVM
	refNet              // a VM with provides_network
	refDVM              // a VM with template_for_dispvms
)

type propDef struct {
	kind    propKind
	classes []string // nil: every class but AdminVM
	all     bool     // every class, AdminVM too
	def     func(d *Domain, depth int) string
	ref     func(d *Domain) refKind
	check   func(v string) error // more checks of a kText value
}

func (p propDef) applies(class string) bool {
	if p.all {
		return true
	}
	if p.classes != nil {
		return slices.Contains(p.classes, class)
	}
	return class != AdminVM
}

var vmProps map[string]propDef

func init() {
	is := func(v string) func(*Domain, int) string { return func(*Domain, int) string { return v } }
	global := func(name string) func(*Domain) string {
		return func(d *Domain) string { v, _ := d.db.GlobalProp(name); return v }
	}
	// fromTemplate is Qubes' _default_with_template: the template's value,
	// else fallback.
	fromTemplate := func(name string, fallback func(*Domain) string) func(*Domain, int) string {
		return func(d *Domain, depth int) string {
			if t := d.templateDomain(); t != nil && depth < 8 {
				return t.prop(name, depth+1)
			}
			return fallback(d)
		}
	}
	fixed := func(v string) func(*Domain) string { return func(*Domain) string { return v } }
	ref := func(k refKind) func(*Domain) refKind { return func(*Domain) refKind { return k } }
	vmProps = map[string]propDef{
		"name": {kind: kFixed, all: true},
		"qid":  {kind: kFixed, all: true},
		"uuid": {kind: kFixed, all: true},
		"label": {kind: kLabel, all: true, def: func(d *Domain, _ int) string {
			if d.Class() == AdminVM {
				return "label-8" // black
			}
			return ""
		}},
		"template": {kind: kRef, classes: []string{AppVM, DispVM}, ref: func(d *Domain) refKind {
			if d.Class() == DispVM {
				return refDVM
			}
			return refTemplate
		}},
		"netvm": {kind: kRef, ref: ref(refNet), def: func(d *Domain, _ int) string {
			if d.Class() == TemplateVM {
				return ""
			}
			return global("default_netvm")(d)
		}},
		"provides_network":     {kind: kBool, def: is("False")},
		"template_for_dispvms": {kind: kBool, classes: []string{AppVM, StandaloneVM}, def: is("False")},
		"default_dispvm": {kind: kRef, all: true, ref: ref(refDVM), def: func(d *Domain, _ int) string {
			if d.Class() == DispVM {
				return d.Template()
			}
			return global("default_dispvm")(d)
		}},
		"management_dispvm": {kind: kRef, all: true, ref: ref(refDVM), def: fromTemplate("management_dispvm", global("management_dispvm"))},
		"guivm":             {kind: kRef, ref: ref(refAny), def: fromTemplate("guivm", global("default_guivm"))},
		"audiovm":           {kind: kRef, ref: ref(refAny), def: fromTemplate("audiovm", global("default_audiovm"))},
		"memory":            {kind: kPosInt, def: fromTemplate("memory", fixed("400"))},
		"maxmem":            {kind: kNonNegInt, def: fromTemplate("maxmem", fixed("4000"))},
		"vcpus":             {kind: kPosInt, def: fromTemplate("vcpus", fixed("2"))},
		"qrexec_timeout":    {kind: kPosInt, def: fromTemplate("qrexec_timeout", global("default_qrexec_timeout"))},
		"shutdown_timeout":  {kind: kPosInt, def: fromTemplate("shutdown_timeout", global("default_shutdown_timeout"))},
		"kernel":            {kind: kText, check: noSlash, def: fromTemplate("kernel", global("default_kernel"))},
		"kernelopts": {kind: kText, def: fromTemplate("kernelopts", fixed("")), check: func(v string) error {
			if len(v) > 512 {
				return errors.New("longer than 512 characters")
			}
			return nil
		}},
		"virt_mode": {kind: kText, check: oneOf("pv", "pvh", "hvm"), def: func(d *Domain, depth int) string {
			for _, dev := range d.Devices() {
				if dev.Class == "pci" {
					return "hvm"
				}
			}
			return fromTemplate("virt_mode", fixed("pvh"))(d, depth)
		}},
		"include_in_backups": {kind: kBool, all: true, def: func(d *Domain, _ int) string {
			if d.Class() == DispVM {
				return boolText(!d.PropBool("auto_cleanup"))
			}
			return "True"
		}},
		"backup_timestamp": {kind: kOptInt, all: true, def: is("")},
		"debug":            {kind: kBool, def: is("False")},
		"autostart":        {kind: kBool, def: is("False")},
		"installed_by_rpm": {kind: kBool, def: is("False")},
		"auto_cleanup":     {kind: kBool, classes: []string{DispVM}, def: is("False")},
		"default_user": {kind: kText, def: fromTemplate("default_user", fixed("user")), check: func(v string) error {
			if !userRE.MatchString(v) {
				return errors.New("may contain only letters, digits and _-+,.")
			}
			return nil
		}},
	}
}

func noSlash(v string) error {
	if strings.Contains(v, "/") {
		return errors.New("cannot contain '/'")
	}
	return nil
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
		}
		return nil
	}
}

var (
	propNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	userRE     = regexp.MustCompile(`^[a-zA-Z0-9_+,.-]+$`)
)

func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// parseBool accepts what Qubes' property.bool accepts.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (True or False)", s)
}

// normalize turns a value given by a user into its stored text.
func (db *DB) normalize(kind propKind, check func(string) error, v string) (string, error) {
	switch kind {
	case kBool:
		b, err := parseBool(v)
		return boolText(b), err
	case kPosInt, kNonNegInt, kOptInt:
		if kind == kOptInt && v == "" {
			return "", nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch {
		case err != nil:
			return "", fmt.Errorf("%q is not a number", v)
		case kind == kPosInt && n <= 0:
			return "", fmt.Errorf("%d must be positive", n)
		case n < 0:
			return "", fmt.Errorf("%d must not be negative", n)
		}
		return strconv.FormatInt(n, 10), nil
	case kLabel:
		l, err := db.Label(v)
		if err != nil {
			return "", fmt.Errorf("no label %q", v)
		}
		return fmt.Sprintf("label-%d", l.ID), nil
	case kPool:
		for _, p := range db.Pools() {
			if p.Name == v {
				return v, nil
			}
		}
		return "", fmt.Errorf("no pool %q", v)
	case kFixed:
		return "", errors.New("is read-only")
	}
	if check != nil {
		if err := check(v); err != nil {
			return "", err
		}
	}
	return v, nil
}

// checkRef checks that target ("" is None) exists and is what k requires.
func (db *DB) checkRef(where, target string, k refKind) error {
	if target == "" || k == refNone {
		return nil
	}
	t, err := db.Domain(target)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	switch {
	case k == refTemplate && t.Class() != TemplateVM:
		return errorf(ErrInvalid, "%s: %s is %s, not a TemplateVM", where, target, withArticle(t.Class()))
	case k == refNet && !t.PropBool("provides_network"):
		return errorf(ErrInvalid, "%s: %s does not provide network (provides_network is False)", where, target)
	case k == refDVM && !t.PropBool("template_for_dispvms"):
		return errorf(ErrInvalid, "%s: %s is not a disposable template (template_for_dispvms is False)", where, target)
	}
	return nil
}

func (d *Domain) propNode(name string) *node {
	if ps := d.n.child("properties"); ps != nil {
		return ps.keyed("property", "name", name)
	}
	return nil
}

// stored returns a property's stored text (a ref attribute, which old
// Qubes writers used, counts when there is no text).
func (d *Domain) stored(name string) (string, bool) {
	n := d.propNode(name)
	if n == nil {
		return "", false
	}
	if n.Text == "" && n.hasAttr("ref") {
		return n.attr("ref"), true
	}
	return n.Text, true
}

func (d *Domain) setStored(name, v string) {
	n := d.propNode(name)
	if n == nil {
		n = elem("property", "name", name)
		ps := d.n.ensure("properties", domainOrder)
		ps.Kids = append(ps.Kids, n)
	}
	n.delAttr("ref")
	n.Text = v
}

// Props returns the stored properties in file order, as written (the
// label as its id). A restore copies these.
func (d *Domain) Props() []Property {
	var out []Property
	if ps := d.n.child("properties"); ps != nil {
		for _, n := range ps.children("property") {
			v, _ := d.stored(n.attr("name"))
			out = append(out, Property{n.attr("name"), v})
		}
	}
	return out
}

// Prop returns a property's value as the admin tools show it (the label
// by name, VMs by name, "" for None) and whether that is the default
// rather than a stored value. Unknown properties that are not stored
// give ("", true).
func (d *Domain) Prop(name string) (value string, isDefault bool) {
	v, stored := d.stored(name)
	switch {
	case name == "name" || name == "qid":
		v, stored = d.Name(), d.Class() != AdminVM
		if name == "qid" {
			v = strconv.Itoa(d.Qid())
		}
	case !stored:
		v = d.prop(name, 0)
	}
	if name == "label" {
		if l, err := d.db.Label(v); err == nil {
			v = l.Name
		}
	}
	return v, !stored
}

func (d *Domain) prop(name string, depth int) string {
	if v, ok := d.stored(name); ok {
		return v
	}
	if def, ok := vmProps[name]; ok && def.def != nil && def.applies(d.Class()) {
		return def.def(d, depth)
	}
	return ""
}

// PropBool returns a boolean property's effective value.
func (d *Domain) PropBool(name string) bool {
	b, _ := parseBool(d.prop(name, 0))
	return b
}

// PropNames lists the properties of this VM's class that this package
// knows, and any others it stores, sorted.
func (d *Domain) PropNames() []string {
	var out []string
	for name, def := range vmProps {
		if def.applies(d.Class()) {
			out = append(out, name)
		}
	}
	for _, p := range d.Props() {
		if !slices.Contains(out, p.Name) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func (d *Domain) templateDomain() *Domain {
	if name := d.Template(); name != "" {
		if t, err := d.db.Domain(name); err == nil {
			return t
		}
	}
	return nil
}

// SetProp sets a property, after checking the value (type, class, the VM
// it names) and its effect (no network loops, no VM left with a netvm
// or disposable template that lost the role). On error nothing changes.
func (d *Domain) SetProp(name, value string) error {
	where := d.Name() + ": " + name
	def, known := vmProps[name]
	switch {
	case !propNameRE.MatchString(name):
		return errorf(ErrInvalid, "%s: invalid property name", where)
	case known && !def.applies(d.Class()):
		return errorf(ErrInvalid, "%s: no such property for class %s", where, d.Class())
	}
	if err := checkText(where, value); err != nil {
		return err
	}
	v, err := d.db.normalize(def.kind, def.check, value)
	if err != nil {
		return errorf(ErrInvalid, "%s: %v", where, err)
	}
	return d.change(name, func() { d.setStored(name, v) })
}

// ResetProp deletes a stored property so that the default applies.
// label, template and the fixed properties have no default.
func (d *Domain) ResetProp(name string) error {
	where := d.Name() + ": " + name
	def := vmProps[name]
	if def.kind == kFixed || def.kind == kLabel && d.Class() != AdminVM || name == "template" && def.applies(d.Class()) {
		return errorf(ErrInvalid, "%s has no default", where)
	}
	return d.change(name, func() {
		if ps := d.n.child("properties"); ps != nil {
			ps.remove(d.propNode(name))
		}
	})
}

// change applies an edit, then checks the property and rolls back if the
// result is not valid.
func (d *Domain) change(name string, edit func()) error {
	saved := d.n.clone()
	edit()
	if name == "template" {
		d.linkVolumes()
	}
	if err := d.checkProp(name); err != nil {
		*d.n = *saved
		return err
	}
	return nil
}

// checkProp checks the current value of one property and what depends on it.
func (d *Domain) checkProp(name string) error {
	where := d.Name() + ": " + name
	def, known := vmProps[name]
	v, stored := d.stored(name)
	if known && stored && def.kind != kFixed {
		if _, err := d.db.normalize(def.kind, def.check, v); err != nil {
			return errorf(ErrInvalid, "%s: %v", where, err)
		}
	}
	switch {
	case name == "label" && d.Class() != AdminVM && !stored:
		return errorf(ErrInvalid, "%s: VM has no label", where)
	case name == "template" && def.applies(d.Class()) && v == "":
		return errorf(ErrInvalid, "%s: not set (every %s needs a template)", where, d.Class())
	case name == "provides_network" && !d.PropBool(name):
		if users := d.netUsers(); len(users) > 0 {
			return errorf(ErrInUse, "%s: %s is the netvm of %s", where, d.Name(), list(users))
		}
	case name == "template_for_dispvms" && !d.PropBool(name):
		if users := d.dvmUsers(); len(users) > 0 {
			return errorf(ErrInUse, "%s: %s is the disposable template of %s", where, d.Name(), list(users))
		}
	}
	if known && def.kind == kRef && stored && def.applies(d.Class()) {
		if err := d.db.checkRef(where, v, def.ref(d)); err != nil {
			return err
		}
	}
	if name == "netvm" {
		return d.netLoop()
	}
	return nil
}

// checkAll checks every property of the VM.
func (d *Domain) checkAll() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(vmProps)) {
		if vmProps[name].applies(d.Class()) {
			errs = append(errs, d.checkProp(name))
		}
	}
	return errors.Join(errs...)
}

// netLoop fails if following netvm from d comes back to a VM already seen.
func (d *Domain) netLoop() error {
	path := []string{d.Name()}
	for cur := d; ; {
		next := cur.NetVM()
		if next == "" || !vmProps["netvm"].applies(cur.Class()) {
			return nil
		}
		path = append(path, next)
		if slices.Contains(path[:len(path)-1], next) {
			return errorf(ErrInvalid, "%s: network loop %s", d.Name(), strings.Join(path, " -> "))
		}
		n, err := d.db.Domain(next)
		if err != nil {
			return nil // reported by the reference check
		}
		cur = n
	}
}

// netUsers lists who uses d as netvm: VMs (by setting or by default) and
// the global default_netvm.
func (d *Domain) netUsers() []string {
	var out []string
	if v, _ := d.db.GlobalProp("default_netvm"); v == d.Name() {
		out = append(out, "global default_netvm")
	}
	for _, o := range d.db.Domains() {
		if o.n != d.n && vmProps["netvm"].applies(o.Class()) && o.NetVM() == d.Name() {
			out = append(out, o.Name())
		}
	}
	return out
}

// dvmUsers lists who needs d as a disposable template.
func (d *Domain) dvmUsers() []string {
	var out []string
	for _, g := range []string{"default_dispvm", "management_dispvm"} {
		if v, _ := d.db.GlobalProp(g); v == d.Name() {
			out = append(out, "global "+g)
		}
	}
	for _, o := range d.db.Domains() {
		if o.Class() == DispVM && o.Template() == d.Name() {
			out = append(out, o.Name()+" (template)")
		}
		for _, p := range []string{"default_dispvm", "management_dispvm"} {
			if v, ok := o.stored(p); ok && v == d.Name() {
				out = append(out, o.Name()+" ("+p+")")
			}
		}
	}
	return out
}

func list(names []string) string {
	if len(names) > 6 {
		return strings.Join(names[:6], ", ") + fmt.Sprintf(" and %d more", len(names)-6)
	}
	return strings.Join(names, ", ")
}

// IsRefProp reports whether a VM property names a VM (netvm, template,
// default_dispvm, guivm, ...): a restore must map it to the restored names.
func IsRefProp(name string) bool { return vmProps[name].kind == kRef }
