package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
)

// restoreInto plans and runs a restore of data into h.
func restoreInto(t *testing.T, h *host.Host, data []byte, popts PlanOptions, opts Options, r progress.Reporter) (*Result, error) {
	t.Helper()
	return restoreCtx(t.Context(), t, h, data, popts, opts, r)
}

func restoreCtx(ctx context.Context, t *testing.T, h *host.Host, data []byte, popts PlanOptions, opts Options, r progress.Reporter) (*Result, error) {
	t.Helper()
	b := openBackup(t, data)
	p, err := NewPlan(h, b, popts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return Restore(ctx, h, b, p, opts, r)
}

// sameVM fails unless VM name on a equals VM target on b: class, label,
// template, stored properties (but qid and uuid), features, tags,
// devices, volume sizes and contents, firewall and notes. Backend names
// are mapped by rename.
func sameVM(t *testing.T, a, b *host.Host, name, target string, rename map[string]string) {
	t.Helper()
	dba, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	dbb, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	da, err := dba.Domain(name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := dbb.Domain(target)
	if err != nil {
		t.Fatalf("%s not restored as %s: %v", name, target, err)
	}
	mapName := func(s string) string {
		if r, ok := rename[s]; ok {
			return r
		}
		return s
	}
	props := func(d *host.Domain, mapRefs bool) []host.Property {
		var out []host.Property
		for _, p := range d.Props() {
			// Not restored: new ids; backup_timestamp is set on the source
			// by the backup itself; installed_by_rpm (doc/reference.md B.8).
			switch p.Name {
			case "qid", "uuid", "name", "backup_timestamp", "installed_by_rpm":
				continue
			}
			if mapRefs && host.IsRefProp(p.Name) {
				p.Value = mapName(p.Value)
			}
			out = append(out, p)
		}
		slices.SortFunc(out, func(x, y host.Property) int { return strings.Compare(x.Name, y.Name) })
		return out
	}
	if pa, pb := props(da, true), props(db, false); !slices.Equal(pa, pb) {
		t.Errorf("%s properties:\n a %v\n b %v", name, pa, pb)
	}
	if da.Class() != db.Class() || da.Label() != db.Label() || mapName(da.Template()) != db.Template() {
		t.Errorf("%s: class/label/template %s %s %s vs %s %s %s", name, da.Class(), da.Label(), da.Template(), db.Class(), db.Label(), db.Template())
	}
	if fa, fb := da.Features(), db.Features(); !slices.Equal(fa, fb) {
		t.Errorf("%s features:\n a %v\n b %v", name, fa, fb)
	}
	if ta, tb := da.Tags(), db.Tags(); !slices.Equal(ta, tb) {
		t.Errorf("%s tags: %v vs %v", name, ta, tb)
	}
	devs := func(d *host.Domain, mapRefs bool) string {
		var s []string
		for _, dev := range d.Devices() {
			if mapRefs {
				dev.Backend = mapName(dev.Backend)
			}
			s = append(s, strings.Join([]string{dev.Class, dev.Backend, dev.Port, dev.Mode, dev.Identity}, ":"))
		}
		return strings.Join(s, " ")
	}
	if x, y := devs(da, true), devs(db, false); x != y {
		t.Errorf("%s devices: %s vs %s", name, x, y)
	}
	for _, get := range []func(*host.Host, string) ([]byte, error){
		(*host.Host).Firewall,
		func(h *host.Host, vm string) ([]byte, error) { s, err := h.Notes(vm); return []byte(s), err },
	} {
		x, err1 := get(a, name)
		y, err2 := get(b, target)
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s firewall/notes differ: %q %v vs %q %v", name, x, err1, y, err2)
		}
	}
	va, _ := a.Volumes(name)
	for _, v := range va {
		if v.Path == "" {
			continue
		}
		vb, err := b.VolumeInfo(target, v.Name)
		if err != nil {
			t.Errorf("%s volume %s: %v", name, v.Name, err)
			continue
		}
		if vb.Size != v.Size || vb.Nominal != v.Nominal {
			t.Errorf("%s volume %s: size %d/%d vs %d/%d", name, v.Name, v.Size, v.Nominal, vb.Size, vb.Nominal)
		}
		sameFile(t, v.Path, vb.Path)
		if vb.Usage > v.Usage+1<<20 {
			t.Errorf("%s volume %s not sparse: %d bytes used vs %d", name, v.Name, vb.Usage, v.Usage)
		}
	}
}

// backedUp lists the VMs the demo archive holds.
func backedUp(t *testing.T, data []byte) []string {
	b := openBackup(t, data)
	var out []string
	for _, v := range b.VMs {
		out = append(out, v.Name)
	}
	return out
}

func TestRestoreMigration(t *testing.T) {
	data, a := goodArchive(t)
	b := emptyHost(t, "bob")
	before, _ := b.Load()
	res, err := restoreInto(t, b, data, PlanOptions{IgnoreUsernameMismatch: true}, Options{Now: func() time.Time { return testTime }, GlobalDefaults: true}, nil)
	if err != nil {
		t.Fatalf("%v\n%+v", err, res)
	}
	names := backedUp(t, data)
	if len(res.VMs) != len(names)+1 {
		t.Fatalf("%d results for %d VMs", len(res.VMs), len(names))
	}
	for _, r := range res.VMs {
		if r.Outcome != OutcomeRestored || r.Err != nil || r.Files == 0 {
			t.Errorf("%+v", r)
		}
	}
	for _, n := range names {
		sameVM(t, a, b, n, n, nil)
	}
	// Templates first, the home last.
	if res.VMs[0].Name != "debian-12" || res.VMs[len(res.VMs)-1].Name != "dom0" {
		t.Errorf("order %v", res.VMs)
	}
	// The dom0 home, in its own directory beside bob's.
	d0, _ := b.Dom0()
	homeDir := filepath.Join(d0.Home, "home-restore-"+testTime.Format("2006-01-02-150405"))
	if got := res.VMs[len(res.VMs)-1].Target; got != homeDir {
		t.Errorf("home restored to %s", got)
	}
	da0, _ := a.Dom0()
	sameTree(t, da0.Home, homeDir)
	// The fresh host takes the backup's global VM settings (asked for);
	// its others (the pool) stay.
	after, _ := b.Load()
	dba, _ := a.Load()
	for _, p := range dba.GlobalProps() {
		got, _ := after.GlobalProp(p.Name)
		if want, _ := before.GlobalProp(p.Name); host.IsRefGlobal(p.Name) {
			want = p.Value
			if got != want {
				t.Errorf("global %s = %q, want %q", p.Name, got, want)
			}
		} else if got != want {
			t.Errorf("global %s changed to %q", p.Name, got)
		}
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	if left, _ := filepath.Glob(filepath.Join(b.Root(), "*", ".restoring-*")); len(left) > 0 {
		t.Errorf("staging left: %v", left)
	}
}

// unchanged checks that a failed restore left the host as it was:
// pedos.xml byte for byte, no VM directories, no staging, no home copy.
func unchanged(t *testing.T, h *host.Host, xml []byte, dirs []string) {
	t.Helper()
	now, err := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	if err != nil || !bytes.Equal(now, xml) {
		t.Errorf("pedos.xml changed (%v)", err)
	}
	if got := listDirs(t, h); !slices.Equal(got, dirs) {
		t.Errorf("files: %v, want %v", got, dirs)
	}
}

func listDirs(t *testing.T, h *host.Host) []string {
	t.Helper()
	var out []string
	d0, _ := h.Dom0()
	for _, pat := range []string{"appvms/*", "vm-templates/*", "appvms/.*", "vm-templates/.*"} {
		m, _ := filepath.Glob(filepath.Join(h.Root(), pat))
		out = append(out, m...)
	}
	m, _ := filepath.Glob(filepath.Join(d0.Home, "*home-restore*"))
	out = append(out, m...)
	slices.Sort(out)
	return out
}

func TestRestoreFailureLeavesHost(t *testing.T) {
	data, _ := goodArchive(t)
	ms := splitArchive(t, data)
	b0 := openBackup(t, data)
	personal := b0.VM("personal").Path

	flipped := bytes.Clone(data)
	off := 0
	for _, m := range ms {
		if strings.HasPrefix(m.name, personal+"private.img.000") {
			flipped[off+512+len(m.body)/2] ^= 1
		}
		off += len(m.data)
	}
	cases := map[string]func(t *testing.T, h *host.Host) (*Result, error){
		"flipped byte": func(t *testing.T, h *host.Host) (*Result, error) {
			return restoreInto(t, h, flipped, PlanOptions{IgnoreUsernameMismatch: true}, Options{}, nil)
		},
		"truncated": func(t *testing.T, h *host.Host) (*Result, error) {
			return restoreInto(t, h, data[:len(data)*3/4], PlanOptions{IgnoreUsernameMismatch: true}, Options{}, nil)
		},
		"cancelled": func(t *testing.T, h *host.Host) (*Result, error) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// Reported on the data path: the cancel comes as personal begins.
			return restoreCtx(ctx, t, h, data, PlanOptions{IgnoreUsernameMismatch: true, syncProgress: true}, Options{},
				progress.Func(func(e progress.Event) {
					if e.VM == "personal" {
						cancel()
					}
				}))
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			h := emptyHost(t, "bob")
			xml, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
			dirs := listDirs(t, h)
			res, err := run(t, h)
			if err == nil {
				t.Fatal("no error")
			}
			unchanged(t, h, xml, dirs)
			if res == nil {
				t.Fatal("no result")
			}
			for _, r := range res.VMs {
				if r.Outcome == OutcomeRestored || r.Err == nil {
					t.Errorf("%s: %+v", r.Name, r)
				}
				if r.Name == "personal" && name == "flipped byte" && (r.Outcome != OutcomeFailed || !errors.Is(r.Err, archive.ErrCorrupt)) {
					t.Errorf("personal: %v %v", r.Outcome, r.Err)
				}
			}
		})
	}
}

