package host

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "work", "sys-net", "debian-12", "Work_2.old", strings.Repeat("a", 31)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "1vm", "-vm", "_vm", ".vm", "a b", "a/b", "ä", "vm+1", strings.Repeat("a", 32),
		"none", "default", "Domain-0", "sys-dm", "lost+found"} {
		if err := ValidateName(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted (%v)", name, err)
		}
	}
}

// Every refused change leaves pedos.xml byte-identical and fails with the
// right error.
func TestValidationLeavesFileUnchanged(t *testing.T) {
	h := demoHost(t)
	orig := readFile(t, h.path(DBFile))
	vm := func(db *DB, name string) *Domain {
		d, err := db.Domain(name)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	newApp := func(db *DB, name, tmpl string) error {
		d, err := db.NewDomain(name, AppVM)
		if err != nil {
			return err
		}
		if err := d.SetProp("label", "red"); err != nil {
			return err
		}
		return d.SetProp("template", tmpl)
	}
	errCustom := errors.New("changed my mind")
	cases := []struct {
		name string
		fn   func(db *DB) error
		want error
	}{
		{"name starts with digit", func(db *DB) error { _, err := db.NewDomain("1work", AppVM); return err }, ErrInvalid},
		{"name with space", func(db *DB) error { _, err := db.NewDomain("my vm", AppVM); return err }, ErrInvalid},
		{"name too long", func(db *DB) error { _, err := db.NewDomain(strings.Repeat("x", 32), AppVM); return err }, ErrInvalid},
		{"name none", func(db *DB) error { _, err := db.NewDomain("none", AppVM); return err }, ErrInvalid},
		{"name dom0", func(db *DB) error { _, err := db.NewDomain("dom0", AppVM); return err }, ErrExists},
		{"duplicate name", func(db *DB) error { _, err := db.NewDomain("work", StandaloneVM); return err }, ErrExists},
		{"bad class", func(db *DB) error { _, err := db.NewDomain("x", "NetVM"); return err }, ErrInvalid},
		{"second AdminVM", func(db *DB) error { _, err := db.NewDomain("x", AdminVM); return err }, ErrInvalid},
		{"unknown template", func(db *DB) error { return newApp(db, "x", "debian-13") }, ErrNoSuchVM},
		{"template is an AppVM", func(db *DB) error { return newApp(db, "x", "work") }, ErrInvalid},
		{"new VM without label", func(db *DB) error {
			d, err := db.NewDomain("x", StandaloneVM)
			_ = d
			return err
		}, ErrInvalid},
		{"AppVM without template", func(db *DB) error {
			d, _ := db.NewDomain("x", AppVM)
			return d.SetProp("label", "red")
		}, ErrInvalid},
		{"DispVM template without template_for_dispvms", func(db *DB) error {
			d, _ := db.NewDomain("x", DispVM)
			d.SetProp("label", "red")
			return d.SetProp("template", "work")
		}, ErrInvalid},
		{"unknown label", func(db *DB) error { return vm(db, "work").SetProp("label", "pink") }, ErrInvalid},
		{"netvm without provides_network", func(db *DB) error { return vm(db, "work").SetProp("netvm", "personal") }, ErrInvalid},
		{"netvm unknown", func(db *DB) error { return vm(db, "work").SetProp("netvm", "sys-nope") }, ErrNoSuchVM},
		{"network loop", func(db *DB) error { return vm(db, "sys-net").SetProp("netvm", "sys-firewall") }, ErrInvalid},
		{"self as netvm", func(db *DB) error { return vm(db, "sys-net").SetProp("netvm", "sys-net") }, ErrInvalid},
		{"netvm of dom0", func(db *DB) error { return vm(db, "dom0").SetProp("netvm", "sys-net") }, ErrInvalid},
		{"template of a TemplateVM", func(db *DB) error { return vm(db, "debian-12").SetProp("template", "debian-12") }, ErrInvalid},
		{"provides_network off while used", func(db *DB) error { return vm(db, "sys-firewall").SetProp("provides_network", "False") }, ErrInUse},
		{"template_for_dispvms off while used", func(db *DB) error { return vm(db, "debian-12-dvm").ResetProp("template_for_dispvms") }, ErrInUse},
		{"default_template not a template", func(db *DB) error { return db.SetGlobalProp("default_template", "work") }, ErrInvalid},
		{"default_netvm without network", func(db *DB) error { return db.SetGlobalProp("default_netvm", "vault") }, ErrInvalid},
		{"default_dispvm not a dvm", func(db *DB) error { return db.SetGlobalProp("default_dispvm", "work") }, ErrInvalid},
		{"default_pool unknown", func(db *DB) error { return db.SetGlobalProp("default_pool", "lvm") }, ErrInvalid},
		{"memory negative", func(db *DB) error { return vm(db, "work").SetProp("memory", "-5") }, ErrInvalid},
		{"vcpus zero", func(db *DB) error { return vm(db, "work").SetProp("vcpus", "0") }, ErrInvalid},
		{"bool not bool", func(db *DB) error { return vm(db, "work").SetProp("include_in_backups", "maybe") }, ErrInvalid},
		{"virt_mode", func(db *DB) error { return vm(db, "work").SetProp("virt_mode", "kvm") }, ErrInvalid},
		{"kernel with slash", func(db *DB) error { return vm(db, "work").SetProp("kernel", "../boot") }, ErrInvalid},
		{"read-only qid", func(db *DB) error { return vm(db, "work").SetProp("qid", "99") }, ErrInvalid},
		{"rename", func(db *DB) error { return vm(db, "work").SetProp("name", "job") }, ErrInvalid},
		{"label has no default", func(db *DB) error { return vm(db, "work").ResetProp("label") }, ErrInvalid},
		{"control character", func(db *DB) error { return vm(db, "work").SetProp("x_note", "a\x01b") }, ErrInvalid},
		{"feature name", func(db *DB) error { return vm(db, "work").SetFeature("a feature", "1") }, ErrInvalid},
		{"tag name", func(db *DB) error { return vm(db, "work").AddTag("a/b") }, ErrInvalid},
		{"device backend unknown", func(db *DB) error {
			return vm(db, "work").AssignDevice(Device{Class: "usb", Backend: "sys-usb", Port: "2-1"})
		}, ErrNoSuchVM},
		{"device twice", func(db *DB) error {
			return vm(db, "sys-net").AssignDevice(Device{Class: "pci", Backend: "dom0", Port: "00_1f.6"})
		}, ErrExists},
		{"device mode", func(db *DB) error {
			return vm(db, "work").AssignDevice(Device{Class: "pci", Backend: "dom0", Port: "00_02.0", Mode: "always"})
		}, ErrInvalid},
		{"remove template in use", func(db *DB) error { return db.RemoveDomain("debian-12") }, ErrInUse},
		{"remove netvm in use", func(db *DB) error { return db.RemoveDomain("sys-net") }, ErrInUse},
		{"remove dom0", func(db *DB) error { return db.RemoveDomain("dom0") }, ErrInvalid},
		{"remove unknown", func(db *DB) error { return db.RemoveDomain("nope") }, ErrNoSuchVM},
		{"fn error discards valid changes", func(db *DB) error {
			vm(db, "work").SetFeature("x", "1")
			db.SetGlobalProp("default_netvm", "sys-net")
			return errCustom
		}, errCustom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := h.Update(c.fn)
			wantErr(t, err, c.want)
			if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
				t.Fatal("pedos.xml changed")
			}
		})
	}

	// The same through the Host operations, which must also leave no files.
	hostCases := []struct {
		name string
		fn   func() error
		want error
	}{
		{"CreateVM bad label", func() error { return h.CreateVM("x", AppVM, VMOptions{Label: "pink"}) }, ErrInvalid},
		{"CreateVM no label", func() error { return h.CreateVM("x", AppVM, VMOptions{}) }, ErrInvalid},
		{"CreateVM bad prop", func() error {
			return h.CreateVM("x", AppVM, VMOptions{Label: "red", Props: map[string]string{"netvm": "work"}})
		}, ErrInvalid},
		{"CreateVM duplicate", func() error { return h.CreateVM("work", AppVM, VMOptions{Label: "red"}) }, ErrExists},
		{"CreateVM clone without root", func() error { return h.CreateVM("x", StandaloneVM, VMOptions{Label: "red", Template: "work"}) }, ErrInvalid},
		{"RemoveVM template in use", func() error { return h.RemoveVM("debian-12") }, ErrInUse},
		{"Start unknown", func() error { return h.Start("nope") }, ErrNoSuchVM},
		{"Shutdown halted", func() error { return h.Shutdown("work") }, ErrNotRunning},
		{"Resize shrink", func() error { return h.ResizeVolume("work", "private", 1<<20, false) }, ErrShrink},
		{"Resize unknown volume", func() error { return h.ResizeVolume("work", "swap", 1<<30, false) }, ErrNoSuchVolume},
		{"AddVolume standard name", func() error { return h.AddVolume("work", "private", 1<<20) }, ErrInvalid},
		{"SetFirewall bad", func() error {
			return h.SetFirewall("work", []byte(`<firewall version="2"><rules><rule/></rules></firewall>`))
		}, ErrInvalid},
	}
	for _, c := range hostCases {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, c.fn(), c.want)
			if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
				t.Fatal("pedos.xml changed")
			}
			if exists(h.path("appvms", "x")) || exists(h.path("vm-fs", "x")) {
				t.Fatal("files left behind")
			}
		})
	}
	if fw, _ := h.Firewall("work"); !bytes.Contains(fw, []byte("qubes-os.org")) {
		t.Error("firewall changed by a refused SetFirewall")
	}
}

