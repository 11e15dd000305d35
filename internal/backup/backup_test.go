package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
)

// The default selection is every VM with include_in_backups, dom0's home
// first in the plan and last in the archive; the file gets the reference
// name in the directory, and every backed-up VM its backup_timestamp.
func TestDefaultSelectionToDirectory(t *testing.T) {
	h := demoHost(t)
	dir := t.TempDir()
	p, res := mustRun(t, h, testOptions(Destination{Path: dir}), nil)

	var names []string
	for _, v := range p.VMs {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, defaultVMs) {
		t.Errorf("plan VMs %q, want %q", names, defaultVMs)
	}
	if !slices.Equal(p.NotSelected, []string{"disp123"}) {
		t.Errorf("not selected %q", p.NotSelected)
	}
	if p.Target.Kind != ToDirectory || p.Target.Path != dir {
		t.Errorf("target %+v", p.Target)
	}
	want := filepath.Join(dir, "qubes-backup-2026-01-02T030405")
	if res.Location != want {
		t.Errorf("location %q, want %q", res.Location, want)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{filepath.Base(want)}) {
		t.Errorf("directory holds %q", got)
	}
	if !regexp.MustCompile(`^qubes-backup-\d{4}-\d\d-\d\dT\d{6}$`).MatchString(filepath.Base(res.Location)) {
		t.Errorf("file name %q", res.Location)
	}
	wantOrder := append(slices.Clone(defaultVMs[1:]), "dom0")
	if !slices.Equal(res.VMs, wantOrder) {
		t.Errorf("archive order %q, want %q", res.VMs, wantOrder)
	}
	f, err := os.Open(res.Location)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() != res.Bytes || fi.Mode().Perm() != 0o600 {
		t.Errorf("file has %d bytes, mode %v; result says %d", fi.Size(), fi.Mode(), res.Bytes)
	}
	c := checkArchive(t, h, f, defaultVMs, readOpts(0))
	if !c.header.Compressed || c.header.CompressionFilter != "gzip" || !c.header.Manifest {
		t.Errorf("header %+v", c.header)
	}
	if fi.Size() > p.EstimatedArchiveSize {
		t.Errorf("archive %d bytes, estimate %d should bound it", fi.Size(), p.EstimatedArchiveSize)
	}

	ts := timestamps(t, h)
	stamp := strconv.FormatInt(testTime.Unix(), 10)
	for vm, v := range ts {
		if want := map[bool]string{true: stamp, false: ""}[slices.Contains(defaultVMs, vm)]; v != want {
			t.Errorf("%s: backup_timestamp %q, want %q", vm, v, want)
		}
	}
	// A second backup in the same second gets a new name.
	_, res2 := mustRun(t, h, testOptions(Destination{Path: dir}), nil)
	if res2.Location != want+"-2" {
		t.Errorf("second backup at %q", res2.Location)
	}
}

func TestSummary(t *testing.T) {
	h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, h, testOptions(Destination{Path: t.TempDir()}))
	s := p.Summary()
	types := map[string]string{}
	var total int64
	for _, row := range s.Rows {
		types[row.VM] = row.Type
		total += row.Size
		if (row.Note != "") != (row.VM == "work") {
			t.Errorf("%s: note %q", row.VM, row.Note)
		}
	}
	want := map[string]string{"dom0": "User home", "debian-12": "Template VM", "vault": "VM + Sys", "work": "VM", "sys-net": "VM"}
	for vm, typ := range want {
		if types[vm] != typ {
			t.Errorf("%s: type %q, want %q", vm, types[vm], typ)
		}
	}
	if s.Total != total || total == 0 || !slices.Equal(s.NotSelected, []string{"disp123"}) {
		t.Errorf("summary %+v", s)
	}
	if p.EstimatedDuration <= 0 || p.EstimatedArchiveSize < total {
		t.Errorf("estimates %v, %d (total %d)", p.EstimatedDuration, p.EstimatedArchiveSize, total)
	}
}

