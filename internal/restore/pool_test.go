package restore

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/testutil"
)

// referenceHost is a host on the database the reference system writes
// (testutil.ReferencePedosXML): VMs in its file pool varlibqubes and in a
// second file pool, kernel volumes in the linux-kernel pool, no dom0
// user stored (the running user's $HOME, set here, is the dom0 home).
func referenceHost(t *testing.T) *host.Host {
	t.Helper()
	work := t.TempDir()
	root := filepath.Join(work, "qubes")
	rng := rand.New(rand.NewPCG(1, 2))
	images := map[string][][2]int64{
		"qubes/vm-templates/fedora-41/root.img":    {{0, 64 << 10}, {3 << 20, 4096}},
		"qubes/vm-templates/fedora-41/private.img": {{1 << 20, 8192}},
		"qubes/appvms/work/private.img":            {{4096, 4096}, {2044 << 10, 4096}},
		"disk2/appvms/vault/root.img":              {{2 << 20, 16 << 10}},
		"disk2/appvms/vault/private.img":           {{0, 4096}},
	}
	for name, runs := range images {
		size := int64(2 << 20)
		if strings.HasSuffix(name, "root.img") {
			size = 4 << 20
		}
		testutil.WriteSparse(t, filepath.Join(work, name), size, rng, runs...)
	}
	if err := os.WriteFile(filepath.Join(root, host.DBFile), testutil.ReferencePedosXML(t, work), 0o660); err != nil {
		t.Fatal(err)
	}
	fw, _ := host.MarshalFirewall([]host.FirewallRule{{Action: "accept", SpecialTarget: "dns"}, {Action: "drop"}})
	if err := os.WriteFile(filepath.Join(root, "appvms", "work", host.FirewallFile), fw, 0o664); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(work, "runner")
	testutil.WriteSparse(t, filepath.Join(home, "Documents", "notes.bin"), 8192, rng, [2]int64{0, 8192})
	t.Setenv("HOME", home)
	h, err := host.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The reference-written host is backed up, and restores onto a fresh
// host the same (settings, bytes, holes): the template and its AppVM into
// the default pool, the VM of the second pool with Options.Pool into the
// new host's second pool.
func TestRestoreReferenceDatabaseIntoPools(t *testing.T) {
	a := referenceHost(t)
	out := filepath.Join(t.TempDir(), "backup")
	p, err := backup.NewPlan(t.Context(), a, backup.Options{ScryptLogN: 10, Passphrase: testPass, VMs: []string{"fedora-41", "work", "vault", "dom0"},
		Destination: backup.Destination{Path: out}, Now: func() time.Time { return testTime }})
	if err == nil {
		err = p.Err()
	}
	if err == nil {
		_, err = backup.Run(t.Context(), p, nil, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	b := emptyHost(t, "bob")
	disk2 := filepath.Join(t.TempDir(), "disk2")
	if err := b.AddPool("disk2", "file", map[string]string{"dir_path": disk2}); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreInto(t, b, data, PlanOptions{VMs: []string{"fedora-41", "work", "dom0"}, IgnoreUsernameMismatch: true}, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreInto(t, b, data, PlanOptions{VMs: []string{"vault"}}, Options{Pool: "disk2"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"fedora-41", "work", "vault"} {
		sameVM(t, a, b, n, n, nil)
	}
	for vm, dir := range map[string]string{"work": b.Root(), "vault": disk2} {
		info, err := b.VolumeInfo(vm, "private")
		if err != nil || info.Path != filepath.Join(dir, "appvms", vm, "private.img") {
			t.Errorf("%s private: %+v %v", vm, info, err)
		}
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "appvms", "vault", "private.img")); err == nil {
		t.Error("vault's image in the default pool too")
	}
	d0, _ := b.Dom0()
	homes, _ := filepath.Glob(filepath.Join(d0.Home, "home-restore-*"))
	if len(homes) != 1 {
		t.Fatalf("homes %v", homes)
	}
	sameTree(t, os.Getenv("HOME"), homes[0])
}

// A restore into a pool that is not there, or cannot hold images, is
// refused before anything is touched, naming the pool (and its driver).
func TestRestorePoolRefused(t *testing.T) {
	data, _ := goodArchive(t)
	b := emptyHost(t, "bob")
	xml := filepath.Join(b.Root(), host.DBFile)
	before, _ := os.ReadFile(xml)
	withLVM := strings.Replace(string(before), "</pools>", `<pool name="lvm" driver="lvm_thin" volume_group="vg" thin_pool="pool"/></pools>`, 1)
	if err := os.WriteFile(xml, []byte(withLVM), 0o660); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pool string
		want error
		text string
	}{
		{"nope", host.ErrNoSuchPool, `no storage pool "nope"`},
		{"lvm", host.ErrPoolDriver, "pool lvm has driver lvm_thin"},
	} {
		_, err := restoreInto(t, b, data, PlanOptions{VMs: []string{"vault"}}, Options{Pool: c.pool}, nil)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("pool %s: %v", c.pool, err)
		}
	}
	if after, _ := os.ReadFile(xml); string(after) != withLVM {
		t.Error("pedos.xml changed")
	}
	if left, _ := filepath.Glob(filepath.Join(b.Root(), "appvms", "*")); len(left) > 0 {
		t.Errorf("files made: %v", left)
	}
}