func TestRestoreRenameAndOptions(t *testing.T) {
	data, a := goodArchive(t)
	// Into the same host: every name is taken, so all are renamed, and
	// references follow the new names.
	res, err := restoreInto(t, a, data, PlanOptions{RenameConflicting: true, SkipDom0Home: true}, Options{}, nil)
	if err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	rename := map[string]string{}
	for _, r := range res.VMs {
		if r.Target == r.Name {
			t.Errorf("%s not renamed", r.Name)
		}
		rename[r.Name] = r.Target
	}
	for n, target := range rename {
		sameVM(t, a, a, n, target, rename)
	}
}

// A wizard's Back button: a Restore that stops before its data pass (a
// plan with problems, a host check that fails) leaves the opened Backup
// as it was, so that new options, a new plan and another Restore go on
// with it.
func TestRestoreKeepsBackupUntilThePass(t *testing.T) {
	data, a := goodArchive(t)
	h := emptyHost(t, "user")
	if err := h.CreateVM("personal", host.StandaloneVM, host.VMOptions{Label: "red"}); err != nil {
		t.Fatal(err)
	}
	b := openBackup(t, data)
	popts := PlanOptions{VMs: []string{"debian-12", "personal"}}
	p, err := NewPlan(h, b, popts)
	if err != nil {
		t.Fatal(err)
	}
	var pe *ProblemsError
	if _, err := Restore(t.Context(), h, b, p, Options{}, nil); !errors.As(err, &pe) {
		t.Fatalf("a plan with problems: %v", err)
	}
	// Resolved, but into a pool the host does not have.
	if pr := pe.Problems[0]; pr.VM != "personal" || pr.Resolve[0] != SkipConflicting || !pr.Resolve[0].Apply(&popts, pr.VM) {
		t.Fatalf("%v does not apply", pe.Problems[0].Resolve[0])
	}
	if p, err = NewPlan(h, b, popts); err != nil || p.Err() != nil {
		t.Fatal(err, p.Err())
	}
	if _, err := Restore(t.Context(), h, b, p, Options{Pool: "nosuch"}, nil); !errors.Is(err, host.ErrNoSuchPool) {
		t.Fatalf("no such pool: %v", err)
	}
	// Back again, another choice: rename rather than skip.
	popts = PlanOptions{VMs: []string{"debian-12", "personal"}, RenameConflicting: true}
	if p, err = NewPlan(h, b, popts); err != nil || p.Err() != nil {
		t.Fatal(err, p.Err())
	}
	res, err := Restore(t.Context(), h, b, p, Options{}, nil)
	if err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	sameVM(t, a, h, "debian-12", "debian-12", nil)
	sameVM(t, a, h, "personal", "personal-1", nil)
	// The data pass has read it: now it is used.
	if _, err := VerifyOnly(t.Context(), b, p, nil); !errors.Is(err, ErrUsed) {
		t.Errorf("a second pass: %v", err)
	}
}