// A running VM is stored from its committed image: its state from before
// its start.
func TestRunningVMStoresCommittedState(t *testing.T) {
	h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	working, err := h.WorkingPath("work", "private")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(working, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("written while running"), 1<<20)
	f.Close()
	var buf bytes.Buffer
	p, _ := mustRun(t, h, testOptions(Destination{Path: "-"}), &buf)
	if !p.VMs[slices.IndexFunc(p.VMs, func(v PlannedVM) bool { return v.Name == "work" })].Running {
		t.Error("work is not marked running")
	}
	checkArchive(t, h, &buf, defaultVMs, readOpts(0)) // compares with the committed image
}

func TestExplicitNames(t *testing.T) {
	h := demoHost(t)
	var buf bytes.Buffer
	vms := []string{"work", "disp123"}
	opts := testOptions(Destination{Path: "-"})
	opts.VMs = vms
	p, res := mustRun(t, h, opts, &buf)
	if !slices.Equal(res.VMs, []string{"disp123", "work"}) {
		t.Errorf("archive order %q", res.VMs)
	}
	if !slices.Contains(p.NotSelected, "dom0") || len(p.NotSelected) != 7 {
		t.Errorf("not selected %q", p.NotSelected)
	}
	c := checkArchive(t, h, &buf, vms, readOpts(0))
	// disp123 has no save_on_stop volume, no firewall and no notes.
	if !slices.Contains(c.files, "vm"+strconv.Itoa(qid(t, h, "disp123"))+"/empty") {
		t.Errorf("files %q", c.files)
	}
	ts := timestamps(t, h)
	if ts["work"] == "" || ts["disp123"] == "" || ts["personal"] != "" || ts["dom0"] != "" {
		t.Errorf("timestamps %v", ts)
	}
}

func qid(t *testing.T, h *host.Host, vm string) int {
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Domain(vm)
	if err != nil {
		t.Fatal(err)
	}
	return d.Qid()
}

func selection(p *Plan) []string {
	var names []string
	for _, v := range p.VMs {
		names = append(names, v.Name)
	}
	return names
}

func TestSelectors(t *testing.T) {
	h := demoHost(t)
	for _, c := range []struct {
		vms, exclude []string
		want         []string
	}{
		{[]string{"@tag:backup-me"}, nil, []string{"personal", "work"}},
		{[]string{"@type:TemplateVM", "vault"}, nil, []string{"debian-12", "vault"}},
		{[]string{"$type:StandaloneVM"}, nil, []string{"vault"}},
		{[]string{"@type:AppVM"}, []string{"@tag:backup-me", "sys-net"}, []string{"debian-12-dvm", "sys-firewall"}},
		{nil, []string{"@type:AppVM", "dom0"}, []string{"debian-12", "vault"}},
		{[]string{"dom0", "work"}, nil, []string{"dom0", "work"}},
		{[]string{"@type:AdminVM"}, nil, []string{"dom0"}},
	} {
		opts := testOptions(Destination{Path: "-"})
		opts.VMs, opts.Exclude = c.vms, c.exclude
		p := mustPlan(t, h, opts)
		if got := selection(p); !slices.Equal(got, c.want) {
			t.Errorf("%q -x %q: selected %q, want %q", c.vms, c.exclude, got, c.want)
		}
	}
	// One selector-made archive, read back.
	var buf bytes.Buffer
	opts := testOptions(Destination{Path: "-"})
	opts.VMs = []string{"@tag:backup-me", "@type:AdminVM"}
	mustRun(t, h, opts, &buf)
	checkArchive(t, h, &buf, []string{"dom0", "personal", "work"}, readOpts(0))
}