func TestRemoveInUseNamesUsers(t *testing.T) {
	h := demoHost(t)
	err := h.RemoveVM("sys-firewall")
	wantErr(t, err, ErrInUse)
	for _, s := range []string{"global default_netvm", "global updatevm", "work (netvm)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not name %s", err, s)
		}
	}
}

func TestPropertyDefaults(t *testing.T) {
	h := demoHost(t)
	db := mustLoad(t, h)
	work, personal := mustDomain(t, db, "work"), mustDomain(t, db, "personal")
	tmpl, disp := mustDomain(t, db, "debian-12"), mustDomain(t, db, "disp123")
	check := func(d *Domain, prop, want string, wantDefault bool) {
		t.Helper()
		if v, def := d.Prop(prop); v != want || def != wantDefault {
			t.Errorf("%s.%s = %q (default %v), want %q (default %v)", d.Name(), prop, v, def, want, wantDefault)
		}
	}
	check(personal, "memory", "400", true)
	check(personal, "maxmem", "4000", true)
	check(personal, "vcpus", "2", true)
	check(work, "vcpus", "4", false)
	check(personal, "qrexec_timeout", "60", true)
	check(personal, "include_in_backups", "True", true)
	check(personal, "provides_network", "False", true)
	check(personal, "template_for_dispvms", "False", true)
	check(personal, "netvm", "sys-firewall", true)
	check(personal, "default_dispvm", "debian-12-dvm", true)
	check(personal, "kernel", "6.6.48-1.fc37", true)
	check(personal, "virt_mode", "pvh", true)
	check(personal, "label", "green", false)
	check(personal, "template", "debian-12", false)
	check(personal, "backup_timestamp", "", true)
	check(tmpl, "netvm", "", true)
	check(mustDomain(t, db, "sys-net"), "virt_mode", "hvm", true) // a PCI device
	check(mustDomain(t, db, "sys-net"), "netvm", "", false)
	check(disp, "default_dispvm", "debian-12-dvm", true)
	check(disp, "include_in_backups", "False", false)
	check(mustDomain(t, db, "dom0"), "label", "black", false)
	check(mustDomain(t, db, "dom0"), "include_in_backups", "True", true)

	// Template-based VMs inherit from the template; stored values are
	// normalised; a reset goes back to the default.
	if err := tmpl.SetProp("memory", "800"); err != nil {
		t.Fatal(err)
	}
	check(personal, "memory", "800", true)
	check(disp, "memory", "800", true)
	for in, want := range map[string]string{"yes": "True", "0": "False", "true": "True", "": "False"} {
		if err := personal.SetProp("debug", in); err != nil {
			t.Fatal(err)
		}
		if v, _ := personal.stored("debug"); v != want {
			t.Errorf("debug %q stored as %q", in, v)
		}
	}
	if err := personal.SetProp("label", "label-7"); err != nil {
		t.Fatal(err)
	}
	if v, _ := personal.stored("label"); v != "label-7" || personal.Label() != "purple" {
		t.Errorf("label stored %q", v)
	}
	if err := personal.SetProp("label", "orange"); err != nil {
		t.Fatal(err)
	}
	if v, _ := personal.stored("label"); v != "label-2" {
		t.Errorf("label stored %q", v)
	}
	if err := work.ResetProp("netvm"); err != nil {
		t.Fatal(err)
	}
	check(work, "netvm", "sys-firewall", true)
	if err := work.SetProp("netvm", ""); err != nil {
		t.Fatal(err)
	}
	check(work, "netvm", "", false)
	if err := db.SetGlobalProp("default_netvm", "sys-net"); err != nil {
		t.Fatal(err)
	}
	check(personal, "netvm", "sys-net", true)
	if err := db.ResetGlobalProp("default_netvm"); err != nil {
		t.Fatal(err)
	}
	check(personal, "netvm", "", true)
	if err := db.Validate(); err != nil {
		t.Fatal(err)
	}
	names := strings.Join(personal.PropNames(), " ")
	for _, p := range []string{"label", "template", "netvm", "memory", "maxmem", "include_in_backups", "debug", "uuid"} {
		if !strings.Contains(" "+names+" ", " "+p+" ") {
			t.Errorf("PropNames lacks %s: %s", p, names)
		}
	}
	if strings.Contains(names, "auto_cleanup") || strings.Contains(strings.Join(tmpl.PropNames(), " "), "template_for_dispvms") {
		t.Errorf("PropNames lists properties of other classes")
	}
}