func TestCheckHostRefusesBeforeTouching(t *testing.T) {
	data, _ := goodArchive(t)
	h := emptyHost(t, "user")
	b := openBackup(t, data)
	p, err := NewPlan(h, b, PlanOptions{})
	if err != nil || p.Err() != nil {
		t.Fatal(err, p.Err())
	}
	warns, err := CheckHost(t.Context(), h, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// What a restore would not apply unless asked: the global settings
	// this host leaves unset (the demo's dom0 has no default_dispvm of its
	// own, so there is no E.23 warning).
	if len(warns) != 1 || !slices.Equal(warns[0].Resolve, []Resolution{RestoreGlobalDefaults}) || !strings.Contains(warns[0].Message, "default_netvm=sys-firewall") {
		t.Errorf("warnings %q", warns)
	}
	// A VM database that would be invalid: the host gains a VM of a
	// restored VM's name after planning.
	if err := h.CreateVM("work", host.StandaloneVM, host.VMOptions{Label: "red"}); err != nil {
		t.Fatal(err)
	}
	xml, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	dirs := listDirs(t, h)
	_, err = Restore(t.Context(), h, b, p, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "work") {
		t.Fatalf("error %v", err)
	}
	unchanged(t, h, xml, dirs)
}

// A panic during a restore or an extraction unwinds through the same
// cleanup as an error: nothing staged (.restoring-*, the dom0 home's
// .home-restore-*.partial) or extracted stays.
func TestPanicLeavesNothing(t *testing.T) {
	data, _ := goodArchive(t)
	panics := func(t *testing.T, run func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		run()
	}

	h := emptyHost(t, "bob")
	xml, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	dirs := listDirs(t, h)
	d0, _ := h.Dom0()
	staged := false
	panics(t, func() {
		// Reported on the data path, so that the panic is the restore's.
		restoreInto(t, h, data, PlanOptions{IgnoreUsernameMismatch: true, syncProgress: true}, Options{}, progress.Func(func(e progress.Event) {
			partial, _ := filepath.Glob(filepath.Join(d0.Home, ".home-restore-*.partial"))
			restoring, _ := filepath.Glob(filepath.Join(h.Root(), "appvms", ".restoring-*"))
			if len(partial) > 0 && len(restoring) > 0 {
				staged = true
				panic("a bug")
			}
		}))
	})
	if !staged {
		t.Fatal("the reporter never saw the home and a VM staged")
	}
	unchanged(t, h, xml, dirs)

	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	b := openBackup(t, data)
	p, _ := NewPlan(nil, b, PlanOptions{syncProgress: true})
	panics(t, func() {
		ExtractTo(t.Context(), b, p, out, progress.Func(func(e progress.Event) {
			if _, err := os.Stat(filepath.Join(out, "vault")); err == nil {
				panic("a bug")
			}
		}))
	})
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("extraction left %v", entries)
	}
}