// Nothing is silently ignored: unknown names and classes, selectors that
// select nothing, an empty selection. And nothing is written.
func TestSelectionProblems(t *testing.T) {
	h := demoHost(t)
	before := timestamps(t, h)
	for _, c := range []struct {
		vms, exclude []string
		code         ProblemCode
	}{
		{[]string{"work", "nosuch"}, nil, UnknownVM},
		{nil, []string{"wrok"}, UnknownVM},
		{[]string{"@tag:nosuch"}, nil, NoMatch},
		{[]string{"@type:HVM"}, nil, BadSelector},
		{nil, []string{"@type:Bogus"}, BadSelector},
		{[]string{"@colour:red"}, nil, BadSelector},
		{[]string{"@tag:"}, nil, BadSelector},
		{[]string{"work"}, []string{"work"}, EmptySelection},
		{nil, []string{"@type:AppVM", "@type:TemplateVM", "@type:StandaloneVM", "dom0"}, EmptySelection},
	} {
		dir := t.TempDir()
		opts := testOptions(Destination{Path: dir})
		opts.VMs, opts.Exclude = c.vms, c.exclude
		p, err := NewPlan(t.Context(), h, opts)
		if err != nil {
			t.Fatal(err)
		}
		pr := wantProblem(t, p, c.code)
		if c.code == UnknownVM && pr.Subject != "nosuch" && pr.Subject != "wrok" {
			t.Errorf("problem names %q: %s", pr.Subject, pr.Message)
		}
		_, err = Run(context.Background(), p, nil, nil)
		var perr *ProblemsError
		if !errors.As(err, &perr) {
			t.Errorf("%q -x %q: Run: %v", c.vms, c.exclude, err)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("%q -x %q: wrote %q", c.vms, c.exclude, names)
		}
	}
	if after := timestamps(t, h); !mapsEqual(before, after) {
		t.Errorf("timestamps changed: %v", after)
	}
	// An exclusion that matches nothing only warns.
	opts := testOptions(Destination{Path: "-"})
	opts.Exclude = []string{"@tag:nosuch"}
	if p := mustPlan(t, h, opts); len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "@tag:nosuch") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Progress: Preparing, then Writing per file and per MiB, Finishing, and
// Done with Done == Total; Done never decreases; Total is the data the
// result reports. Each VM starts and is done, in archive order.
func TestProgress(t *testing.T) {
	h := demoHost(t)
	rec := &recorder{}
	opts := testOptions(Destination{Path: "-"})
	opts.syncProgress = true // every update, none coalesced
	p := mustPlan(t, h, opts)
	var buf bytes.Buffer
	res, err := Run(context.Background(), p, &buf, rec)
	if err != nil {
		t.Fatal(err)
	}
	ev, vmEvents := splitEvents(rec.events)
	if len(ev) < 20 {
		t.Fatalf("only %d events", len(ev))
	}
	if ev[0].Stage != progress.Preparing || ev[len(ev)-2].Stage != progress.Finishing || ev[len(ev)-1].Stage != progress.Done {
		t.Errorf("stages: first %s, last %s %s", ev[0].Stage, ev[len(ev)-2].Stage, ev[len(ev)-1].Stage)
	}
	var planned int64
	for _, v := range p.VMs {
		planned += v.Data
	}
	last := ev[len(ev)-1]
	if last.Done != last.Total || last.Total != res.Data || res.Data != planned {
		t.Errorf("last event %+v, result data %d, planned %d", last, res.Data, planned)
	}
	files := map[string]bool{}
	for i, e := range ev {
		if i > 0 && (e.Done < ev[i-1].Done || e.Elapsed < ev[i-1].Elapsed) {
			t.Fatalf("event %d goes back: %+v after %+v", i, e, ev[i-1])
		}
		if e.Total != last.Total && e.Stage != progress.Preparing {
			t.Fatalf("event %d total %d", i, e.Total)
		}
		if e.Stage == progress.Writing {
			if e.VM == "" || e.File == "" {
				t.Fatalf("event %d names no file: %+v", i, e)
			}
			files[e.File] = true
		}
	}
	if len(files) != len(expectedFiles(t, h, defaultVMs)) {
		t.Errorf("events name %d files", len(files))
	}
	// At least one event per MiB of data.
	if n := int64(len(ev)); n < last.Total>>20 {
		t.Errorf("%d events for %d bytes", n, last.Total)
	}
	var want []string
	for _, vm := range res.VMs {
		want = append(want, "vm-started "+vm, "vm-done "+vm)
	}
	if !slices.Equal(vmEvents, want) {
		t.Errorf("per-VM events %q, want %q", vmEvents, want)
	}
}

