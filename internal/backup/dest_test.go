package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/testutil"
)

func TestDestinationFile(t *testing.T) {
	h := demoHost(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "my backup")
	opts := testOptions(Destination{Path: path})
	opts.VMs = []string{"personal", "dom0"}
	p, res := mustRun(t, h, opts, nil)
	if p.Target.Kind != ToFile || res.Location != path || len(res.Warnings) != 0 {
		t.Errorf("target %+v, location %q, warnings %q", p.Target, res.Location, res.Warnings)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"my backup"}) {
		t.Errorf("directory holds %q", names)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkArchive(t, h, f, opts.VMs, readOpts(0))
}

// A relative path is a path when it starts with "." ("./x", "../x").
func TestDestinationRelativePath(t *testing.T) {
	h := demoHost(t)
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir("sub", 0o755)
	opts := testOptions(Destination{Path: "./sub/b"})
	opts.VMs = []string{"work"}
	_, res := mustRun(t, h, opts, nil)
	if res.Location != filepath.Join(dir, "sub", "b") {
		t.Errorf("location %q", res.Location)
	}
}

// An existing file is never overwritten; a missing directory is a
// problem; so is no destination at all.
func TestDestinationProblems(t *testing.T) {
	h := demoHost(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "old-backup")
	os.WriteFile(existing, []byte("precious"), 0o600)
	for _, c := range []struct {
		path string
		code ProblemCode
	}{
		{existing, DestinationExists},
		{filepath.Join(dir, "nosuch", "file"), DirMissing},
		{filepath.Join(dir, "nosuchdir") + "/", DirMissing},
		{"", NoDestination},
		{"no-such-program-xyz --to somewhere", CommandNotFound},
	} {
		opts := testOptions(Destination{Path: c.path})
		p, err := NewPlan(t.Context(), h, opts)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, p, c.code)
		if _, err := Run(context.Background(), p, nil, nil); err == nil {
			t.Errorf("%q: Run succeeded", c.path)
		}
	}
	if data, _ := os.ReadFile(existing); string(data) != "precious" {
		t.Error("the existing file was changed")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"old-backup"}) {
		t.Errorf("directory holds %q", names)
	}
}

func TestDestinationStdoutAndUncompressed(t *testing.T) {
	h := demoHost(t)
	var buf bytes.Buffer
	opts := testOptions(Destination{Path: "-"})
	opts.Compression = "none"
	p, res := mustRun(t, h, opts, &buf)
	if p.Target.Kind != ToStdout || res.Location != "" || res.Bytes != int64(buf.Len()) {
		t.Errorf("target %+v, result %+v, %d bytes written", p.Target, res, buf.Len())
	}
	c := checkArchive(t, h, &buf, defaultVMs, readOpts(0))
	if c.header.Compressed {
		t.Error("compressed")
	}
	if int64(buf.Len()) > p.EstimatedArchiveSize {
		t.Errorf("archive %d bytes, estimate %d", buf.Len(), p.EstimatedArchiveSize)
	}
}

