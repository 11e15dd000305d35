package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestAddVMWarnsAndGoesOn(t *testing.T) {
	db := mustLoad(t, demoHost(t))
	spec := VMSpec{Name: "restored", Class: AppVM, Label: "mauve", Template: "debian-12",
		Props:    []Property{{"memory", "800"}, {"vcpus", "many"}, {"kernel", "a/b"}, {"qid", "99"}, {"installed_by_rpm", "True"}},
		Features: []Feature{{"service.cups", "1"}}, Tags: []string{"fav"},
		Devices: []Device{{Class: "usb", Backend: "sys-usb", Port: "2-1"}, {Class: "pci", Backend: "sys-net", Port: "00_1f.6", Mode: "required"}},
		Volumes: []Volume{{Name: "private", Pool: "lvm", VID: "qubes_dom0/vm-x-private", Size: 5 << 30, SaveOnStop: true, RevisionsToKeep: 2},
			{Name: "data", Pool: "lvm", Size: 1 << 20, SaveOnStop: true, RW: true},
			{Name: "kernel", Pool: "linux-kernel", VID: "6.1"}}}
	d, warns, err := db.AddVM(spec)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(warns, "\n")
	for _, w := range []string{"mauve", "vcpus", "kernel", "sys-usb"} {
		if !strings.Contains(text, w) {
			t.Errorf("no warning about %s in:\n%s", w, text)
		}
	}
	if d.Label() != "red" || d.Qid() == 99 || d.PropBool("installed_by_rpm") {
		t.Errorf("label %s qid %d installed_by_rpm %v", d.Label(), d.Qid(), d.PropBool("installed_by_rpm"))
	}
	if v, _ := d.Prop("memory"); v != "800" {
		t.Errorf("memory %s", v)
	}
	if devs := d.Devices(); len(devs) != 1 || devs[0].Backend != "sys-net" {
		t.Errorf("devices %+v", devs)
	}
	priv, _ := d.Volume("private")
	data, err := d.Volume("data")
	// revisions_to_keep 2 from an LVM pool is at most 1 in a file pool.
	if err != nil || priv.Pool != PoolName || priv.VID != "appvms/restored/private" || priv.Size != 5<<30 || priv.RevisionsToKeep != 1 ||
		data.VID != "appvms/restored/data" || !data.SaveOnStop {
		t.Errorf("volumes %+v %+v %v", priv, data, err)
	}
	if _, err := d.Volume("kernel"); err == nil {
		t.Error("kernel volume of another pool kept")
	}
	if got := SavedVolumes(AppVM, spec.Volumes); !slices.Equal(got, []string{"private", "data"}) {
		t.Errorf("saved volumes %v", got)
	}
	if err := db.Validate(); err != nil {
		t.Fatal(err)
	}
	// The VM itself cannot exist: nothing changes.
	before := db.Marshal()
	for _, bad := range []VMSpec{
		{Name: "restored", Class: AppVM, Label: "red", Template: "debian-12"},
		{Name: "x", Class: AppVM, Label: "red", Template: "nope"},
		{Name: "x", Class: "NetVM", Label: "red"},
	} {
		if _, _, err := db.AddVM(bad); err == nil {
			t.Errorf("%+v added", bad)
		}
	}
	if !bytes.Equal(db.Marshal(), before) {
		t.Error("a failed AddVM changed the database")
	}
}

