package legacy

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/host"
)

// The conversion of a core2 qubes.xml into the R4 schema follows the
// reference client's (qubesadmin/backup/core2.py), so that a
// restore creates the VMs Qubes R4 would. The result also carries the
// backup bookkeeping of format 4 (features backup-content, backup-path
// with the trailing slash of a directory, backup-size), so the restore
// engine reads it like any format 4 qubes.xml.

// backupInfo is where a VM's files are in the backup.
type backupInfo struct {
	path string // "vm5/", "appvms/work/", "dom0-home/user"
	size int64
}

// backedUp is a VM whose files the backup holds.
type backedUp struct {
	name string
	dom0 bool
	path string
}

// owns reports whether a stored file belongs to the VM: dom0's home is
// one file, a VM's files lie directly in its directory.
func (b backedUp) owns(file string) bool {
	if b.dom0 {
		return file == b.path
	}
	rest, ok := strings.CutPrefix(file, b.path)
	return ok && rest != "" && !strings.Contains(rest, "/")
}

// includeFunc says whether a VM's files are in the backup, and where.
type includeFunc func(vm *core2VM) (info backupInfo, included bool, err error)

// includeStored reads the backup bookkeeping that formats 2 and 3 keep in
// qubes.xml. A VM's backup_path is its directory, written without the
// trailing slash by format 3; R4's backup-path has it.
func includeStored(vm *core2VM) (backupInfo, bool, error) {
	if vm.attr("backup_content") != "True" {
		return backupInfo{}, false, nil
	}
	p := strings.TrimRight(vm.attr("backup_path"), "/")
	if err := checkFileName(p); err != nil || strings.HasSuffix(p, "/.") {
		return backupInfo{}, false, fmt.Errorf("%w: qubes.xml: VM %s has backup_path %s", ErrCorrupt, elide.String(vm.name), elide.Quote(vm.attr("backup_path")))
	}
	if vm.qid != 0 {
		p += "/"
	}
	size, err := strconv.ParseInt(vm.attr("backup_size"), 10, 64)
	if err != nil || size < 0 {
		size = 0 // R2 wrote none
	}
	return backupInfo{path: p, size: size}, true, nil
}

type prop struct{ name, value string }

type r4Device struct{ port, noStrictReset string }

type r4VM struct {
	qid      int
	class    string
	props    []prop
	features []prop
	pci      []r4Device
}

func (v *r4VM) set(name, value string) {
	for i := range v.props {
		if v.props[i].name == name {
			v.props[i].value = value
			return
		}
	}
	v.props = append(v.props, prop{name, value})
}

func (v *r4VM) feature(name, value string) { v.features = append(v.features, prop{name, value}) }

// plainDefaults are the attributes copied as they are when they differ
// from Qubes' defaults, in the reference client's order.
var plainDefaults = []prop{
	{"include_in_backups", "True"}, {"qrexec_timeout", "60"}, {"vcpus", "2"},
	{"memory", "400"}, {"maxmem", "4000"}, {"default_user", "user"},
	{"debug", "False"}, {"mac", "None"}, {"autostart", "False"},
}

// serviceFeatures are the R3 services that became differently named features.
var serviceFeatures = map[string]string{
	"ntpd":               "service.ntpd",
	"qubes-update-check": "check-updates",
	"meminfo-writer":     "service.meminfo-writer",
}

type converter struct {
	db      *core2DB
	globals []prop
	out     []*r4VM
	nextQid int
	// defaultNetVM is the global default_netvm ("" for none); known
	// false when the file does not say.
	defaultNetVM      string
	knownDefaultNetVM bool
	defaultTemplate   string
}

// convert returns db as an R4 qubes.xml and the VMs the backup holds.
func convert(db *core2DB, include includeFunc) ([]byte, []backedUp, error) {
	c := &converter{db: db}
	c.loadGlobals()
	var held []backedUp
	for _, vm := range db.vms {
		c.nextQid = max(c.nextQid, vm.qid+1)
	}
	for _, vm := range db.vms {
		v, err := c.convertVM(vm)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: qubes.xml: VM %s: %v", ErrCorrupt, vm.name, err)
		}
		info, included, err := include(vm)
		if err != nil {
			return nil, nil, err
		}
		if included {
			v.feature("backup-content", "1")
			v.feature("backup-path", info.path)
			v.feature("backup-size", strconv.FormatInt(info.size, 10))
			held = append(held, backedUp{name: vm.name, dom0: vm.qid == 0, path: info.path})
		} else {
			v.feature("backup-content", "")
		}
		c.out = append(c.out, v)
	}
	for _, vm := range db.vms {
		if vm.qid != 0 {
			c.dispVMNet(vm)
		}
	}
	return c.marshal(), held, nil
}