func TestDestinationCommand(t *testing.T) {
	testutil.RequireTool(t, "sh")
	h := demoHost(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	opts := testOptions(Destination{Path: fmt.Sprintf("cat > '%s'", out)})
	opts.VMs = []string{"work", "vault"}
	p, res := mustRun(t, h, opts, nil)
	if p.Target.Kind != ToCommand || res.Location != "" {
		t.Errorf("target %+v, location %q", p.Target, res.Location)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkArchive(t, h, f, opts.VMs, readOpts(0))
}

// A command that fails is reported with its exit status and output, and
// the backup counts as failed.
func TestDestinationCommandFails(t *testing.T) {
	testutil.RequireTool(t, "sh")
	testutil.RequireTool(t, "head")
	h := demoHost(t)
	for _, c := range []struct{ line, want string }{
		// Reads a little, then gives up: the pipe breaks under the writer.
		{"head -c 1000 >/dev/null; echo 'upload refused' >&2; exit 3", "upload refused"},
		// Reads everything but fails at the end.
		{"cat >/dev/null; echo 'disk quota exceeded' >&2; exit 4", "exit status 4"},
	} {
		opts := testOptions(Destination{Path: c.line})
		p := mustPlan(t, h, opts)
		before := timestamps(t, h)
		_, err := Run(context.Background(), p, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.line, err, c.want)
		}
		if !mapsEqual(before, timestamps(t, h)) {
			t.Error("backup_timestamp set after a failure")
		}
	}
}

func TestDestinationVM(t *testing.T) {
	h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(Destination{VM: "work", Path: "/home/user"})
	opts.VMs = []string{"personal", "vault", "work"} // work: backed up while receiving, from its committed state
	p, res := mustRun(t, h, opts, nil)
	if p.Target.Kind != ToVM || p.Target.VM != "work" {
		t.Errorf("target %+v", p.Target)
	}
	if !regexp.MustCompile(`^/home/user/qubes-backup-\d{4}-\d\d-\d\dT\d{6}$`).MatchString(res.Location) {
		t.Errorf("location %q", res.Location)
	}
	fsdir, err := h.FS("work")
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(fsdir, "home", "user")
	if names := dirNames(t, home); len(names) != 1 || "/home/user/"+names[0] != res.Location {
		t.Errorf("VM home holds %q", names)
	}
	f, err := os.Open(filepath.Join(fsdir, res.Location))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkArchive(t, h, f, opts.VMs, readOpts(0))
}

func TestDestinationVMProblems(t *testing.T) {
	h := demoHost(t)
	for _, c := range []struct {
		dest Destination
		code ProblemCode
	}{
		{Destination{VM: "personal", Path: "/home/user"}, DestVMNotRunning},
		{Destination{VM: "nosuch", Path: "/home/user"}, DestVMUnknown},
		{Destination{VM: "personal", Path: ""}, NoDestination},
	} {
		p, err := NewPlan(t.Context(), h, testOptions(c.dest))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, p, c.code)
	}
	// The location is checked by the VM before any data is sent.
	if err := h.Start("personal"); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, h, testOptions(Destination{VM: "personal", Path: "/no/such/dir"}))
	_, err := Run(context.Background(), p, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Invalid command") {
		t.Errorf("bad location in VM: %v", err)
	}
}

func TestFilterNotInstalled(t *testing.T) {
	h := demoHost(t)
	dir := t.TempDir()
	opts := testOptions(Destination{Path: dir})
	opts.Compression = "no-such-zipper"
	p, err := NewPlan(t.Context(), h, opts)
	if err != nil {
		t.Fatal(err)
	}
	pr := wantProblem(t, p, FilterNotInstalled)
	if pr.Subject != "no-such-zipper" || pr.Hint == "" {
		t.Errorf("problem %+v", pr)
	}
	opts.Compression = "gzip -9"
	p, _ = NewPlan(t.Context(), h, opts)
	wantProblem(t, p, BadCompression)
	if _, err := Run(context.Background(), p, nil, nil); err == nil {
		t.Error("Run succeeded")
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("wrote %q", names)
	}
}

// An installed external program works as a filter.
func TestExternalFilter(t *testing.T) {
	testutil.RequireTool(t, "xz")
	h := demoHost(t)
	var buf bytes.Buffer
	opts := testOptions(Destination{Path: "-"})
	opts.Compression = "xz"
	opts.VMs = []string{"work"}
	mustRun(t, h, opts, &buf)
	if c := checkArchive(t, h, &buf, opts.VMs, readOpts(0)); c.header.CompressionFilter != "xz" {
		t.Errorf("header %+v", c.header)
	}
}

// The dom0 home is not backed up into itself.
func TestHomeIntoItself(t *testing.T) {
	h := demoHost(t)
	u, err := h.Dom0()
	if err != nil {
		t.Fatal(err)
	}
	inHome := filepath.Join(u.Home, "Backups")
	os.Mkdir(inHome, 0o755)
	// Also through a symlink from outside.
	link := filepath.Join(t.TempDir(), "backups")
	os.Symlink(inHome, link)
	for _, path := range []string{u.Home, inHome, link, filepath.Join(inHome, "file")} {
		p, err := NewPlan(t.Context(), h, testOptions(Destination{Path: path}))
		if err != nil {
			t.Fatal(err)
		}
		pr := wantProblem(t, p, DestinationInHome)
		if !slices.Contains(pr.Resolve, ExcludeDom0Home) || pr.Hint == "" {
			t.Errorf("problem %+v", pr)
		}
	}
	if names := dirNames(t, inHome); len(names) != 0 {
		t.Errorf("wrote %q", names)
	}
	// Without dom0 it is fine.
	opts := testOptions(Destination{Path: inHome})
	opts.Exclude = []string{"dom0"}
	mustPlan(t, h, opts)
}

