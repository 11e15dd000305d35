package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/restore"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/testutil"
)

// applyScript is scripts/pedos-apply-delta.py, as the emergency procedure
// runs it.
func applyScript(t *testing.T) (python, script string) {
	t.Helper()
	python = testutil.RequireTool(t, "python3")
	_, self, _, _ := runtime.Caller(0)
	return python, filepath.Join(filepath.Dir(self), "..", "..", "scripts", "pedos-apply-delta.py")
}

// chainHost is a demo host with a chain of backups to one directory.
type chainHost struct {
	t    *testing.T
	h    *host.Host
	dest string
	opts Options
	vms  []string // the VMs the backups take now
	rng  *rand.Rand
}

func newChainHost(t *testing.T) *chainHost {
	c := &chainHost{t: t, h: demoHost(t), dest: t.TempDir(), rng: rand.New(rand.NewPCG(5, 8))}
	c.opts = testOptions(Destination{Path: c.dest})
	c.opts.Incremental = true
	c.opts.IndexDir = filepath.Join(t.TempDir(), "chains")
	c.vms = slices.Clone(defaultVMs) // what the default selection takes
	return c
}

// backup makes the next backup of the chain and returns it and its plan.
func (c *chainHost) backup() (*Plan, *Result) {
	c.t.Helper()
	return mustRun(c.t, c.h, c.opts, nil)
}

