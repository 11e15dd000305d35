package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// resolver is qrexec.VMResolver, restated so that this package need not
// import qrexec.
type resolver interface {
	FS(vm string) (string, error)
	Running(vm string) bool
}

var _ resolver = (*Host)(nil)

func TestDemo(t *testing.T) {
	start := time.Now()
	h := demoHost(t)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Demo took %v", d)
	}
	db := mustLoad(t, h)
	if err := db.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		class, label string
		images       []string
	}{
		"dom0":          {AdminVM, "black", nil},
		"debian-12":     {TemplateVM, "black", []string{"root", "private"}},
		"sys-net":       {AppVM, "red", []string{"private"}},
		"sys-firewall":  {AppVM, "green", []string{"private"}},
		"debian-12-dvm": {AppVM, "red", []string{"private"}},
		"work":          {AppVM, "blue", []string{"private"}},
		"personal":      {AppVM, "green", []string{"private"}},
		"vault":         {StandaloneVM, "black", []string{"root", "private"}},
		"disp123":       {DispVM, "red", nil},
	}
	if len(db.Domains()) != len(want) {
		t.Errorf("%d domains", len(db.Domains()))
	}
	for name, w := range want {
		d := mustDomain(t, db, name)
		if d.Class() != w.class || d.Label() != w.label {
			t.Errorf("%s: %s %s", name, d.Class(), d.Label())
		}
		if name == "dom0" {
			continue
		}
		infos, err := h.Volumes(name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range infos {
			if v.Path == "" {
				continue
			}
			got = append(got, v.Name)
			if v.Nominal != DemoImageSize || v.Usage == 0 || v.Usage > 8<<20 {
				t.Errorf("%s %s: nominal %d, allocated %d", name, v.Name, v.Nominal, v.Usage)
			}
		}
		if strings.Join(got, ",") != strings.Join(w.images, ",") {
			t.Errorf("%s images %v, want %v", name, got, w.images)
		}
	}
	for _, g := range demoGlobals {
		if v, _ := db.GlobalProp(g[0]); v != g[1] {
			t.Errorf("global %s = %q", g[0], v)
		}
	}
	work, personal := mustDomain(t, db, "work"), mustDomain(t, db, "personal")
	if !work.HasTag("backup-me") || !personal.HasTag("backup-me") {
		t.Error("tags")
	}
	if v, _ := work.Feature("service.cups"); v != "1" {
		t.Error("work feature")
	}
	if work.NetVM() != "sys-firewall" || personal.NetVM() != "sys-firewall" || mustDomain(t, db, "vault").NetVM() != "" {
		t.Error("netvms")
	}
	if !mustDomain(t, db, "sys-net").PropBool("provides_network") || !mustDomain(t, db, "debian-12-dvm").PropBool("template_for_dispvms") {
		t.Error("service VMs")
	}

	// Recognisable data in the images; vault's root ends with data.
	if got := readPathAt(t, h.path("vm-templates/debian-12/root.img"), 0, 24); got != "/etc/hostname debian-12\n" {
		t.Errorf("template root starts %q", got)
	}
	if got := readPathAt(t, h.path("appvms/vault/root.img"), DemoImageSize-512<<10, 20); got != "/etc/hostname vault\n" {
		t.Errorf("vault root tail region starts %q", got)
	}
	if got := readPathAt(t, h.path("appvms/work/private.img"), 512<<20, 40); !strings.Contains(got, "belongs to work") {
		t.Errorf("work private %q", got)
	}
	if fw, err := h.Firewall("work"); err != nil || !bytes.Contains(fw, []byte(`<property name="action">drop</property>`)) {
		t.Errorf("work firewall %v", err)
	}
	if n, _ := h.Notes("personal"); !strings.HasPrefix(n, "Personal qube") {
		t.Errorf("notes %q", n)
	}

	// The dom0 home, under the root since none was given.
	dom0, err := h.Dom0()
	if err != nil || dom0.User != "user" || dom0.Home != h.path("home", "user") {
		t.Fatalf("dom0 %+v %v", dom0, err)
	}
	for _, f := range []string{".bashrc", "Documents/notes/todo.md", "Pictures/photo of a cat.jpg", "My Files/budget 2024 (v2).csv"} {
		if fi, err := os.Stat(filepath.Join(dom0.Home, f)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("home file %s: %v", f, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dom0.Home, "current report")); err != nil || target != "Documents/report.txt" {
		t.Errorf("symlink %q %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dom0.Home, "Downloads")); err != nil || !fi.IsDir() {
		t.Error("empty dir")
	}

	// VM filesystems for the qrexec services.
	dir, err := h.FS("work")
	if err != nil || dir != h.path("vm-fs", "work") || !exists(filepath.Join(dir, "home", "user")) {
		t.Errorf("FS(work) = %q, %v", dir, err)
	}
	if _, err := h.FS("nope"); !errors.Is(err, ErrNoSuchVM) {
		t.Error(err)
	}
	if _, err := h.FS("dom0"); err == nil {
		t.Error("dom0 has no vm-fs")
	}
	if _, err := h.VMFSPath("../etc"); !errors.Is(err, ErrInvalid) {
		t.Error("VMFSPath accepted a path")
	}
	if h.Running("work") {
		t.Error("demo VMs start halted")
	}

	// Deterministic content: a second demo has the same data; a second
	// Demo in the same root is refused.
	h2 := demoHost(t)
	a := readPathAt(t, h.path("appvms/personal/private.img"), 0, 256<<10)
	b := readPathAt(t, h2.path("appvms/personal/private.img"), 0, 256<<10)
	if a != b {
		t.Error("demo data differs between runs")
	}
	_, err = Demo(h.Root(), InitOptions{User: "user"})
	wantErr(t, err, ErrExists)
}
