package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/testutil"
)

// hostWithPool is a host with a template tpl in the root pool and a second
// file pool disk2 in another directory, returned.
func hostWithPool(t *testing.T) (*Host, string) {
	t.Helper()
	h := newHost(t)
	if err := h.CreateVM("tpl", TemplateVM, VMOptions{Label: "black"}); err != nil {
		t.Fatal(err)
	}
	disk2 := filepath.Join(t.TempDir(), "disk2")
	if err := h.AddPool("disk2", "file", map[string]string{"dir_path": disk2}); err != nil {
		t.Fatal(err)
	}
	return h, disk2
}

// A VM in a second pool keeps its images there, laid out as in the root
// pool, and its other files under the root; every volume operation
// follows its images, and removing it removes them.
func TestVMInSecondPool(t *testing.T) {
	h, disk2 := hostWithPool(t)
	for _, sub := range []string{"appvms", "vm-templates"} {
		if fi, err := os.Stat(filepath.Join(disk2, sub)); err != nil || !fi.IsDir() {
			t.Fatalf("pool directory %s not made: %v", sub, err)
		}
	}
	if err := h.CreateVM("app", AppVM, VMOptions{Label: "red", Template: "tpl", Pool: "disk2"}); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateVM("tpl2", TemplateVM, VMOptions{Label: "black", Template: "tpl", Pool: "disk2"}); err != nil {
		t.Fatal(err)
	}
	d := mustDomain(t, mustLoad(t, h), "app")
	for _, v := range d.Volumes() {
		want := "disk2"
		if v.Name == "root" { // a snapshot stays with its origin
			want = PoolName
		}
		if v.Pool != want {
			t.Errorf("volume %s in pool %s, want %s", v.Name, v.Pool, want)
		}
	}
	priv := filepath.Join(disk2, "appvms", "app", "private.img")
	info, err := h.VolumeInfo("app", "private")
	if err != nil || info.Path != priv {
		t.Fatalf("%+v %v", info, err)
	}
	if info, err := h.VolumeInfo("tpl2", "root"); err != nil || info.Path != filepath.Join(disk2, "vm-templates", "tpl2", "root.img") {
		t.Fatalf("template root: %+v %v", info, err)
	}
	if exists(h.path("appvms", "app", "private.img")) {
		t.Error("an image in the root pool too")
	}

	content := append(bytes.Repeat([]byte{0}, 8192), []byte("second pool")...)
	if _, err := h.ImportVolume("app", "private", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, priv), content) {
		t.Error("import did not reach the pool's image")
	}
	if err := h.AddVolume("app", "data", 1<<20); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(disk2, "appvms", "app", "data.img")) {
		t.Error("a custom volume not beside the VM's private volume")
	}
	if err := h.Start("app"); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(disk2, "appvms", "app", "private-dirty.img")) {
		t.Error("the working copy is not beside the image")
	}
	if err := h.Shutdown("app"); err != nil {
		t.Fatal(err)
	}
	if err := h.SetNotes("app", "in disk2\n"); err != nil {
		t.Fatal(err)
	}
	if !exists(h.path("appvms", "app", NotesFile)) {
		t.Error("notes not in the VM's directory under the root")
	}

	if err := h.RemoveVM("app"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(disk2, "appvms", "app"), h.path("appvms", "app"), h.path(vmFSDir, "app")} {
		if exists(p) {
			t.Errorf("%s left", p)
		}
	}
	if !exists(filepath.Join(disk2, "vm-templates", "tpl2", "root.img")) {
		t.Error("another VM's image removed")
	}
}