// volume opens a VM's committed image for writing.
func (c *chainHost) volume(vm, vol string) *os.File {
	c.t.Helper()
	info, err := c.h.VolumeInfo(vm, vol)
	if err != nil {
		c.t.Fatal(err)
	}
	f, err := os.OpenFile(info.Path, os.O_RDWR, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// write puts n random runs of random data into a volume, off the block grid.
func (c *chainHost) write(vm, vol string, n int) {
	c.t.Helper()
	f := c.volume(vm, vol)
	defer f.Close()
	fi, _ := f.Stat()
	for range n {
		buf := make([]byte, 1+c.rng.IntN(3*chain.BlockSize))
		for i := range buf {
			buf[i] = byte(c.rng.Uint32())
		}
		off := c.rng.Int64N(min(fi.Size()-int64(len(buf)), 64<<20))
		if _, err := f.WriteAt(buf, off); err != nil {
			c.t.Fatal(err)
		}
	}
}

// discard punches a hole over a volume's first data, as a VM's TRIM does.
func (c *chainHost) discard(vm, vol string) {
	c.t.Helper()
	f := c.volume(vm, vol)
	defer f.Close()
	const punchHole = 0x02 | 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	if err := syscall.Fallocate(int(f.Fd()), punchHole, 0, 4*chain.BlockSize+100); err != nil {
		c.t.Fatal(err)
	}
}

// recoverInto runs the documented procedure for one archive.
func recoverInto(t *testing.T, backup, dir string) {
	t.Helper()
	if msg, err := testutil.EmergencyRestore(t, backup, testPass, dir); err != nil {
		t.Fatalf("emergency procedure on %s: %v\n%s", backup, err, msg)
	}
}

// A full backup and three increments, with writes, discards, a resize, an
// added and a removed VM in between, recovered by the emergency procedure
// with stock tools and the apply script only: after each increment the
// recovered files are the host's, byte for byte. A chain applied out of
// order, with an increment skipped or from another chain is refused, and
// the refused run changes nothing.
func TestIncrementalChainEmergency(t *testing.T) {
	python, script := applyScript(t)
	c := newChainHost(t)
	apply := func(dir, inc string) (string, error) {
		out, err := exec.Command(python, script, dir, inc).CombinedOutput()
		return string(out), err
	}

	p, full := c.backup()
	if p.Chain == nil || p.Chain.Increment {
		t.Fatalf("the first backup of a chain: %+v", p.Chain)
	}
	work := t.TempDir()
	chainDir := filepath.Join(work, "chain")
	recoverInto(t, full.Location, chainDir)

	var incs []string // recovered increments, in order
	steps := c.changes()
	removedQid := vmQid(t, c.h, "personal")
	prev := full.BackupID
	for k, change := range steps {
		change()
		p, res := c.backup()
		if p.Chain == nil || !p.Chain.Increment || p.Chain.Base != prev || p.Chain.Depth != k+1 || p.Chain.Full != full.BackupID {
			t.Fatalf("backup %d: %+v, want an increment on %s", k+1, p.Chain, prev)
		}
		if res.Bytes >= full.Bytes/2 {
			t.Errorf("increment %d has %d bytes, the full backup %d", k+1, res.Bytes, full.Bytes)
		}
		inc := filepath.Join(work, "inc"+string(rune('1'+k)))
		recoverInto(t, res.Location, inc)
		checkIncrementXML(t, inc, c.vms)
		incs = append(incs, inc)
		if out, err := apply(chainDir, inc); err != nil {
			t.Fatalf("applying increment %d: %v\n%s", k+1, err, out)
		}
		checkRecoveredChain(t, c, chainDir)
		prev = res.BackupID
	}
	if left, _ := filepath.Glob(filepath.Join(chainDir, "vm"+removedQid, "*.img")); len(left) != 0 {
		t.Errorf("the removed VM's files are still there: %v", left)
	}

	// Broken chains: the script refuses them and changes nothing.
	fresh := filepath.Join(work, "fresh")
	recoverInto(t, full.Location, fresh)
	for name, order := range map[string][]string{
		"increment 2 before 1": {incs[1]},
		"increment 1 skipped":  {incs[1], incs[2]},
		"increment 1 twice":    {incs[0], incs[0]},
	} {
		dir := filepath.Join(work, strings.ReplaceAll(name, " ", "-"))
		if err := exec.Command("cp", "-a", "--sparse=always", fresh, dir).Run(); err != nil {
			t.Fatal(err)
		}
		var out string
		var err error
		for _, inc := range order {
			if out, err = apply(dir, inc); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(out, "apply the chain in order") {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}

	// An increment of another chain, on a base with the same content but
	// another id, is refused too.
	other := newChainHost(t)
	other.backup()
	other.write("work", "private", 1)
	_, foreign := other.backup()
	foreignDir := filepath.Join(work, "foreign")
	recoverInto(t, foreign.Location, foreignDir)
	if out, err := apply(fresh, foreignDir); err == nil || !strings.Contains(out, "apply the chain in order") {
		t.Errorf("an increment of another chain: %v\n%s", err, out)
	}
}

// changes are what happens on the host between the backups of a chain:
// writes, a discard, changed firewall and notes; a resize and a new VM;
// a removed VM.
func (c *chainHost) changes() []func() {
	return []func(){
		func() { // writes, a discard, a changed firewall and notes
			c.write("work", "private", 5)
			c.write("debian-12", "root", 2)
			c.discard("personal", "private")
			fw, _ := c.h.Firewall("work")
			if err := c.h.SetFirewall("work", []byte(strings.Replace(string(fw), "443", "8443", 1))); err != nil {
				c.t.Fatal(err)
			}
			if err := c.h.SetNotes("vault", "changed notes\n"); err != nil {
				c.t.Fatal(err)
			}
		},
		func() { // a resize and a new VM
			info, _ := c.h.VolumeInfo("work", "private")
			if err := c.h.ResizeVolume("work", "private", info.Size+3*chain.BlockSize+512, false); err != nil {
				c.t.Fatal(err)
			}
			f := c.volume("work", "private")
			f.WriteAt([]byte("data at the new end"), info.Size+3*chain.BlockSize)
			f.Close()
			if err := c.h.CreateVM("fresh", host.AppVM, host.VMOptions{Label: "red"}); err != nil {
				c.t.Fatal(err)
			}
			c.write("fresh", "private", 3)
			c.vms = append(c.vms, "fresh")
		},
		func() { // a removed VM, and nothing else changed in most
			if err := c.h.RemoveVM("personal"); err != nil {
				c.t.Fatal(err)
			}
			c.vms = slices.DeleteFunc(c.vms, func(s string) bool { return s == "personal" })
			c.write("fresh", "private", 1)
		},
	}
}

// vmQid is a VM's qid as text.
func vmQid(t *testing.T, h *host.Host, vm string) string {
	t.Helper()
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Domain(vm)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(strings.TrimSuffix(vmSubdir(d), "/"), "vm")
}

// checkIncrementXML checks the recovered increment's qubes.xml: only the
// VMs it stores whole have backup-content, so that the reference restore
// offers no VM the increment holds only part of; every VM of the backup
// keeps its backup-path.
func checkIncrementXML(t *testing.T, dir string, vms []string) {
	t.Helper()
	db := recoveredDB(t, dir)
	for _, name := range vms {
		d, err := db.Domain(name)
		if err != nil {
			t.Fatal(err)
		}
		path, _ := d.Feature("backup-path")
		content, _ := d.Feature("backup-content")
		if path == "" {
			t.Errorf("%s: no backup-path in the increment", name)
			continue
		}
		complete := true
		if name != "dom0" {
			entries, _ := os.ReadDir(filepath.Join(dir, path))
			m, _ := os.ReadFile(filepath.Join(dir, chain.MapName))
			complete = len(entries) > 0 && !strings.Contains(string(m), " "+path)
		}
		if (content == "1") != complete {
			t.Errorf("%s: backup-content %q, but stored whole: %v", name, content, complete)
		}
	}
}

// A backup killed while it writes leaves the chain's record as it was: the
// next increment is still based on the last published backup.
func TestIncrementalFailureKeepsIndex(t *testing.T) {
	c := newChainHost(t)
	_, full := c.backup()
	c.write("work", "private", 2)
	p := mustPlan(t, c.h, c.opts)
	before, err := os.ReadFile(p.indexPath(lastIndex))
	if err != nil {
		t.Fatal(err)
	}

	opts := c.opts
	opts.syncProgress = true
	p = mustPlan(t, c.h, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := &cancelAt{stage: progress.Writing, cancel: cancel}
	if _, err := Run(ctx, p, nil, stop); !errors.Is(err, ErrCancelled) {
		t.Fatalf("a backup cancelled while writing: %v", err)
	}
	if !stop.fired {
		t.Fatal("the backup never wrote")
	}
	after, err := os.ReadFile(p.indexPath(lastIndex))
	if err != nil || string(after) != string(before) {
		t.Fatalf("the record changed after a cancelled backup (%v)", err)
	}
	p2, _ := c.backup()
	if !p2.Chain.Increment || p2.Chain.Base != full.BackupID {
		t.Fatalf("after a cancelled backup: %+v, want an increment on %s", p2.Chain, full.BackupID)
	}
}

// cancelAt cancels the backup at the first event of a stage.
type cancelAt struct {
	stage  progress.Stage
	cancel func()
	fired  bool
}

func (c *cancelAt) Report(e progress.Event) {
	if e.Stage == c.stage && !c.fired {
		c.fired = true
		c.cancel()
	}
}

// sameRecord checks that digests, rebuilt by verifying the chain, are
// dom0's record of its volumes (qvm-backup --rebuild-record saves them).
func sameRecord(t *testing.T, c *chainHost, digests map[string]*chain.Digests) {
	t.Helper()
	ix, err := chain.LoadIndex(mustPlan(t, c.h, c.opts).indexPath(lastIndex))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, d := range ix.Volumes {
		if !strings.HasSuffix(name, ".img") {
			continue // small files: a rebuilt record stores them whole next time
		}
		n++
		if got := digests[name]; got == nil || got.Root() != d.Root() {
			t.Errorf("rebuilt record of %s differs from dom0's", name)
		}
	}
	if len(digests) != n {
		t.Errorf("rebuilt record has %d volumes, dom0's %d", len(digests), n)
	}
}

// restoreChain opens the archives at locs, oldest first, and restores the
// newest's VMs with that chain into h.
func restoreChain(t *testing.T, h *host.Host, locs []string) (*restore.Result, error) {
	t.Helper()
	return restoreLinks(t, h, openLinks(t, locs))
}

// restoreFoundChain restores the VMs of the archive at newest into h with
// the chain OpenChain finds beside it, as qvm-backup-restore does.
func restoreFoundChain(t *testing.T, h *host.Host, newest string) (*restore.Result, error) {
	t.Helper()
	ch, err := restore.OpenChain(t.Context(), openLinks(t, []string{newest})[0], restore.Location{Path: newest},
		restore.SourceOptions{Host: h}, restore.OpenOptions{Passphrase: testPass})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	return restoreLinks(t, h, ch.Links)
}

// restoreLinks restores the VMs of the newest of links, a chain oldest
// first, into h.
func restoreLinks(t *testing.T, h *host.Host, links []*restore.Backup) (*restore.Result, error) {
	t.Helper()
	plan, err := restore.NewPlan(h, links[len(links)-1], restore.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Err(); err != nil {
		t.Fatal(err)
	}
	return restore.RestoreChain(t.Context(), h, links, plan, restore.Options{}, nil)
}

// verifyChain verifies the chain of archives at locs, oldest first.
func verifyChain(t *testing.T, locs []string) (*restore.VerifyReport, error) {
	t.Helper()
	links := openLinks(t, locs)
	plan, err := restore.NewPlan(nil, links[len(links)-1], restore.PlanOptions{VerifyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return restore.VerifyChain(t.Context(), links, plan, nil)
}

// extractChain extracts the chain of archives at locs, oldest first, to
// dir.
func extractChain(t *testing.T, locs []string, dir string) error {
	t.Helper()
	links := openLinks(t, locs)
	plan, err := restore.NewPlan(nil, links[len(links)-1], restore.PlanOptions{VerifyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return restore.ExtractChain(t.Context(), links, plan, dir, nil)
}

// sameExtracted compares the VMs' volumes, firewall and notes on h with
// what an extraction wrote to dir, and checks that it wrote no other VM.
func sameExtracted(t *testing.T, h *host.Host, dir string, vms []string) {
	t.Helper()
	eachBackedUpVM(t, h, vms, func(name string, saved []host.VolumeInfo) {
		for _, v := range saved {
			if err := sameSparseFiles(v.Path, filepath.Join(dir, name, v.Name+".img")); err != nil {
				t.Errorf("extracted %s: volume %s: %v", name, v.Name, err)
			}
		}
		fw, _ := h.Firewall(name)
		got, _ := os.ReadFile(filepath.Join(dir, name, host.FirewallFile))
		if len(fw) > 0 && string(got) != string(fw) {
			t.Errorf("extracted %s: firewall differs", name)
		}
	})
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != "dom0-home" && !slices.Contains(vms, e.Name()) {
			t.Errorf("extracted %s, which the backup does not hold", e.Name())
		}
	}
}

// openLinks opens the archives at locs.
func openLinks(t *testing.T, locs []string) []*restore.Backup {
	t.Helper()
	var links []*restore.Backup
	for _, loc := range locs {
		f, err := os.Open(loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		b, err := restore.Open(t.Context(), f, restore.OpenOptions{Passphrase: testPass})
		if err != nil {
			t.Fatalf("opening %s: %v", loc, err)
		}
		t.Cleanup(func() { b.Close() })
		links = append(links, b)
	}
	return links
}

// freshHost is a new host with no VMs, its dom0 home in a temporary
// directory.
func freshHost(t *testing.T) *host.Host {
	t.Helper()
	dir := t.TempDir()
	h, err := host.Init(filepath.Join(dir, "root"), host.InitOptions{User: "user", Home: filepath.Join(dir, "home")})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sameVMs compares the VMs' volumes (their committed images), firewall
// and notes on two hosts.
func sameVMs(t *testing.T, want, got *host.Host, vms []string) {
	t.Helper()
	eachBackedUpVM(t, want, vms, func(name string, saved []host.VolumeInfo) {
		for _, v := range saved {
			g, err := got.VolumeInfo(name, v.Name)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if err := sameSparseFiles(v.Path, g.Path); err != nil {
				t.Errorf("%s: volume %s: %v", name, v.Name, err)
			}
		}
		fw1, _ := want.Firewall(name)
		fw2, _ := got.Firewall(name)
		n1, _ := want.Notes(name)
		n2, _ := got.Notes(name)
		if string(fw1) != string(fw2) || n1 != n2 {
			t.Errorf("%s: firewall or notes differ", name)
		}
	})
}

// eachBackedUpVM calls fn for each of the VMs but dom0 with the volumes
// of it on h that a backup stores (their committed images).
func eachBackedUpVM(t *testing.T, h *host.Host, vms []string, fn func(name string, saved []host.VolumeInfo)) {
	t.Helper()
	for _, name := range vms {
		if name == "dom0" {
			continue
		}
		vols, err := h.Volumes(name)
		if err != nil {
			t.Fatal(err)
		}
		fn(name, slices.DeleteFunc(vols, func(v host.VolumeInfo) bool { return !v.SaveOnStop }))
	}
}

// A chain restored by the restore engine into a fresh host, after each
// increment, gives the host's VMs byte for byte: the full backup's files,
// the increments' whole files and deltas, kept files, a resized volume, a
// new VM and a removed one. A chain with an archive skipped, out of
// order, missing its full backup or from another chain is refused before
// anything is written, and an increment alone is not restored as if it
// were a full backup.
func TestIncrementalChainRestore(t *testing.T) {
	c := newChainHost(t)
	_, full := c.backup()
	locs := []string{full.Location}
	for k, change := range c.changes() {
		change()
		_, res := c.backup()
		locs = append(locs, res.Location)
		target := freshHost(t)
		got, err := restoreFoundChain(t, target, locs[len(locs)-1])
		if err != nil {
			t.Fatalf("restoring the chain up to increment %d: %v (%+v)", k+1, err, got)
		}
		sameVMs(t, c.h, target, c.vms)
		rep, err := verifyChain(t, locs)
		if err != nil {
			t.Fatalf("verifying the chain up to increment %d: %v (%+v)", k+1, err, rep)
		} else if len(rep.VMs) != len(c.vms) {
			t.Errorf("verified %d VMs, want %d", len(rep.VMs), len(c.vms))
		}
		sameRecord(t, c, rep.Digests)
		x := filepath.Join(t.TempDir(), "x")
		if err := extractChain(t, locs, x); err != nil {
			t.Fatalf("extracting the chain up to increment %d: %v", k+1, err)
		}
		sameExtracted(t, c.h, x, c.vms)
		db, _ := target.Load()
		if _, err := db.Domain("personal"); (err == nil) != slices.Contains(c.vms, "personal") {
			t.Errorf("increment %d: the removed VM personal restored: %v", k+1, err == nil)
		}
	}

	other := newChainHost(t)
	_, otherFull := other.backup()
	target := freshHost(t)
	before, _ := os.ReadFile(filepath.Join(target.Root(), host.DBFile))
	for name, order := range map[string][]string{
		"increment 1 skipped":  {locs[0], locs[2], locs[3]},
		"out of order":         {locs[0], locs[2], locs[1], locs[3]},
		"no full backup":       locs[1:],
		"another chain's full": {otherFull.Location, locs[1]},
	} {
		if _, err := restoreChain(t, target, order); !errors.Is(err, restore.ErrBrokenChain) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := verifyChain(t, order); !errors.Is(err, restore.ErrBrokenChain) {
			t.Errorf("%s, verified: %v", name, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(target.Root(), host.DBFile))
	if string(before) != string(after) {
		t.Error("a refused chain changed the host")
	}

	f, _ := os.Open(locs[1])
	defer f.Close()
	b, err := restore.Open(t.Context(), f, restore.OpenOptions{Passphrase: testPass})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	plan, err := restore.NewPlan(target, b, restore.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Restore(t.Context(), target, b, plan, restore.Options{}, nil); !errors.Is(err, restore.ErrIncrement) {
		t.Errorf("an increment restored alone: %v", err)
	}
}

// A stale or damaged record of the last backup (here, one block's digest
// changed and the record saved as dom0 saves it) makes an increment whose
// base root is not the base's: the restore, the verification and the
// apply script all refuse it, naming the cause, and the host is unchanged.
func TestIncrementOnWrongBaseRefused(t *testing.T) {
	c := newChainHost(t)
	p, full := c.backup()
	ix, err := chain.LoadIndex(p.indexPath(lastIndex))
	if err != nil {
		t.Fatal(err)
	}
	name := "vm" + vmQid(t, c.h, "work") + "/private.img"
	ix.Volumes[name].Blocks[3][0] ^= 1
	if err := chain.SaveIndex(p.indexPath(lastIndex), ix); err != nil {
		t.Fatal(err)
	}
	c.write("work", "private", 2)
	_, inc := c.backup()
	locs := []string{full.Location, inc.Location}

	target := freshHost(t)
	before, _ := os.ReadFile(filepath.Join(target.Root(), host.DBFile))
	_, err = restoreChain(t, target, locs)
	if !errors.Is(err, restore.ErrBrokenChain) || !strings.Contains(err.Error(), "not the one this increment applies to") {
		t.Errorf("restore: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(target.Root(), host.DBFile))
	if string(before) != string(after) {
		t.Error("the refused chain changed the host")
	}
	if left, _ := filepath.Glob(filepath.Join(target.Root(), "*", ".restoring-*")); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
	if _, err := verifyChain(t, locs); !errors.Is(err, restore.ErrBrokenChain) || !strings.Contains(err.Error(), "not the one this increment applies to") {
		t.Errorf("verify: %v", err)
	}
	x := filepath.Join(t.TempDir(), "x")
	if err := extractChain(t, locs, x); !errors.Is(err, restore.ErrBrokenChain) || !strings.Contains(err.Error(), "not the one this increment applies to") {
		t.Errorf("extract: %v", err)
	}
	if _, err := os.Stat(x); !os.IsNotExist(err) {
		t.Errorf("a refused extraction left %s: %v", x, err)
	}

	python, script := applyScript(t)
	dir, incDir := filepath.Join(t.TempDir(), "full"), filepath.Join(t.TempDir(), "inc")
	recoverInto(t, full.Location, dir)
	recoverInto(t, inc.Location, incDir)
	out, err := exec.Command(python, script, dir, incDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not the one this increment applies to") {
		t.Errorf("the script: %v\n%s", err, out)
	}
}

// outerMembers lists the members of the archive at path.
func outerMembers(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := archive.NewOuterReader(f)
	var names []string
	for {
		name, _, err := o.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
}

// An increment's map rides in qubes.xml's member, sparing a key
// derivation, unless the two would not surely fit the 1 MiB that member
// may take: then the map is a member of its own. Here a 1.1 MiB feature
// (compressing to a few KiB) crowds it out. Either way our restore and
// the emergency procedure with GNU tar and the apply script bring the
// chain back byte for byte.
func TestIncrementMapWithQubesXMLOrAlone(t *testing.T) {
	python, script := applyScript(t)
	c := newChainHost(t)
	_, full := c.backup()
	work := t.TempDir()
	chainDir := filepath.Join(work, "chain")
	recoverInto(t, full.Location, chainDir)
	locs := []string{full.Location}
	for k, bigXML := range []bool{false, true} {
		if bigXML {
			err := c.h.Update(func(db *host.DB) error {
				d, err := db.Domain("work")
				if err != nil {
					return err
				}
				return d.SetFeature("padding", strings.Repeat("x", 1100<<10))
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		c.write("work", "private", 2)
		p, res := c.backup()
		if p.Chain == nil || !p.Chain.Increment {
			t.Fatalf("backup %d is not an increment: %+v", k+1, p.Chain)
		}
		locs = append(locs, res.Location)
		alone := slices.Contains(outerMembers(t, res.Location), chain.MapName+".000.enc")
		if alone != bigXML {
			t.Errorf("increment %d (qubes.xml of over 1 MiB: %v): map a member of its own: %v", k+1, bigXML, alone)
		}
		target := freshHost(t)
		if got, err := restoreChain(t, target, locs); err != nil {
			t.Fatalf("restoring up to increment %d: %v (%+v)", k+1, err, got)
		}
		sameVMs(t, c.h, target, c.vms)

		inc := filepath.Join(work, "inc"+string(rune('1'+k)))
		recoverInto(t, res.Location, inc)
		if out, err := exec.Command(python, script, chainDir, inc).CombinedOutput(); err != nil {
			t.Fatalf("applying increment %d: %v\n%s", k+1, err, out)
		}
		checkRecoveredChain(t, c, chainDir)
	}
}

// checkRecoveredChain checks that the directory the emergency procedure
// and the script made holds c's VMs as they are now, by its qubes.xml.
func checkRecoveredChain(t *testing.T, c *chainHost, dir string) {
	t.Helper()
	checkRecovered(t, c.h, recoveredDB(t, dir), dir, c.vms)
}

// recoveredDB parses the qubes.xml the emergency procedure recovered
// into dir.
func recoveredDB(t *testing.T, dir string) *host.DB {
	t.Helper()
	xml, err := os.ReadFile(filepath.Join(dir, archive.QubesXMLName))
	if err != nil {
		t.Fatal(err)
	}
	db, err := host.ParseDB(xml)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// OpenChain, given the newest archive, finds the others beside it and
// returns them in chain order; when one of them is damaged, the error
// names that archive and the cause.
func TestOpenChainInOrderOrNamesTheDamagedArchive(t *testing.T) {
	c := newChainHost(t)
	_, full := c.backup()
	locs, want := []string{full.Location}, []string{full.BackupID}
	for _, change := range c.changes()[:2] {
		change()
		_, res := c.backup()
		locs, want = append(locs, res.Location), append(want, res.BackupID)
	}
	openNewest := func() *restore.Backup { return openLinks(t, locs[len(locs)-1:])[0] }
	sopts := restore.SourceOptions{Host: c.h}
	oopts := restore.OpenOptions{Passphrase: testPass}
	ch, err := restore.OpenChain(t.Context(), openNewest(), restore.Location{Path: locs[len(locs)-1]}, sopts, oopts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ch.Links {
		got = append(got, l.Header.BackupID)
	}
	ch.Close()
	if !slices.Equal(got, want) {
		t.Errorf("chain opened as %v, want %v", got, want)
	}

	// Damage the ciphertext of the first increment's qubes.xml: its
	// unauthenticated header still places it in the chain.
	data, err := os.ReadFile(locs[1])
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte("qubes.xml.000.enc"))
	if at < 0 {
		t.Fatal("no qubes.xml.000.enc member")
	}
	data[(at/512+1)*512+scryptenc.HeaderSize+10] ^= 1
	if err := os.WriteFile(locs[1], data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = restore.OpenChain(t.Context(), openNewest(), restore.Location{Path: locs[len(locs)-1]}, sopts, oopts)
	if err == nil || errors.Is(err, restore.ErrCancelled) || !strings.Contains(err.Error(), locs[1]) || !strings.Contains(err.Error(), "qubes.xml") {
		t.Errorf("a damaged archive in the chain: %v", err)
	}
}

// An increment's scan tells of a volume that changed as soon as it finds
// so (its delta's key then derives beside the first keys, not after the
// scan), and of none that was only rewritten with the same bytes.
func TestScanTellsChangedVolumes(t *testing.T) {
	c := newChainHost(t)
	c.backup()
	c.write("work", "private", 3)
	same := c.volume("personal", "private")
	block := make([]byte, chain.BlockSize)
	if _, err := same.ReadAt(block, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := same.WriteAt(block, 0); err != nil { // a new mtime, so it is hashed
		t.Fatal(err)
	}
	same.Close()

	p := mustPlan(t, c.h, c.opts)
	db, err := c.h.Load()
	if err != nil {
		t.Fatal(err)
	}
	_, items, err := p.measure(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, its := range items {
			closeItems(its)
		}
	}()
	base, err := p.baseIndex()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var told []string
	tell := func(it *item) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, it.vm+" "+path.Base(it.Name))
	}
	snaps := takeSnapshots(items, p.chainKey())
	if _, _, err = scan(context.Background(), items, base, snaps, false, tell); err != nil {
		t.Fatal(err)
	}
	if snaps.found.Scanned < 2 {
		t.Errorf("%d volumes hashed, want at least work's and personal's", snaps.found.Scanned)
	}
	if want := []string{"work private.img"}; !slices.Equal(told, want) {
		t.Errorf("told of %q, want %q", told, want)
	}
}
