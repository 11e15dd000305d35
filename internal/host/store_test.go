package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helper processes: the test binary re-executed with helperEnv naming the
// job (the usual os/exec test pattern).
const helperEnv = "PEDOS_HOST_TEST_HELPER"

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	h, err := Open(os.Getenv("PEDOS_HOST_TEST_ROOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "writer":
		id := os.Getenv("PEDOS_HOST_TEST_ID")
		m, _ := strconv.Atoi(os.Getenv("PEDOS_HOST_TEST_M"))
		for j := range m {
			err := h.Update(func(db *DB) error {
				d, err := db.Domain("dom0")
				if err != nil {
					return err
				}
				return d.SetFeature(fmt.Sprintf("w%s-%d", id, j), "1")
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	case "crash":
		testHookBeforeRename = func(tmp string) {
			fmt.Printf("READY %s\n", tmp)
			time.Sleep(time.Minute) // killed here
		}
		err = h.Update(func(db *DB) error {
			d, _ := db.Domain("dom0")
			return d.SetFeature("crash", "1")
		})
		fmt.Fprintln(os.Stderr, "crash helper was not killed:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func helper(h *Host, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PEDOS_HOST_TEST_ROOT="+h.Root())
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func TestInitRoundTrip(t *testing.T) {
	h := newHost(t)
	data := readFile(t, h.path(DBFile))
	db := mustLoad(t, h)
	if out := db.Marshal(); !bytes.Equal(out, data) {
		t.Fatalf("Load+Marshal changed the file:\n%s\nwant:\n%s", out, data)
	}
	db2, err := ParseDB(db.Clone().Marshal())
	if err != nil || !bytes.Equal(db2.Marshal(), data) {
		t.Fatalf("second round trip differs (%v)", err)
	}
	if bytes.HasPrefix(data, []byte("<?xml")) || !bytes.HasPrefix(data, []byte("<qubes>\n  <labels>\n    <label id=\"label-1\" color=\"0xcc0000\">red</label>\n")) {
		t.Errorf("not lxml-style output:\n%s", data)
	}
	// An Update that changes nothing does not rewrite the file.
	before, _ := os.Stat(h.path(DBFile))
	if err := h.Update(func(*DB) error { return nil }); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(h.path(DBFile))
	if !os.SameFile(before, after) {
		t.Error("a no-op Update rewrote pedos.xml")
	}

	doms := db.Domains()
	if len(doms) != 1 || doms[0].Name() != "dom0" || doms[0].Qid() != 0 || doms[0].Class() != AdminVM || doms[0].Label() != "black" {
		t.Fatalf("fresh host domains: %+v", doms)
	}
	if got := db.Labels(); len(got) != 8 || got[5] != (Label{6, "blue", "0x3465a4"}) || got[7] != (Label{8, "black", "0x000000"}) {
		t.Errorf("labels %v", got)
	}
	if p := db.Pools(); len(p) != 1 || p[0].Name != PoolName || p[0].Driver != "file" || p[0].DirPath != h.Root() || p[0].RevisionsToKeep != 1 {
		t.Errorf("pools %v", p)
	}
	if v, def := db.GlobalProp("default_pool"); v != PoolName || def {
		t.Errorf("default_pool = %q, %v", v, def)
	}
	if v, def := db.GlobalProp("default_qrexec_timeout"); v != "60" || !def {
		t.Errorf("default_qrexec_timeout = %q, %v", v, def)
	}
	if d, err := h.Dom0(); err != nil || d != (Dom0{"user", "/home/user"}) {
		t.Errorf("Dom0() = %v, %v", d, err)
	}
	for _, dir := range []string{"appvms", "vm-templates", "run", "vm-fs"} {
		if !exists(h.path(dir)) {
			t.Errorf("%s missing", dir)
		}
	}
}

func TestInitRefusesExistingHost(t *testing.T) {
	h := newHost(t)
	data := readFile(t, h.path(DBFile))
	_, err := Init(h.Root(), InitOptions{User: "other", Home: "/home/other"})
	wantErr(t, err, ErrExists)
	if !bytes.Equal(readFile(t, h.path(DBFile)), data) {
		t.Error("pedos.xml changed")
	}
	if d, _ := h.Dom0(); d.User != "user" {
		t.Error("dom0.json changed")
	}
	_, err = Init(t.TempDir(), InitOptions{User: "a/b", Home: "/home/x"})
	wantErr(t, err, ErrInvalid)
	_, err = Init(t.TempDir(), InitOptions{User: "u", Home: "relative/home"})
	wantErr(t, err, ErrInvalid)
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir)
	wantErr(t, err, ErrNoHost)
	if want := "no PedOS host at " + dir + " (run pedos-host init)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	h := newHost(t)
	h2, err := Open(h.Root())
	if err != nil || h2.Root() != h.Root() {
		t.Fatal(h2, err)
	}
	if _, err := h2.Load(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultRoot(t *testing.T) {
	t.Setenv("PEDOS_ROOT", "/srv/pedos")
	if r := DefaultRoot(); r != "/srv/pedos" {
		t.Error(r)
	}
	t.Setenv("PEDOS_ROOT", "")
	if r := DefaultRoot(); r != "/var/lib/pedos" {
		t.Error(r)
	}
}

// The hand-written Qubes-style file keeps every element, attribute and
// comment, in order, through a load and save, and through edits that are
// undone; and the accessors read it as Qubes would.
func TestFixtureRoundTrip(t *testing.T) {
	data := readFile(t, "testdata/qubes.xml")
	db, err := ParseDB(data)
	if err != nil {
		t.Fatal(err)
	}
	want := canonical(t, data)
	out := db.Marshal()
	if d := diffLines(want, canonical(t, out)); d != "" {
		t.Fatalf("round trip changed the document: %s\n%s", d, out)
	}
	again, _ := ParseDB(out)
	if !bytes.Equal(again.Marshal(), out) {
		t.Error("second round trip is not byte-identical")
	}
	if err := db.Validate(); err != nil {
		t.Errorf("fixture does not validate: %v", err)
	}

	// Edit, check the unknowns survive, undo, compare with the original.
	work := mustDomain(t, db, "work")
	steps := []error{
		work.SetFeature("added", "1"), work.SetFeature("service.cups", ""), work.AddTag("new-tag"),
		work.SetProp("memory", "800"), work.SetProp("x_future_prop", "300"),
		work.AssignDevice(Device{Class: "usb", Backend: "sys-usb", Port: "3-1"}),
		work.AssignDevice(Device{Class: "mic", Backend: "dom0", Port: "mic", Mode: "ask-to-attach"}),
		db.SetGlobalProp("updatevm", "sys-net"),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
	}
	edited := strings.Join(canonical(t, db.Marshal()), "\n")
	for _, s := range []string{`x-written-by`, `< future-section`, `x-future-flag`, `x-icon`, `< notes-meta`,
		`x-origin`, `x-unit`, `text 300`, `x-source`, `comment  a comment that should survive `, `x-color`,
		`x-hotplug`, `<urn:pedos:test meta xmlns:ext="urn:pedos:test" urn:pedos:test:level="2"`, `x-encrypted`,
		`:ephemeral="True"`, `< x-trailer`, `text R & D <beta>`, `text extension data`} {
		if !strings.Contains(edited, s) {
			t.Errorf("after edits, %q is gone", s)
		}
	}
	undo := []error{
		boolErr(work.DeleteFeature("added")), work.SetFeature("service.cups", "1"), boolErr(work.RemoveTag("new-tag")),
		work.ResetProp("memory"), work.SetProp("x_future_prop", "250"),
		work.UnassignDevice("usb", "sys-usb", "3-1"), work.UnassignDevice("mic", "dom0", "mic"),
		db.SetGlobalProp("updatevm", "sys-firewall"),
	}
	for i, err := range undo {
		if err != nil {
			t.Fatalf("undo %d: %v", i, err)
		}
	}
	// The empty <devices class="mic"/> made by the assignment stays, as in
	// Qubes; take it out to compare.
	work.n.remove(work.devicesNode("mic"))
	if d := diffLines(want, canonical(t, db.Marshal())); d != "" {
		t.Fatalf("edit+undo changed the document: %s", d)
	}

	// Accessors.
	var names []string
	for _, d := range db.Domains() {
		names = append(names, fmt.Sprintf("%d:%s:%s", d.Qid(), d.Name(), d.Class()))
	}
	if got := strings.Join(names, " "); got != "0:dom0:AdminVM 1:fedora-40:TemplateVM 2:sys-net:AppVM 3:sys-firewall:AppVM 4:work:AppVM 5:vault:StandaloneVM 6:fedora-40-dvm:AppVM 7:disp4242:DispVM 8:sys-usb:AppVM" {
		t.Errorf("domains: %s", got)
	}
	if work.Template() != "fedora-40" {
		t.Errorf("template given by ref: %q", work.Template())
	}
	if v, _ := db.GlobalProp("default_guivm"); v != "dom0" {
		t.Errorf("default_guivm by ref: %q", v)
	}
	if l := mustDomain(t, db, "vault").Label(); l != "scarlet" {
		t.Errorf("custom label: %q", l)
	}
	devs := fmt.Sprint(mustDomain(t, db, "sys-net").Devices(), work.Devices())
	if want := "[{pci dom0 00_14.3 required 0x0280 [{no-strict-reset True} {permissive True}]} {pci dom0 00_1f.6 auto-attach  []}] " +
		"[{usb sys-usb 2-1 auto-attach 0781:5581:SanDisk_Ultra [{read-only True}]} {block sys-usb sda required  [{frontend-dev xvdi}]}]"; devs != want {
		t.Errorf("devices:\n%s\nwant\n%s", devs, want)
	}
	vols := work.Volumes()
	if len(vols) != 5 || vols[4] != (Volume{Name: "data", Pool: "lvm", VID: "qubes_dom0/vm-work-data", Size: 1 << 30, RW: true, SaveOnStop: true, RevisionsToKeep: -1}) {
		t.Errorf("volumes %+v", vols)
	}
	if v, ok := mustDomain(t, db, "dom0").Feature("backup-content"); !ok || v != "" {
		t.Errorf("empty feature: %q %v", v, ok)
	}
	if mustDomain(t, db, "disp4242").IncludeInBackups() || !work.IncludeInBackups() {
		t.Error("include_in_backups: auto_cleanup DispVM excluded, others included")
	}
	if v, def := work.Prop("netvm"); v != "sys-firewall" || !def {
		t.Errorf("work netvm = %q (default %v)", v, def)
	}
	if v, def := mustDomain(t, db, "sys-net").Prop("netvm"); v != "" || def {
		t.Errorf("sys-net netvm = %q (default %v)", v, def)
	}
}

func boolErr(ok bool) error {
	if !ok {
		return fmt.Errorf("nothing to undo")
	}
	return nil
}

// N processes and two goroutines update pedos.xml at once; no update is lost.
func TestConcurrentWriters(t *testing.T) {
	h := newHost(t)
	const n, m = 5, 20
	var cmds []*exec.Cmd
	var errs []*bytes.Buffer
	for i := range n {
		cmd := helper(h, "writer", fmt.Sprintf("PEDOS_HOST_TEST_ID=%d", i), fmt.Sprintf("PEDOS_HOST_TEST_M=%d", m))
		var buf bytes.Buffer
		cmd.Stderr = &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		errs = append(errs, &buf)
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for j := range m {
				err := h.Update(func(db *DB) error {
					return mustDomain(t, db, "dom0").SetFeature(fmt.Sprintf("g%d-%d", g, j), "1")
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer %d: %v\n%s", i, err, errs[i])
		}
	}
	feats := mustDomain(t, mustLoad(t, h), "dom0").Features()
	if len(feats) != (n+2)*m {
		t.Errorf("%d features, want %d", len(feats), (n+2)*m)
	}
	have := map[string]bool{}
	for _, f := range feats {
		have[f.Name] = true
	}
	for i := range n {
		for j := range m {
			if !have[fmt.Sprintf("w%d-%d", i, j)] {
				t.Errorf("update w%d-%d lost", i, j)
			}
		}
	}
	if tmp := tempGlob(t, h); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// A writer killed between writing its temp file and the rename leaves the
// old pedos.xml intact and the host usable.
func TestCrashDuringSave(t *testing.T) {
	h := newHost(t)
	before := readFile(t, h.path(DBFile))
	cmd := helper(h, "crash")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if tmp, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- tmp
				return
			}
		}
		close(ready)
	}()
	var tmp string
	select {
	case tmp = <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("helper never reached the rename")
	}
	if tmp == "" {
		cmd.Wait()
		t.Fatalf("helper ended early: %s", stderr.String())
	}
	if !bytes.Contains(readFile(t, tmp), []byte(`<feature name="crash">1</feature>`)) {
		t.Fatal("temp file does not hold the new database")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed: %v", err)
	}

	if !bytes.Equal(readFile(t, h.path(DBFile)), before) {
		t.Fatal("pedos.xml changed")
	}
	if _, ok := mustDomain(t, mustLoad(t, h), "dom0").Feature("crash"); ok {
		t.Fatal("half-saved update is visible")
	}
	if !exists(tmp) {
		t.Fatal("expected the stale temp file to remain until the next save")
	}
	done := make(chan error, 1)
	go func() {
		done <- h.Update(func(db *DB) error { return mustDomain(t, db, "dom0").SetFeature("after", "1") })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Update blocked: the dead writer's lock was not released")
	}
	if _, ok := mustDomain(t, mustLoad(t, h), "dom0").Feature("after"); !ok {
		t.Error("later update lost")
	}
	if exists(tmp) {
		t.Error("stale temp file not cleaned by the next save")
	}
}