func TestStagedVMCommit(t *testing.T) {
	h := demoHost(t)
	s, err := h.StageVM(StandaloneVM, "")
	if err != nil {
		t.Fatal(err)
	}
	sw, f, err := s.CreateImage("private")
	if err != nil {
		t.Fatal(err)
	}
	content := append(make([]byte, 1<<20), []byte("data at 1 MiB")...)
	if _, err := sw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.SetFirewall([]byte("<firewall")); err == nil {
		t.Error("bad firewall staged")
	}
	if err := s.SetNotes("notes\n"); err != nil {
		t.Fatal(err)
	}
	// Not there until Commit.
	if _, err := mustLoad(t, h).Domain("box"); err == nil {
		t.Fatal("VM exists before Commit")
	}
	also := false
	warns, err := s.Commit(VMSpec{Name: "box", Class: StandaloneVM, Label: "green"}, func(db *DB) error {
		also = true
		return mustDomain(t, db, "work").SetProp("memory", "512")
	})
	if err != nil || len(warns) > 0 || !also {
		t.Fatal(err, warns, also)
	}
	info, err := h.VolumeInfo("box", "private")
	if err != nil || info.Size != int64(len(content)) || !bytes.Equal(readFile(t, info.Path), content) {
		t.Fatalf("%+v %v", info, err)
	}
	if info.Usage >= int64(len(content)) {
		t.Errorf("image not sparse: %d bytes used", info.Usage)
	}
	root, err := h.VolumeInfo("box", "root")
	if err != nil || root.Nominal != DefaultRootSize {
		t.Errorf("root without an image in the backup: %+v %v", root, err)
	}
	if n, _ := h.Notes("box"); n != "notes\n" {
		t.Errorf("notes %q", n)
	}
	if v, _ := mustDomain(t, mustLoad(t, h), "work").Prop("memory"); v != "512" {
		t.Errorf("also not applied: %s", v)
	}
	if left, _ := filepath.Glob(filepath.Join(h.Root(), "appvms", stagingPrefix+"*")); len(left) > 0 {
		t.Errorf("staging left: %v", left)
	}
	s.Abort() // after Commit: nothing happens
	if _, err := h.VolumeInfo("box", "private"); err != nil {
		t.Fatal(err)
	}
}

func TestStagedVMCommitFails(t *testing.T) {
	h := demoHost(t)
	xml := readFile(t, filepath.Join(h.Root(), DBFile))
	s, err := h.StageVM(AppVM, "")
	if err != nil {
		t.Fatal(err)
	}
	// A taken name, an also that fails, a staged image of no volume.
	for _, c := range []struct {
		spec VMSpec
		also func(*DB) error
	}{
		{VMSpec{Name: "work", Class: AppVM, Label: "red", Template: "debian-12"}, nil},
		{VMSpec{Name: "new", Class: AppVM, Label: "red", Template: "debian-12"}, func(*DB) error { return errors.New("no") }},
	} {
		if _, err := s.Commit(c.spec, c.also); err == nil {
			t.Errorf("%+v committed", c.spec)
		}
	}
	sw, f, _ := s.CreateImage("root") // an AppVM's root has no image
	sw.Close()
	f.Close()
	if _, err := s.Commit(VMSpec{Name: "new", Class: AppVM, Label: "red", Template: "debian-12"}, nil); err == nil {
		t.Error("an AppVM root image committed")
	}
	if !bytes.Equal(readFile(t, filepath.Join(h.Root(), DBFile)), xml) {
		t.Error("pedos.xml changed")
	}
	if _, err := os.Stat(filepath.Join(h.Root(), "appvms", "new")); err == nil {
		t.Error("files moved in")
	}
	s.Abort()
	if left, _ := filepath.Glob(filepath.Join(h.Root(), "appvms", stagingPrefix+"*")); len(left) > 0 {
		t.Errorf("Abort left %v", left)
	}
}

func TestCleanStaging(t *testing.T) {
	h := newHost(t)
	live, err := h.StageVM(TemplateVM, "")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	dead, err := h.StageVM(AppVM, "")
	if err != nil {
		t.Fatal(err)
	}
	// A restore that died: its lock is released, its directory stays.
	syscall.Flock(int(dead.lock.Fd()), syscall.LOCK_UN)
	if got := h.CleanStaging(); len(got) != 1 || got[0] != dead.dir {
		t.Errorf("removed %q, want %s", got, dead.dir)
	}
	if _, err := os.Stat(dead.dir); err == nil {
		t.Error("dead staging kept")
	}
	if _, err := os.Stat(live.dir); err != nil {
		t.Error("live staging removed")
	}
}

// An image adopted from scratch space must be a regular file of its own:
// a hard link (two volumes of one template tree sharing a file) is refused.
func TestAdoptImageRefusesLinks(t *testing.T) {
	h := newHost(t)
	s, err := h.StageVM(TemplateVM, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	dir, err := s.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root.img")
	if err := os.WriteFile(root, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(root, filepath.Join(dir, "private.img")); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptImage("root", root); !errors.Is(err, ErrInvalid) {
		t.Fatalf("hard-linked image adopted: %v", err)
	}
	os.Remove(filepath.Join(dir, "private.img"))
	if err := s.AdoptImage("root", root); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptImage("root", root); err == nil {
		t.Error("a second image adopted for root")
	}
}