// splitEvents separates the updates from the per-VM events and warnings
// ("kind vm").
func splitEvents(events []progress.Event) (updates []progress.Event, others []string) {
	for _, e := range events {
		if e.Kind == progress.Update {
			updates = append(updates, e)
		} else {
			others = append(others, e.Kind.String()+" "+e.VM)
		}
	}
	return updates, others
}

// manifestWriter closes seen once the archive's manifest passes.
type manifestWriter struct {
	bytes.Buffer
	seen chan struct{}
	once sync.Once
}

func (w *manifestWriter) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(archive.ManifestName)) {
		w.once.Do(func() { close(w.seen) })
	}
	return w.Buffer.Write(b)
}

// A consumer that takes no event until the archive is written does not
// hold the backup up: the archive is written all the same, and then the
// consumer gets every per-VM event, the stages in order, and Done last.
func TestProgressSlowConsumer(t *testing.T) {
	h := demoHost(t)
	p := mustPlan(t, h, testOptions(Destination{Path: "-"}))
	out := &manifestWriter{seen: make(chan struct{})}
	rec := &recorder{}
	slow := progress.Func(func(e progress.Event) {
		<-out.seen // would never come if the data path waited for us
		rec.Report(e)
	})
	res, err := Run(t.Context(), p, out, slow)
	if err != nil {
		t.Fatal(err)
	}
	ev, vmEvents := splitEvents(rec.events)
	var want []string
	for _, vm := range res.VMs {
		want = append(want, "vm-started "+vm, "vm-done "+vm)
	}
	if !slices.Equal(vmEvents, want) {
		t.Errorf("per-VM events %q, want %q", vmEvents, want)
	}
	var stages []progress.Stage
	for _, e := range ev {
		if len(stages) == 0 || stages[len(stages)-1] != e.Stage {
			stages = append(stages, e.Stage)
		}
	}
	if !slices.Equal(stages, []progress.Stage{progress.Preparing, progress.Writing, progress.Finishing, progress.Done}) {
		t.Errorf("stages %v", stages)
	}
	if last := ev[len(ev)-1]; last.Done != res.Data {
		t.Errorf("last %+v", last)
	}
}

// A cancelled context stops the planning too.
func TestNewPlanCancelled(t *testing.T) {
	h := demoHost(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := NewPlan(ctx, h, testOptions(Destination{Path: "-"}))
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("NewPlan: %v", err)
	}
}