func TestNewDomainQidsAndVolumes(t *testing.T) {
	h := newHost(t)
	err := h.Update(func(db *DB) error {
		for _, n := range []string{"t1", "s1", "a1"} {
			class := map[string]string{"t1": TemplateVM, "s1": StandaloneVM, "a1": AppVM}[n]
			d, err := db.NewDomain(n, class)
			if err != nil {
				return err
			}
			d.SetProp("label", "red")
			if class == AppVM {
				if err := d.SetProp("template", "t1"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db := mustLoad(t, h)
	if q := mustDomain(t, db, "a1").Qid(); q != 3 {
		t.Errorf("a1 qid %d", q)
	}
	root, _ := mustDomain(t, db, "a1").Volume("root")
	if root.Source != "vm-templates/t1/root" || !root.SnapOnStart || root.SaveOnStop || root.Size != DefaultRootSize {
		t.Errorf("AppVM root %+v", root)
	}
	if err := db.RemoveDomain("s1"); err != nil {
		t.Fatal(err)
	}
	d, err := db.NewDomain("n1", DispVM)
	if err != nil || d.Qid() != 2 {
		t.Fatalf("lowest free qid: %v %v", d.Qid(), err)
	}
	if u, _ := d.stored("uuid"); len(u) != 36 || u[14] != '4' {
		t.Errorf("uuid %q", u)
	}
}

func TestFeaturesTagsDevices(t *testing.T) {
	db, err := ParseDB(readFile(t, "testdata/qubes.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d := mustDomain(t, db, "sys-firewall")
	if err := d.SetFeature("b", ""); err != nil {
		t.Fatal(err)
	}
	d.SetFeature("a", "1")
	d.SetFeature("b", "2")
	if f := d.Features(); len(f) != 2 || f[0] != (Feature{"b", "2"}) || f[1] != (Feature{"a", "1"}) {
		t.Errorf("features keep their place: %v", f)
	}
	if !d.DeleteFeature("a") || d.DeleteFeature("a") {
		t.Error("DeleteFeature")
	}
	d.AddTag("x")
	d.AddTag("x")
	if tags := d.Tags(); len(tags) != 1 || !d.HasTag("x") || !d.RemoveTag("x") || d.HasTag("x") {
		t.Errorf("tags %v", tags)
	}
	if err := d.AssignDevice(Device{Class: "usb", Backend: "sys-usb", Port: "1-2", Options: []Feature{{"read-only", "True"}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.AssignDevice(Device{Class: "pci", Backend: "dom0", Port: "00_02.0", Mode: "required"}); err != nil {
		t.Fatal(err)
	}
	out := string(db.Marshal())
	if !strings.Contains(out, `<devices class="usb">
        <device backend-domain="sys-usb" id="1-2" mode="auto-attach" identity="*">
          <option name="read-only">True</option>
        </device>
      </devices>
      <devices class="pci">`) {
		t.Errorf("device XML:\n%s", out)
	}
	if err := db.RemoveDomain("sys-usb"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "sys-firewall (usb device 1-2 backend)") {
		t.Errorf("removing a device backend: %v", err)
	}
	if err := d.UnassignDevice("usb", "sys-usb", "9-9"); !errors.Is(err, ErrInvalid) {
		t.Error(err)
	}
}

func TestFirewallNotesDom0(t *testing.T) {
	h := demoHost(t)
	fw, err := h.Firewall("work")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseFirewall(fw)
	if err != nil || len(rules) != 5 || rules[0] != (FirewallRule{Action: "accept", Proto: "tcp", DstHost: "qubes-os.org", DstPorts: "443", Comment: "project site"}) {
		t.Fatalf("rules %+v %v", rules, err)
	}
	again, err := MarshalFirewall(rules)
	if err != nil || !bytes.Equal(again, fw) {
		t.Errorf("firewall round trip:\n%s", again)
	}
	for _, bad := range []FirewallRule{{Action: "allow"}, {Action: "accept", DstPorts: "80"}, {Action: "accept", Proto: "tcp", DstPorts: "0"},
		{Action: "accept", Proto: "udp", DstPorts: "1-70000"}, {Action: "drop", ICMPType: "8"}, {Action: "drop", SpecialTarget: "ntp"}} {
		if _, err := MarshalFirewall([]FirewallRule{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v accepted", bad)
		}
	}
	if fw, err := h.Firewall("personal"); fw != nil || err != nil {
		t.Errorf("no firewall: %q %v", fw, err)
	}
	if err := h.SetFirewall("work", nil); err != nil || exists(h.path("appvms/work", FirewallFile)) {
		t.Errorf("removing firewall: %v", err)
	}
	notes, err := h.Notes("personal")
	if err != nil || !strings.Contains(notes, "Café") {
		t.Errorf("notes %q %v", notes, err)
	}
	if err := h.SetNotes("debian-12", "template notes\n"); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.Notes("debian-12"); n != "template notes\n" || !exists(h.path("vm-templates/debian-12", NotesFile)) {
		t.Errorf("template notes %q", n)
	}
	if err := h.SetNotes("personal", "bad \x00"); !errors.Is(err, ErrInvalid) {
		t.Error(err)
	}
	if err := h.SetNotes("nope", "x"); !errors.Is(err, ErrNoSuchVM) {
		t.Error(err)
	}
	if err := h.SetDom0(Dom0{User: "alice", Home: "/home/alice"}); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.Dom0(); d != (Dom0{"alice", "/home/alice"}) {
		t.Error(d)
	}
	if err := h.SetDom0(Dom0{User: "alice", Home: "/home/../etc"}); !errors.Is(err, ErrInvalid) {
		t.Error(err)
	}
	if _, err := os.Stat(h.path(dom0File)); err != nil {
		t.Fatal(err)
	}
}

// A VM database from a backup cannot make parsing, copying or writing it
// blow up: nesting is bounded (a million levels once made Marshal's output
// quadratic in the depth and the process was killed for memory), and text
// split by many comments is joined in linear time.
func TestParseDBHostileShapes(t *testing.T) {
	wrap := func(inner string) []byte {
		return []byte(`<qubes><domains><domain id="domain-0" class="AdminVM">` + inner + `</domain></domains></qubes>`)
	}
	deep := 1 << 20
	start := time.Now()
	_, err := ParseDB(wrap(strings.Repeat("<a>", deep) + strings.Repeat("</a>", deep)))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nested more than 64 deep") {
		t.Fatalf("a million levels: %v", err)
	}
	// The deepest nesting accepted still round-trips.
	ok := maxTreeDepth - 3 // below qubes, domains, domain
	db, err := ParseDB(wrap(strings.Repeat("<a>", ok) + "x" + strings.Repeat("</a>", ok)))
	if err != nil {
		t.Fatalf("%d levels: %v", maxTreeDepth, err)
	}
	if again, err := ParseDB(db.Clone().Marshal()); err != nil || !bytes.Equal(again.Marshal(), db.Marshal()) {
		t.Fatalf("%d levels do not round-trip: %v", maxTreeDepth, err)
	}

	pieces := 500000
	db, err = ParseDB(wrap(`<properties><property name="kernelopts">` + strings.Repeat("ab<!---->", pieces) + `</property></properties>`))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("hostile shapes took %v", d)
	}
	d, err := db.Domain("dom0")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Prop("kernelopts"); len(v) != 2*pieces || !strings.HasPrefix(v, "abab") {
		t.Errorf("text joined wrongly: %d bytes", len(v))
	}
}

// A second AdminVM is reported as such, first, not as its consequences
// ("dom0 has qid 3, want 0", "two VMs called dom0").
func TestValidateTwoAdminVMs(t *testing.T) {
	h := demoHost(t)
	xml := readFile(t, h.path(DBFile))
	start := bytes.Index(xml, []byte(`<domain id="domain-0"`))
	end := start + bytes.Index(xml[start:], []byte("</domain>")) + len("</domain>")
	second := bytes.Replace(xml[start:end], []byte(`id="domain-0"`), []byte(`id="domain-3"`), 1)
	twice := bytes.Replace(xml, []byte("</domains>"), append(second, "</domains>"...), 1)
	_, err := ParseDB(twice)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v", err)
	}
	msg := err.Error()
	if first, _, _ := strings.Cut(msg, "\n"); first != "two AdminVM entries: <domain> #1 (dom0, qid 0) and <domain> #10 (dom0, qid 3); there is one dom0" {
		t.Errorf("first line %q of:\n%s", first, msg)
	}
	for _, consequence := range []string{"dom0 has qid 3", "two VMs named dom0", "two VMs with qid 3"} {
		if strings.Contains(msg, consequence) {
			t.Errorf("%q in:\n%s", consequence, msg)
		}
	}
}
