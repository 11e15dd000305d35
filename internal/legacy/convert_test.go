package legacy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"pedos.dev/backup/internal/host"
)

// An R3.2 qubes.xml written by hand after the R3.2 schema and the reference
// client's fixtures turns into a valid R4 database that the restore
// engine reads like a format 4 backup's.
func TestConvertR32(t *testing.T) {
	data, err := os.ReadFile("testdata/r32-qubes.xml")
	if err != nil {
		t.Fatal(err)
	}
	core2, err := parseCore2(data)
	if err != nil {
		t.Fatal(err)
	}
	xml, held, err := convert(core2, includeStored)
	if err != nil {
		t.Fatal(err)
	}
	db, err := host.ParseDB(xml)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Validate(); err != nil {
		t.Errorf("converted database is not valid: %v", err)
	}
	for name, want := range map[string]string{
		"default_template": "fedora-23", "default_netvm": "sys-firewall", "updatevm": "sys-firewall",
		"clockvm": "sys-net", "default_kernel": "4.4.14-11",
	} {
		if got, _ := db.GlobalProp(name); got != want {
			t.Errorf("global %s = %q, want %q", name, got, want)
		}
	}

	type vm struct {
		class, label, template string
		props                  map[string]string // stored properties; "-" means not stored
		features               map[string]string
	}
	for name, want := range map[string]vm{
		"dom0": {class: host.AdminVM, label: "black",
			features: map[string]string{"backup-content": "1", "backup-path": "dom0-home/user", "backup-size": "3641344"}},
		"fedora-23": {class: host.TemplateVM, label: "black",
			props:    map[string]string{"netvm": "", "kernel": "-", "kernelopts": "-", "maxmem": "-", "installed_by_rpm": "-", "mac": "-"},
			features: map[string]string{"qrexec": "1", "gui": "1", "service.meminfo-writer": "1", "backup-content": ""}},
		"sys-net": {class: host.AppVM, label: "red", template: "fedora-23",
			props:    map[string]string{"provides_network": "True", "netvm": "", "memory": "300", "kernelopts": "iommu=soft swiotlb=8192"},
			features: map[string]string{"service.ntpd": "", "service.meminfo-writer": ""}},
		"sys-firewall": {class: host.AppVM, label: "green", template: "fedora-23",
			props: map[string]string{"provides_network": "True", "netvm": "sys-net", "default_dispvm": "disp-sys-net"}},
		"win7": {class: host.TemplateVM, label: "gray",
			props:    map[string]string{"virt_mode": "hvm", "kernel": "", "memory": "2048"},
			features: map[string]string{"linux-stubdom": "", "backup-path": "vm4/", "backup-size": "10737418240"}},
		"work": {class: host.AppVM, label: "blue", template: "fedora-23",
			props:    map[string]string{"netvm": "-", "default_dispvm": "-", "kernel": "-", "memory": "-", "vcpus": "-"},
			features: map[string]string{"cups": "1", "check-updates": "", "backup-path": "vm5/", "backup-size": "2147483648"}},
		"banking": {class: host.AppVM, label: "green", template: "fedora-23",
			props: map[string]string{"netvm": "", "include_in_backups": "False", "qrexec_timeout": "120", "vcpus": "4",
				"memory": "800", "maxmem": "8000", "default_user": "bob", "debug": "True", "autostart": "True",
				"mac": "00:16:3e:5e:6c:06", "kernel": "4.1.13-9", "kernelopts": "", "default_dispvm": "disp-sys-net"},
			features: map[string]string{"backup-path": "vm6/"}},
		"fedora-23-dvm": {class: host.AppVM, label: "gray", template: "fedora-23",
			features: map[string]string{"internal": "1", "backup-content": ""}},
		"standalone": {class: host.StandaloneVM, label: "purple",
			props:    map[string]string{"kernel": ""},
			features: map[string]string{"qrexec": "1", "gui": "1", "backup-path": "vm8/"}},
		"winapp": {class: host.AppVM, label: "orange", template: "win7",
			props:    map[string]string{"virt_mode": "hvm", "kernel": ""},
			features: map[string]string{"linux-stubdom": "", "backup-path": "vm9/"}},
		"linuxhvm": {class: host.StandaloneVM, label: "yellow",
			props:    map[string]string{"virt_mode": "hvm", "netvm": "", "default_dispvm": "disp-no-netvm"},
			features: map[string]string{"qrexec": "-", "backup-content": ""}},
		"disp-no-netvm": {class: host.AppVM, label: "red", template: "fedora-23",
			props: map[string]string{"netvm": "", "template_for_dispvms": "True"}},
		"disp-sys-net": {class: host.AppVM, label: "red", template: "fedora-23",
			props: map[string]string{"netvm": "sys-net", "template_for_dispvms": "True"}},
	} {
		d, err := db.Domain(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.Class() != want.class || d.Label() != want.label || d.Template() != want.template {
			t.Errorf("%s: class %s, label %s, template %q; want %s, %s, %q", name, d.Class(), d.Label(), d.Template(), want.class, want.label, want.template)
		}
		stored := map[string]string{}
		for _, p := range d.Props() {
			stored[p.Name] = p.Value
		}
		for p, v := range want.props {
			got, ok := stored[p]
			if v == "-" && ok || v != "-" && (!ok || got != v) {
				t.Errorf("%s: property %s = %q (stored %v), want %q", name, p, got, ok, v)
			}
		}
		for f, v := range want.features {
			got, ok := d.Feature(f)
			if v == "-" && ok || v != "-" && (!ok || got != v) {
				t.Errorf("%s: feature %s = %q (set %v), want %q", name, f, got, ok, v)
			}
		}
	}
	if _, err := db.Domain("disp50"); err == nil {
		t.Error("the disposable VM disp50 was converted")
	}
	devs, _ := db.Domain("sys-net")
	var ports []string
	for _, dev := range devs.Devices() {
		if dev.Class != "pci" || dev.Backend != "dom0" || dev.Mode != "required" ||
			!slices.Equal(dev.Options, []host.Feature{{Name: "no-strict-reset", Value: "True"}}) {
			t.Errorf("sys-net device %+v", dev)
		}
		ports = append(ports, dev.Port)
	}
	if !slices.Equal(ports, []string{"00_19.0", "03_00.0"}) {
		t.Errorf("sys-net PCI ports %q", ports)
	}
	var paths []string
	for _, b := range held {
		paths = append(paths, b.path)
	}
	if want := []string{"dom0-home/user", "vm4/", "vm5/", "vm6/", "vm8/", "vm9/"}; !slices.Equal(paths, want) {
		t.Errorf("backed-up paths %q, want %q", paths, want)
	}
}

// Backups of R2 and older have no dom0 in qubes.xml: one is made up, so the
// database has its AdminVM.
func TestConvertMakesUpDom0(t *testing.T) {
	core2, err := parseCore2([]byte(`<QubesVmCollection default_template="1" default_netvm="none">
  <QubesTemplateVm qid="1" name="fedora-20" label="black" template_qid="none"/>
</QubesVmCollection>`))
	if err != nil {
		t.Fatal(err)
	}
	xml, _, err := convert(core2, includeStored)
	if err != nil {
		t.Fatal(err)
	}
	db, err := host.ParseDB(xml)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := db.Domain("dom0"); err != nil || d.Class() != host.AdminVM || d.Label() != "black" {
		t.Errorf("dom0: %v", err)
	}
	if err := db.Validate(); err != nil {
		t.Error(err)
	}
}

func TestCore2Refused(t *testing.T) {
	for _, tc := range []struct{ name, xml string }{
		{"not core2", `<qubes/>`},
		{"no qid", `<QubesVmCollection><QubesAppVm name="a"/></QubesVmCollection>`},
		{"no name", `<QubesVmCollection><QubesAppVm qid="3"/></QubesVmCollection>`},
		{"same qid", `<QubesVmCollection><QubesAppVm qid="3" name="a"/><QubesAppVm qid="3" name="b"/></QubesVmCollection>`},
		{"same name", `<QubesVmCollection><QubesAppVm qid="3" name="a"/><QubesAppVm qid="4" name="a"/></QubesVmCollection>`},
		{"broken XML", `<QubesVmCollection><QubesAppVm`},
		{"empty", ``},
	} {
		if _, err := parseCore2([]byte(tc.xml)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, attrs string }{
		{"services", `services="{'a': os.system('x')}"`},
		{"pcidevs", `pcidevs="['00:19.0' '01:00.0']"`},
		{"backup_path", `backup_content="True" backup_path="../etc"`},
		{"no backup_path", `backup_content="True"`},
	} {
		core2, err := parseCore2([]byte(`<QubesVmCollection><QubesAppVm qid="3" name="a" template_qid="none" ` + tc.attrs + `/></QubesVmCollection>`))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := convert(core2, includeStored); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "qubes.xml") {
			t.Errorf("%s: %v, want ErrCorrupt about qubes.xml", tc.name, err)
		}
	}
}

func TestPyLiterals(t *testing.T) {
	items, err := parsePyDict(`{ 'meminfo-writer': True, "ntpd": False, 'x': None, 'n': -3, 's': 'a\'b', }`)
	want := []pyItem{{"meminfo-writer", true}, {"ntpd", false}, {"x", nil}, {"n", int64(-3)}, {"s", "a'b"}}
	if err != nil || !slices.Equal(items, want) {
		t.Errorf("parsePyDict = %v, %v; want %v", items, err, want)
	}
	if items, err := parsePyDict(`{}`); err != nil || len(items) != 0 {
		t.Errorf("empty dict: %v, %v", items, err)
	}
	list, err := parsePyList(`['02:00.0', "03:00.0"]`)
	if err != nil || !slices.Equal(list, []string{"02:00.0", "03:00.0"}) {
		t.Errorf("parsePyList = %q, %v", list, err)
	}
	for _, bad := range []string{`{'a' True}`, `{'a': True`, `{1: 2}`, `{'a': x}`, `{'a': 'b} x`, `{'a': '\x41'}`} {
		if _, err := parsePyDict(bad); err == nil {
			t.Errorf("parsePyDict(%q) accepted", bad)
		}
	}
	for _, bad := range []string{`[1]`, `['a'`, `['a'] x`, `('a',)`} {
		if _, err := parsePyList(bad); err == nil {
			t.Errorf("parsePyList(%q) accepted", bad)
		}
	}
}