// qubes.xml is the whole database with the backup features; preloaded
// disposables are dropped from it, the live database is untouched.
func TestArchivedDatabase(t *testing.T) {
	h := demoHost(t)
	err := h.Update(func(db *host.DB) error {
		d, _ := db.Domain("debian-12-dvm")
		d.SetFeature("preload-dispvm", "disp9 disp10")
		d.SetFeature("preload-dispvm-max", "2")
		d.SetFeature("preload-dispvm-threshold", "1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	liveBefore, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	var buf bytes.Buffer
	opts := testOptions(Destination{Path: "-"})
	opts.VMs = []string{"debian-12-dvm"}
	mustRun(t, h, opts, &buf)
	c := checkArchive(t, h, &buf, opts.VMs, readOpts(0))
	d, err := c.db.Domain("debian-12-dvm")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Feature("preload-dispvm"); ok {
		t.Error("preload-dispvm kept")
	}
	if _, ok := d.Feature("preload-dispvm-threshold"); ok {
		t.Error("preload-dispvm-threshold kept")
	}
	if v, _ := d.Feature("preload-dispvm-max"); v != "2" {
		t.Errorf("preload-dispvm-max %q", v)
	}
	if v, _ := d.Feature("appmenus-dispvm"); v != "1" {
		t.Error("other features lost")
	}
	live, _ := h.Load()
	ld, _ := live.Domain("debian-12-dvm")
	if v, _ := ld.Feature("preload-dispvm"); v != "disp9 disp10" {
		t.Error("the live database lost preload-dispvm")
	}
	if _, ok := ld.Feature("backup-content"); ok {
		t.Error("the live database got backup features")
	}
	liveAfter, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	if bytes.Equal(liveBefore, liveAfter) {
		t.Error("backup_timestamp not saved")
	}
}

func TestOptionProblems(t *testing.T) {
	h := demoHost(t)
	opts := testOptions(Destination{Path: "-"})
	opts.Passphrase = []byte("bad\npassphrase")
	p, _ := NewPlan(t.Context(), h, opts)
	wantProblem(t, p, BadPassphrase)

	opts = testOptions(Destination{Path: "-"})
	opts.ScryptLogN = 5
	p, _ = NewPlan(t.Context(), h, opts)
	wantProblem(t, p, BadScryptParameters)

	// A dom0 home that is gone blocks a backup that includes it.
	if err := h.SetDom0(host.Dom0{User: "user", Home: filepath.Join(t.TempDir(), "gone")}); err != nil {
		t.Fatal(err)
	}
	p, _ = NewPlan(t.Context(), h, testOptions(Destination{Path: "-"}))
	if pr := wantProblem(t, p, UnreadableSource); pr.Subject != "dom0" || !slices.Equal(pr.Resolve, []Resolution{ExcludeVM}) || pr.Hint == "" {
		t.Errorf("problem %+v", pr)
	}
}

// The summary is usually shown before the passphrase is asked for.
func TestPassphraseLater(t *testing.T) {
	h := demoHost(t)
	opts := testOptions(Destination{Path: "-"})
	opts.Passphrase = nil
	opts.VMs = []string{"work"}
	p := mustPlan(t, h, opts)
	var buf bytes.Buffer
	if _, err := Run(context.Background(), p, &buf, nil); err == nil || buf.Len() != 0 {
		t.Fatalf("Run without a passphrase: %v, %d bytes", err, buf.Len())
	}
	if err := p.SetPassphrase([]byte("")); err == nil {
		t.Error("empty passphrase accepted")
	}
	if err := p.SetPassphrase(testPass); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), p, &buf, nil); err != nil {
		t.Fatal(err)
	}
	checkArchive(t, h, &buf, opts.VMs, readOpts(0))
}

// The engine stays below the user interfaces (doc/reference.md, layering).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"/internal/cli", "/internal/admintools", "/internal/gui", "/internal/restore", "cobra", "fyne.io/"} {
			if strings.Contains(dep, bad) {
				t.Errorf("internal/backup depends on %s", dep)
			}
		}
	}
}

// E.19: with SelectedMetadataOnly, qubes.xml holds the backed-up VMs, dom0
// and the VMs they or the global properties name, and no others; the
// estimate counts the same smaller database.
func TestSelectedMetadataOnly(t *testing.T) {
	h := demoHost(t)
	names := func(opts Options) []string {
		var buf bytes.Buffer
		p, _ := mustRun(t, h, opts, &buf)
		r, err := archive.NewReader(&buf, readOpts(0))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		db, err := host.ParseDB(r.QubesXML())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range db.Domains() {
			out = append(out, d.Name())
		}
		slices.Sort(out)
		if p.EstimatedArchiveSize < int64(buf.Len()) {
			t.Errorf("estimate %d below the archive's %d bytes", p.EstimatedArchiveSize, buf.Len())
		}
		return out
	}
	opts := testOptions(Destination{Path: "-"})
	opts.VMs = []string{"vault"}
	all := names(opts)
	opts.SelectedMetadataOnly = true
	got := names(opts)
	// vault names nothing; the globals name debian-12 (default_template),
	// sys-firewall (default_netvm, updatevm), sys-net (clockvm, and
	// sys-firewall's netvm) and debian-12-dvm (default_dispvm).
	want := []string{"debian-12", "debian-12-dvm", "dom0", "sys-firewall", "sys-net", "vault"}
	if !slices.Equal(got, want) {
		t.Errorf("domains %v, want %v (all: %v)", got, want, all)
	}
	if slices.Equal(got, all) || !slices.Contains(all, "personal") {
		t.Errorf("the whole database has %v", all)
	}
}