// A directory that a killed extraction left is refused with that reason,
// and one that another extraction is filling is refused as busy; nothing
// in either is touched.
func TestExtractToLeftovers(t *testing.T) {
	data, _ := goodArchive(t)
	dir := t.TempDir()
	marker, err := os.Create(filepath.Join(dir, extractMarker))
	if err != nil {
		t.Fatal(err)
	}
	// Kept open to the end: a finalizer closing it would drop the lock.
	defer marker.Close()
	os.WriteFile(filepath.Join(dir, "qubes.xml"), []byte("half"), 0o600)
	b := openBackup(t, data)
	p, _ := NewPlan(nil, b, PlanOptions{})
	err = ExtractTo(t.Context(), b, p, dir, nil)
	wantErr(t, err, ErrExtractDir, "is not empty: it holds what an extraction that was killed left")

	if err := syscall.Flock(int(marker.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	b = openBackup(t, data)
	p, _ = NewPlan(nil, b, PlanOptions{})
	err = ExtractTo(t.Context(), b, p, dir, nil)
	wantErr(t, err, ErrExtractDir, "another extraction into it is running")
	if got, _ := os.ReadFile(filepath.Join(dir, "qubes.xml")); string(got) != "half" {
		t.Error("the leftovers were touched")
	}
}

// Two restores of the dom0 home in the same second both succeed, each in
// a directory of its own (the second once failed with "home-restore-<time>
// already exists"); an existing directory, even an empty one, is never
// taken over.
func TestRestoreHomeSameSecond(t *testing.T) {
	data, a := goodArchive(t)
	h := emptyHost(t, "bob")
	d0, _ := h.Dom0()
	base := filepath.Join(d0.Home, "home-restore-"+testTime.Format("2006-01-02-150405"))
	if err := os.MkdirAll(base+"-2", 0o700); err != nil { // empty: rename(2) would replace it
		t.Fatal(err)
	}
	da0, _ := a.Dom0()
	for _, want := range []string{base, base + "-3", base + "-4"} {
		res, err := restoreInto(t, h, data, PlanOptions{VMs: []string{"dom0"}, IgnoreUsernameMismatch: true},
			Options{Now: func() time.Time { return testTime }}, nil)
		if err != nil {
			t.Fatalf("%v\n%+v", err, res)
		}
		if got := res.VMs[0].Target; got != want {
			t.Errorf("home restored to %s, want %s", got, want)
		}
		sameTree(t, da0.Home, want)
	}
	if entries, _ := os.ReadDir(base + "-2"); len(entries) != 0 {
		t.Errorf("the empty directory got %v", entries)
	}
}

// When a restore fails for a reason outside a VM (here the dom0 home
// cannot be written; or the run is cancelled), the VMs it did not add say
// what stopped it rather than only that the archive did not prove them
// complete.
func TestRestoreResultsNameTheCause(t *testing.T) {
	data, _ := goodArchive(t)
	h := emptyHost(t, "bob")
	d0, _ := h.Dom0()
	if err := os.RemoveAll(d0.Home); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d0.Home, nil, 0o600); err != nil { // the home is a file: nothing can go in it
		t.Fatal(err)
	}
	res, err := restoreInto(t, h, data, PlanOptions{IgnoreUsernameMismatch: true}, Options{}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, r := range res.VMs {
		switch {
		case r.Name == "dom0":
			if r.Outcome != OutcomeFailed || !strings.Contains(r.Err.Error(), "not a directory") {
				t.Errorf("dom0: %v %v", r.Outcome, r.Err)
			}
		case r.Outcome != OutcomeNotDone || !errors.Is(r.Err, ErrNotProven) ||
			!strings.Contains(r.Err.Error(), "; what stopped it: VM dom0: dom0-home/user: ") ||
			!strings.Contains(r.Err.Error(), "not a directory"):
			t.Errorf("%s: %v %v", r.Name, r.Outcome, r.Err)
		}
	}

	h = emptyHost(t, "bob")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	res, err = restoreCtx(ctx, t, h, data, PlanOptions{IgnoreUsernameMismatch: true, syncProgress: true}, Options{},
		progress.Func(func(e progress.Event) {
			if e.VM == "personal" {
				cancel(errors.New("interrupted (hangup)"))
			}
		}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, r := range res.VMs {
		if r.Outcome != OutcomeNotDone || r.Err == nil || !strings.HasSuffix(r.Err.Error(), "; what stopped it: interrupted (hangup)") {
			t.Errorf("%s: %v %v", r.Name, r.Outcome, r.Err)
		}
	}
}

// A restore removes the partial dom0 homes and staging directories of
// restores that died (their lock is free) and reports them; a live
// restore's are locked and stay.
func TestRestoreRemovesWhatDeadRestoresLeft(t *testing.T) {
	data, _ := goodArchive(t)
	h := emptyHost(t, "bob")
	d0, _ := h.Dom0()
	os.MkdirAll(d0.Home, 0o700)
	dead, deadLock, err := stageHomeDir(d0.Home, "home-restore-2026-01-01-000000")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead, "half"), []byte("x"), 0o600)
	deadLock.Close() // its process died
	live, liveLock, err := stageHomeDir(d0.Home, "home-restore-2026-01-01-000001")
	if err != nil {
		t.Fatal(err)
	}
	defer liveLock.Close()
	// A staging directory as a dead restore leaves it: its lock file free.
	deadDir := []string{filepath.Join(h.Root(), "appvms", ".restoring-123")}
	os.MkdirAll(deadDir[0], 0o755)
	os.WriteFile(filepath.Join(deadDir[0], ".lock"), nil, 0o600)

	res, err := restoreInto(t, h, data, PlanOptions{VMs: []string{"work", "debian-12", "sys-firewall", "sys-net"}},
		Options{}, nil)
	if err != nil {
		t.Fatalf("%v\n%+v", err, res)
	}
	want := append(deadDir, dead)
	if !slices.Equal(res.Removed, want) {
		t.Errorf("removed %q, want %q", res.Removed, want)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live restore's home was removed: %v", err)
	}
}