func (c *converter) loadGlobals() {
	for _, g := range []string{"default_template", "default_netvm", "updatevm", "clockvm"} {
		value, present := c.db.attrs[g]
		if !present {
			continue
		}
		name, ok := c.db.ref(value)
		if !ok {
			continue
		}
		c.globals = append(c.globals, prop{g, name})
		switch g {
		case "default_netvm":
			c.defaultNetVM, c.knownDefaultNetVM = name, true
		case "default_template":
			c.defaultTemplate = name
		}
	}
	if k := c.db.attrs["default_kernel"]; !isNone(k) {
		c.globals = append(c.globals, prop{"default_kernel", k})
	}
}

// labelID turns a label name into the id R4 stores; an unknown name stays,
// and the restore falls back to red with a warning.
func labelID(name string) string {
	for _, l := range host.StandardLabels {
		if l.Name == name {
			return fmt.Sprintf("label-%d", l.ID)
		}
	}
	return name
}

func (c *converter) convertVM(vm *core2VM) (*r4VM, error) {
	v := &r4VM{qid: vm.qid}
	label := vm.attr("label")
	switch {
	case label != "":
	case vm.qid == 0:
		label = "black"
	default:
		label = "red"
	}
	hvm := strings.Contains(vm.class, "HVm")
	switch {
	case vm.qid == 0:
		// Only dom0's label and backup bookkeeping are of use.
		v.class = host.AdminVM
		v.set("label", labelID(label))
		return v, nil
	case vm.class == "QubesTemplateVm" || vm.class == "QubesTemplateHVm":
		v.class = host.TemplateVM
	case isNone(vm.attr("template_qid")):
		v.class = host.StandaloneVM
	default:
		v.class = host.AppVM
	}
	v.set("name", vm.name)
	v.set("qid", strconv.Itoa(vm.qid))
	if u := vm.attr("uuid"); u != "" {
		v.set("uuid", u)
	}
	v.set("label", labelID(label))
	if v.class == host.AppVM {
		if t, ok := c.db.ref(vm.attr("template_qid")); ok && t != "" {
			v.set("template", t)
		}
	}
	for _, p := range plainDefaults {
		if value := vm.attr(p.name); value != "" && value != p.value {
			v.set(p.name, value)
		}
	}
	for _, name := range []string{"kernel", "kernelopts"} {
		if u := vm.attr("uses_default_" + name); u != "" && !strings.EqualFold(u, "true") {
			value := vm.attr(name)
			if isNone(value) {
				value = ""
			}
			v.set(name, value)
		}
	}
	if hvm {
		v.set("virt_mode", "hvm")
		v.set("kernel", "")
		// R3.2 ran HVMs with the MiniOS stub domain; a different one
		// changes the emulated hardware under the guest.
		v.feature("linux-stubdom", "")
	}
	if vm.class == "QubesNetVm" || vm.class == "QubesProxyVm" {
		v.set("provides_network", "True")
	}
	if vm.class == "QubesNetVm" {
		v.set("netvm", "")
	}
	if u := vm.attr("uses_default_netvm"); u != "" && u != "True" {
		if name, ok := c.db.ref(vm.attr("netvm_qid")); ok {
			v.set("netvm", name)
		}
	}
	if vm.class == "QubesTemplateVm" || (vm.class == "QubesAppVm" && v.class == host.StandaloneVM) {
		// R3 assumed the agents in every PV VM; R4 asks for them.
		v.feature("qrexec", "1")
		v.feature("gui", "1")
	}
	if vm.attr("internal") == "True" {
		v.feature("internal", "1")
	}
	if s := vm.attr("services"); s != "" {
		items, err := parsePyDict(s)
		if err != nil {
			return nil, fmt.Errorf("services: %v", err)
		}
		for _, it := range items {
			name := it.key
			if f, ok := serviceFeatures[name]; ok {
				name = f
			}
			v.feature(name, featureValue(it.value))
		}
	}
	if s := vm.attr("pcidevs"); s != "" {
		devs, err := parsePyList(s)
		if err != nil {
			return nil, fmt.Errorf("pcidevs: %v", err)
		}
		noStrictReset := ""
		if vm.attr("pci_strictreset") == "False" {
			noStrictReset = "True"
		}
		for _, bdf := range devs {
			v.pci = append(v.pci, r4Device{port: strings.ReplaceAll(bdf, ":", "_"), noStrictReset: noStrictReset})
		}
	}
	return v, nil
}