// A VM cannot be made in a pool PedOS cannot keep images in, nor over
// files left in a pool; nothing is left behind.
func TestCreateVMRefusedPools(t *testing.T) {
	h, disk2 := hostWithPool(t)
	if err := h.Update(func(db *DB) error {
		ps := db.root.child("pools")
		ps.Kids = append(ps.Kids, elem("pool", "name", "lvm", "driver", "lvm_thin", "volume_group", "vg", "thin_pool", "pool"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	orig := readFile(t, h.path(DBFile))
	err := h.CreateVM("app", AppVM, VMOptions{Label: "red", Template: "tpl", Pool: "lvm"})
	if !errors.Is(err, ErrPoolDriver) || !strings.Contains(err.Error(), "pool lvm has driver lvm_thin") {
		t.Errorf("lvm pool: %v", err)
	}
	if err := h.CreateVM("app", AppVM, VMOptions{Label: "red", Template: "tpl", Pool: "nope"}); !errors.Is(err, ErrNoSuchPool) {
		t.Errorf("unknown pool: %v", err)
	}
	// The global default for private volumes is the lvm pool.
	if err := h.Update(func(db *DB) error { return db.SetGlobalProp("default_pool_private", "lvm") }); err != nil {
		t.Fatal(err)
	}
	err = h.CreateVM("app", AppVM, VMOptions{Label: "red", Template: "tpl"})
	if !errors.Is(err, ErrPoolDriver) || !strings.Contains(err.Error(), "VM app volume private: pool lvm has driver lvm_thin") {
		t.Errorf("default pool lvm: %v", err)
	}
	if err := h.Update(func(db *DB) error { return db.ResetGlobalProp("default_pool_private") }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
		t.Error("pedos.xml changed")
	}
	// An image left in the pool by an earlier VM is not overwritten.
	left := filepath.Join(disk2, "appvms", "app")
	os.MkdirAll(left, 0o755)
	os.WriteFile(filepath.Join(left, "private.img"), []byte("old data"), 0o644)
	if err := h.CreateVM("app", AppVM, VMOptions{Label: "red", Template: "tpl", Pool: "disk2"}); !errors.Is(err, ErrExists) {
		t.Errorf("over an old image: %v", err)
	}
	if string(readFile(t, filepath.Join(left, "private.img"))) != "old data" || exists(h.path("appvms", "app")) {
		t.Error("old image changed, or the VM's directory left")
	}
	if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
		t.Error("pedos.xml changed")
	}
}

func TestAddAndRemovePool(t *testing.T) {
	h, disk2 := hostWithPool(t)
	p, err := mustLoad(t, h).Pool("disk2")
	if err != nil || p.Driver != "file" || p.DirPath != disk2 || p.RevisionsToKeep != 1 {
		t.Fatalf("%+v %v", p, err)
	}
	if got := mustLoad(t, h).root.child("pools").keyed("pool", "name", "disk2").Attrs; len(got) != 4 ||
		got[0].Name.Local != "name" || got[1].Name.Local != "dir_path" || got[2].Name.Local != "driver" || got[3].Name.Local != "revisions_to_keep" {
		t.Errorf("attributes not in Qubes' order: %v", got)
	}
	orig := readFile(t, h.path(DBFile))
	other := t.TempDir()
	for _, c := range []struct {
		name, driver string
		opts         map[string]string
		want         string
	}{
		{"disk2", "file", map[string]string{"dir_path": other}, "pool disk2 already exists"},
		{"bad name", "file", map[string]string{"dir_path": other}, `invalid pool name "bad name"`},
		{"lvm", "lvm_thin", map[string]string{"volume_group": "vg"}, `PedOS cannot keep volumes in driver "lvm_thin"`},
		{"d3", "file", nil, "the option dir_path is required"},
		{"d3", "file", map[string]string{"dir_path": "rel/dir"}, `dir_path "rel/dir" must be an absolute path below /`},
		{"d3", "file", map[string]string{"dir_path": "/"}, "must be an absolute path below /"},
		{"d3", "file", map[string]string{"dir_path": other, "thin_pool": "x"}, `driver file has no option "thin_pool" (its options: dir_path, revisions_to_keep)`},
		{"d3", "file", map[string]string{"dir_path": other, "revisions_to_keep": "2"}, `revisions_to_keep "2" must be a number from 0 to 1`},
		{"d3", "file", map[string]string{"dir_path": disk2 + "/"}, "pool disk2 already keeps its volumes in " + disk2},
		{"d3", "file", map[string]string{"dir_path": h.Root()}, "pool varlibpedos already keeps its volumes in"},
		{"d3", "file", map[string]string{"dir_path": h.path("appvms", "tpl")}, "lie within each other"},
		{"d3", "file", map[string]string{"dir_path": filepath.Join(disk2, "vm-templates", "x")}, "the VM directories of pool disk2"},
	} {
		err := h.AddPool(c.name, c.driver, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s %v: error %v, want %q", c.name, c.driver, c.opts, err, c.want)
		}
	}
	if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
		t.Error("a refused AddPool changed pedos.xml")
	}

	// No change can make a database that reading refuses: a pool moved
	// into a VM's directory under the root.
	err = h.Update(func(db *DB) error {
		db.root.child("pools").keyed("pool", "name", "disk2").setAttr("dir_path", h.path("vm-templates", "tpl"))
		_, _, err := db.addVM("app", AppVM, VMOptions{Label: "red", Template: "tpl", Pool: "disk2"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "in the directory of VM tpl") {
		t.Errorf("saved: %v", err)
	}
	if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
		t.Error("pedos.xml changed")
	}

	// Removing: refused while a VM has a volume there or it is a default.
	if err := h.CreateVM("app", AppVM, VMOptions{Label: "red", Template: "tpl", Pool: "disk2"}); err != nil {
		t.Fatal(err)
	}
	orig = readFile(t, h.path(DBFile))
	err = h.RemovePool("disk2")
	if !errors.Is(err, ErrInUse) || err.Error() != "pool disk2 holds volumes of app (private, volatile)" {
		t.Errorf("in use: %v", err)
	}
	err = h.RemovePool(PoolName)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "tpl (root, private, volatile)") {
		t.Errorf("root pool: %v", err)
	}
	if err := h.RemovePool("nope"); !errors.Is(err, ErrNoSuchPool) {
		t.Errorf("unknown: %v", err)
	}
	if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
		t.Error("a refused RemovePool changed pedos.xml")
	}
	if err := h.RemoveVM("app"); err != nil {
		t.Fatal(err)
	}
	if err := h.Update(func(db *DB) error { return db.SetGlobalProp("default_pool_volatile", "disk2") }); err != nil {
		t.Fatal(err)
	}
	if err := h.RemovePool("disk2"); !errors.Is(err, ErrInUse) || err.Error() != "pool disk2 is the global default_pool_volatile" {
		t.Errorf("default_pool_volatile: %v", err)
	}
	if err := h.Update(func(db *DB) error { return db.ResetGlobalProp("default_pool_volatile") }); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(disk2, "keep-me"), []byte("x"), 0o644)
	if err := h.RemovePool("disk2"); err != nil {
		t.Fatal(err)
	}
	if _, err := mustLoad(t, h).Pool("disk2"); !errors.Is(err, ErrNoSuchPool) {
		t.Errorf("still there: %v", err)
	}
	if !exists(filepath.Join(disk2, "keep-me")) {
		t.Error("the pool's files were removed")
	}
}

// default_pool, when not set, is the first file pool: what a database
// written by Qubes with an LVM pool first and no default_pool means for
// PedOS.
func TestDefaultPool(t *testing.T) {
	h := newHost(t)
	if err := h.Update(func(db *DB) error {
		if err := db.ResetGlobalProp("default_pool"); err != nil {
			return err
		}
		ps := db.root.child("pools")
		ps.insert(0, elem("pool", "name", "lvm", "driver", "lvm_thin"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db := mustLoad(t, h)
	if v, isDefault := db.GlobalProp("default_pool"); v != PoolName || !isDefault {
		t.Errorf("default_pool %s %v", v, isDefault)
	}
	if p, err := db.FilePool(""); err != nil || p.Name != PoolName {
		t.Errorf("%+v %v", p, err)
	}
	if err := h.RemovePool(PoolName); !errors.Is(err, ErrInUse) || err.Error() != "pool varlibpedos is the global default_pool (by default)" {
		t.Errorf("remove the default pool: %v", err)
	}
}

// A database written by Qubes: VMs in the file pool varlibqubes, whose
// dir_path is not the host root, and in an LVM pool. The file pool's
// images are used where its dir_path says; a VM in the LVM pool is an
// error naming the pool and driver when touched, and only then.
func TestReferencePools(t *testing.T) {
	h := newHost(t)
	qubesDir := t.TempDir()
	if err := h.Update(func(db *DB) error {
		ps := db.root.child("pools")
		ps.Kids = append(ps.Kids,
			elem("pool", "name", "varlibqubes", "dir_path", qubesDir+"/", "driver", "file", "revisions_to_keep", "1", "ephemeral_volatile", "False"),
			elem("pool", "name", "lvm", "driver", "lvm_thin", "volume_group", "qubes_dom0", "thin_pool", "vm-pool"))
		if err := db.SetGlobalProp("default_pool", "varlibqubes"); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateVM("filevm", StandaloneVM, VMOptions{Label: "red"}); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(qubesDir, "appvms", "filevm", "root.img")) {
		t.Fatal("not in the default pool's dir_path")
	}
	if err := h.CreateVM("lvmvm", StandaloneVM, VMOptions{Label: "red"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Update(func(db *DB) error {
		d := mustDomain(t, db, "lvmvm")
		for _, v := range d.Volumes() {
			v.Pool, v.VID = "lvm", "qubes_dom0/vm-lvmvm-"+v.Name
			d.setVolume(v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if info, err := h.VolumeInfo("filevm", "private"); err != nil || info.Path != filepath.Join(qubesDir, "appvms", "filevm", "private.img") {
		t.Errorf("%+v %v", info, err)
	}
	_, err := h.Volumes("lvmvm")
	if !errors.Is(err, ErrPoolDriver) || err.Error() != "VM lvmvm volume root: pool lvm has driver lvm_thin; PedOS keeps volumes only in pools of driver file or file-reflink" {
		t.Errorf("LVM volume: %v", err)
	}
	if err := h.RemoveVM("lvmvm"); !errors.Is(err, ErrPoolDriver) {
		t.Errorf("VM with LVM volumes removed: %v", err)
	}
	if err := h.Start("lvmvm"); !errors.Is(err, ErrPoolDriver) {
		t.Errorf("VM with LVM volumes started: %v", err)
	}
	if err := h.RemoveVM("filevm"); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(qubesDir, "appvms", "filevm")) {
		t.Error("images left")
	}
}

// Two volumes with one image file, or an image in another VM's directory,
// make the database ambiguous as two VMs of one name do.
func TestSharedImagesRefused(t *testing.T) {
	for _, c := range []struct{ find, replace, want string }{
		{`vid="appvms/web/private"`, `vid="appvms/app/private"`,
			"two volumes have the image " + "ROOT/appvms/app/private.img: <domain> #3 (app) volume private and <domain> #4 (web) volume private"},
		{`vid="appvms/web/private"`, `vid="appvms/app/web-private"`,
			"<domain> #4 (web) volume private has its image ROOT/appvms/app/web-private.img in the directory of VM app"},
	} {
		h := identityHost(t)
		data := readFile(t, h.path(DBFile))
		broken := bytes.Replace(data, []byte(c.find), []byte(c.replace), 1)
		if bytes.Equal(broken, data) {
			t.Fatalf("no %s", c.find)
		}
		os.WriteFile(h.path(DBFile), broken, 0o660)
		want := strings.ReplaceAll(c.want, "ROOT", h.Root())
		if _, err := h.Load(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant %s", err, want)
		}
		if err := h.RemoveVM("app"); err == nil || !exists(h.path("appvms", "app", "private.img")) {
			t.Errorf("removed: %v", err)
		}
	}
}

// A restore into a second pool stages the images in that pool and moves
// them in by rename; the firewall and notes go under the root.
func TestStagedVMInSecondPool(t *testing.T) {
	h, disk2 := hostWithPool(t)
	s, err := h.StageVM(AppVM, "disk2")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(s.dir) != filepath.Join(disk2, "appvms") {
		t.Fatalf("staged in %s", s.dir)
	}
	sw, f, err := s.CreateImage("private")
	if err != nil {
		t.Fatal(err)
	}
	sw.Write([]byte("restored data"))
	sw.Close()
	f.Close()
	fw, _ := MarshalFirewall([]FirewallRule{{Action: "drop"}})
	if err := s.SetFirewall(fw); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNotes("notes\n"); err != nil {
		t.Fatal(err)
	}
	// A spec naming another pool is still committed into the staged one.
	if _, err := s.Commit(VMSpec{Name: "app", Class: AppVM, Label: "red", Template: "tpl", Pool: PoolName}, nil); err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(disk2, "appvms", "app", "private.img")
	if info, err := h.VolumeInfo("app", "private"); err != nil || info.Path != priv || info.Pool != "disk2" {
		t.Fatalf("%+v %v", info, err)
	}
	if string(readFile(t, priv)) != "restored data" {
		t.Error("image content")
	}
	if got, _ := h.Firewall("app"); !bytes.Equal(got, fw) {
		t.Errorf("firewall %q", got)
	}
	if n, _ := h.Notes("app"); n != "notes\n" {
		t.Errorf("notes %q", n)
	}
	left, _ := os.ReadDir(filepath.Join(disk2, "appvms", "app"))
	if len(left) != 1 {
		t.Errorf("pool directory holds %v, want the image only", left)
	}

	// CleanStaging finds a dead restore's directory in the pool.
	dead, err := h.StageVM(TemplateVM, "disk2")
	if err != nil {
		t.Fatal(err)
	}
	dead.lock.Close()
	if removed := h.CleanStaging(); len(removed) != 1 || removed[0] != dead.dir || exists(dead.dir) {
		t.Errorf("removed %q; %s left: %v", removed, dead.dir, exists(dead.dir))
	}
	if _, err := h.StageVM(AppVM, "nope"); !errors.Is(err, ErrNoSuchPool) {
		t.Errorf("unknown pool: %v", err)
	}
}

// The database as the reference system writes it is written back byte
// for byte, and a host on it works: its pools are read, a change keeps
// the rest as it was.
func TestReferenceDatabaseRoundTrip(t *testing.T) {
	work := t.TempDir()
	data := testutil.ReferencePedosXML(t, work)
	db, err := ParseDB(data)
	if err != nil {
		t.Fatal(err)
	}
	if out := db.Marshal(); !bytes.Equal(out, data) {
		t.Fatalf("written back differently:\n%s", out)
	}
	root := filepath.Join(work, "qubes")
	os.MkdirAll(root, 0o755)
	os.WriteFile(filepath.Join(root, DBFile), data, 0o660)
	h, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	db = mustLoad(t, h)
	if p, err := db.FilePool(""); err != nil || p.Name != "varlibqubes" || p.DirPath != root {
		t.Errorf("default pool %+v %v", p, err)
	}
	if err := h.Update(func(db *DB) error { return mustDomain(t, db, "work").SetProp("memory", "900") }); err != nil {
		t.Fatal(err)
	}
	want := bytes.Replace(data, []byte(`<property name="memory">800</property>`), []byte(`<property name="memory">900</property>`), 1)
	if got := readFile(t, h.path(DBFile)); !bytes.Equal(got, want) {
		t.Errorf("an update changed more than the property:\n%s", got)
	}
}