// Cancelling mid-run leaves no file with the final name and no temporary
// file, and sets no backup_timestamp.
func TestCancel(t *testing.T) {
	testutil.RequireTool(t, "sh")
	h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	fsdir, _ := h.FS("work")
	for _, c := range []struct {
		name string
		dest func(dir string) Destination
		look func(dir string) string
	}{
		{"directory", func(dir string) Destination { return Destination{Path: dir} }, func(dir string) string { return dir }},
		{"file", func(dir string) Destination { return Destination{Path: filepath.Join(dir, "b")} }, func(dir string) string { return dir }},
		{"command", func(dir string) Destination { return Destination{Path: "cat > " + dir + "/out"} }, nil},
		{"VM", func(string) Destination { return Destination{VM: "work", Path: "/home/user"} },
			func(string) string { return filepath.Join(fsdir, "home/user") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			before := timestamps(t, h)
			opts := testOptions(c.dest(dir))
			opts.chunkSize = 256 << 10 // so that chunks are written before the cancel
			opts.syncProgress = true   // the cancel comes at the 6th update
			p := mustPlan(t, h, opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			writing := 0
			var partial []string
			rep := progress.Func(func(e progress.Event) {
				if e.Stage == progress.Writing && e.Kind == progress.Update {
					if writing++; writing == 6 {
						if c.look != nil {
							partial = dirNames(t, c.look(dir))
						}
						cancel()
					}
				}
			})
			_, err := Run(ctx, p, nil, rep)
			if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
			if c.look != nil {
				if len(partial) != 1 || !strings.HasSuffix(partial[0], ".part") {
					t.Errorf("while running, the destination held %q, want one hidden .part file", partial)
				}
				if names := dirNames(t, c.look(dir)); len(names) != 0 {
					t.Errorf("left %q", names)
				}
			}
			if !mapsEqual(before, timestamps(t, h)) {
				t.Error("backup_timestamp set after a cancel")
			}
		})
	}
}

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

var errDevice = errors.New("device unplugged")

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		k := f.n
		f.n = 0
		return k, errDevice
	}
	f.n -= len(b)
	return len(b), nil
}

func TestFailingWriter(t *testing.T) {
	h := demoHost(t)
	before := timestamps(t, h)
	for _, n := range []int{0, 100, 30000, 2 << 20} {
		p := mustPlan(t, h, testOptions(Destination{Path: "-"}))
		rec := &recorder{}
		_, err := Run(context.Background(), p, &failAfter{n: n}, rec)
		if !errors.Is(err, errDevice) || !strings.Contains(err.Error(), "backup failed") {
			t.Errorf("after %d bytes: %v", n, err)
		}
		// The VM whose file the failure stopped, if any, failed with it;
		// none is done after it.
		failed := false
		for _, e := range rec.events {
			switch {
			case e.Kind == progress.VMFailed && (failed || e.VM == "" || !errors.Is(e.Err, errDevice)):
				t.Errorf("after %d bytes: %+v", n, e)
			case e.Kind == progress.VMFailed:
				failed = true
			case e.Kind == progress.VMDone && failed, e.Stage == progress.Done:
				t.Errorf("after %d bytes: %+v after the failure", n, e)
			}
		}
	}
	if !mapsEqual(before, timestamps(t, h)) {
		t.Error("backup_timestamp set after a failure")
	}
}

// mountTmpfs mounts a small tmpfs (root only) and unmounts it at the end.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot mount a tmpfs under CI (it runs as root): %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// A destination without room for the estimate is a problem before
// anything is written.
func TestNoSpaceProblem(t *testing.T) {
	h := demoHost(t)
	dir := mountTmpfs(t, "2m")
	p, err := NewPlan(t.Context(), h, testOptions(Destination{Path: dir}))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, p, NoSpace)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("wrote %q", names)
	}
}

// A disk that fills up during the backup (here: after the plan was made)
// fails it with a clear error and leaves nothing behind.
func TestDiskFull(t *testing.T) {
	h := demoHost(t)
	dir := mountTmpfs(t, "64m")
	p := mustPlan(t, h, testOptions(Destination{Path: dir}))
	filler := filepath.Join(dir, "filler")
	var st syscall.Statfs_t
	syscall.Statfs(dir, &st)
	free := int64(st.Bavail) * int64(st.Bsize)
	if err := os.WriteFile(filler, make([]byte, free-4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	before := timestamps(t, h)
	_, err := Run(context.Background(), p, nil, nil)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("error: %v", err)
	if names := dirNames(t, dir); !slices.Equal(names, []string{"filler"}) {
		t.Errorf("left %q", names)
	}
	if !mapsEqual(before, timestamps(t, h)) {
		t.Error("backup_timestamp set after a failure")
	}
}