// featureValue is how Qubes stores a feature: True as "1", False and None
// as "".
func featureValue(v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "1"
		}
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// dispVMNet turns a disposable VMs' network that differs from the default
// netvm into a disposable template, disp-<netvm> or disp-no-netvm, which
// becomes the VM's default_dispvm (R4 has no per-VM DispVM netvm). Those
// templates hold no data in the backup: the restore warns that they are
// missing and keeps the default.
func (c *converter) dispVMNet(vm *core2VM) {
	if !c.knownDefaultNetVM {
		return
	}
	v := c.find(vm.qid)
	var net string
	if u := vm.attr("uses_default_dispvm_netvm"); u != "" && u != "True" {
		// R3.2 wrote dispvm_netvm; the reference client reads
		// dispvm_netvm_qid.
		q, present := vm.attrs["dispvm_netvm_qid"]
		if !present {
			q = vm.attr("dispvm_netvm")
		}
		var ok bool
		if net, ok = c.db.ref(q); !ok {
			return
		}
	} else {
		net = c.defaultNetVM
		for _, p := range v.props {
			if p.name == "netvm" {
				net = p.value
			}
		}
	}
	if net == c.defaultNetVM {
		return
	}
	name := "disp-no-netvm"
	if net != "" {
		name = "disp-" + net
	}
	v.set("default_dispvm", name)
	for _, o := range c.out {
		for _, p := range o.props {
			if p.name == "name" && p.value == name {
				return
			}
		}
	}
	d := &r4VM{qid: c.nextQid, class: host.AppVM}
	c.nextQid++
	d.set("name", name)
	d.set("qid", strconv.Itoa(d.qid))
	d.set("label", labelID("red"))
	if c.defaultTemplate != "" {
		d.set("template", c.defaultTemplate)
	}
	d.set("netvm", net)
	d.set("template_for_dispvms", "True")
	d.feature("backup-content", "")
	c.out = append(c.out, d)
}

func (c *converter) find(qid int) *r4VM {
	for _, v := range c.out {
		if v.qid == qid {
			return v
		}
	}
	return nil
}

// marshal writes the database as Qubes R4 does: two-space indent, no XML
// declaration.
func (c *converter) marshal() []byte {
	var b bytes.Buffer
	line := func(depth int, format string, a ...any) {
		b.WriteString(strings.Repeat("  ", depth))
		fmt.Fprintf(&b, format, a...)
		b.WriteByte('\n')
	}
	named := func(depth int, tag string, p prop) {
		if p.value == "" {
			line(depth, `<%s name="%s"></%s>`, tag, esc(p.name), tag)
		} else {
			line(depth, `<%s name="%s">%s</%s>`, tag, esc(p.name), esc(p.value), tag)
		}
	}
	line(0, "<qubes>")
	line(1, "<labels>")
	for _, l := range host.StandardLabels {
		line(2, `<label id="label-%d" color="%s">%s</label>`, l.ID, l.Color, l.Name)
	}
	line(1, "</labels>")
	line(1, "<properties>")
	for _, p := range c.globals {
		named(2, "property", p)
	}
	line(1, "</properties>")
	line(1, "<domains>")
	for _, v := range c.out {
		line(2, `<domain id="domain-%d" class="%s">`, v.qid, v.class)
		line(3, "<properties>")
		for _, p := range v.props {
			named(4, "property", p)
		}
		line(3, "</properties>")
		line(3, "<features>")
		for _, f := range v.features {
			named(4, "feature", f)
		}
		line(3, "</features>")
		line(3, "<tags/>")
		if len(v.pci) > 0 {
			line(3, `<devices class="pci">`)
			for _, d := range v.pci {
				line(4, `<device backend-domain="dom0" id="%s" mode="required" identity="*">`, esc(d.port))
				if d.noStrictReset != "" {
					line(5, `<option name="no-strict-reset">%s</option>`, d.noStrictReset)
				}
				line(4, "</device>")
			}
			line(3, "</devices>")
		}
		line(2, "</domain>")
	}
	line(1, "</domains>")
	line(0, "</qubes>")
	return b.Bytes()
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
