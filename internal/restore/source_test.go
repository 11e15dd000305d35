package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/testutil"
)

// archiveFile writes the demo archive to a file and returns its path.
func archiveFile(t *testing.T) string {
	t.Helper()
	data, _ := goodArchive(t)
	f := filepath.Join(t.TempDir(), "backup.bin")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLocationKind(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "backup")
	os.WriteFile(file, nil, 0o600)
	t.Chdir(dir)
	for _, c := range []struct {
		loc  Location
		want SourceKind
	}{
		{Location{Path: dir}, FromDir},
		{Location{Path: file}, FromFile},
		{Location{Path: "backup"}, FromFile}, // an existing file, though not a path
		{Location{Path: "./nosuch"}, FromFile},
		{Location{Path: "/nosuch"}, FromFile},
		{Location{Path: "-"}, FromStdin},
		{Location{Path: "-", VM: "dom0"}, FromStdin},
		{Location{Path: "cat backup"}, FromCommand},
		{Location{Path: "/backup.bin", VM: "work"}, FromVM},
	} {
		if got := c.loc.Kind(); got != c.want {
			t.Errorf("%+v: kind %d, want %d", c.loc, got, c.want)
		}
	}
}

// verifySource opens src with the test passphrase and verifies it all,
// then finishes the source.
func verifySource(t *testing.T, src *Source) {
	t.Helper()
	b, err := src.Open(t.Context(), OpenOptions{Passphrase: testPass})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := NewPlan(nil, b, PlanOptions{VerifyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyOnly(t.Context(), b, p, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.Finish(); err != nil {
		t.Fatal(err)
	}
}

// A wrong passphrase is retried without starting over: the source is
// reopened (the file opened again, the command run again) and opened with
// another passphrase.
func TestOpenSourceRetryPassphrase(t *testing.T) {
	testutil.RequireTool(t, "sh")
	file := archiveFile(t)
	// The command stays after sending the archive: only Close, which kills
	// it, lets the wrong attempt end.
	for _, loc := range []Location{{Path: file}, {Path: "cat '" + file + "'; exec sleep 60"}} {
		src, err := OpenSource(t.Context(), loc, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !src.CanReopen() {
			t.Fatalf("%s: cannot reopen", loc.Path)
		}
		_, err = src.Open(t.Context(), OpenOptions{Passphrase: []byte("wrong horse")})
		if !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("%s: wrong passphrase: %v", loc.Path, err)
		}
		if src, err = src.Reopen(t.Context()); err != nil {
			t.Fatal(err)
		}
		if loc.Path == file {
			verifySource(t, src)
			continue
		}
		// Sent whole, the command then sleeps: Finish would wait for it,
		// so this one is closed (killed) after the pass.
		b, err := src.Open(t.Context(), OpenOptions{Passphrase: testPass})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := NewPlan(nil, b, PlanOptions{VerifyOnly: true})
		if _, err := VerifyOnly(t.Context(), b, p, nil); err != nil {
			t.Fatal(err)
		}
		if err := src.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

// A command that fails is a failure of the source: before the archive's
// header, Open names it; after a complete archive, Finish does.
func TestSourceCommandFailure(t *testing.T) {
	testutil.RequireTool(t, "sh")
	file := archiveFile(t)
	src, err := OpenSource(t.Context(), Location{Path: "echo no backup here >&2; exit 3"}, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Open(t.Context(), OpenOptions{Passphrase: testPass})
	var se *SourceError
	var ee *exec.ExitError
	if !errors.As(err, &se) || !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.HasPrefix(err.Error(), "the backup source failed: ") {
		t.Fatalf("open: %v", err)
	}

	var stderr bytes.Buffer
	src, err = OpenSource(t.Context(), Location{Path: "cat '" + file + "'; echo failed late >&2; exit 4"}, SourceOptions{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.Open(t.Context(), OpenOptions{Passphrase: testPass})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, _ := NewPlan(nil, b, PlanOptions{VerifyOnly: true})
	if _, err := VerifyOnly(t.Context(), b, p, nil); err != nil {
		t.Fatal(err)
	}
	err = src.Finish()
	if !errors.As(err, &se) || !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("finish: %v", err)
	}
	if stderr.String() != "failed late\n" {
		t.Errorf("the command's stderr: %q", stderr.String())
	}
}

func TestSourceStdinAndDir(t *testing.T) {
	data, _ := goodArchive(t)
	src, err := OpenSource(t.Context(), Location{Path: "-"}, SourceOptions{Stdin: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if src.CanReopen() {
		t.Error("standard input can be reopened")
	}
	verifySource(t, src)
	if _, err := src.Reopen(t.Context()); !errors.Is(err, ErrCannotReopen) {
		t.Errorf("reopen: %v", err)
	}
	if _, err := OpenSource(t.Context(), Location{Path: "-"}, SourceOptions{}); err == nil {
		t.Error("no stdin: opened")
	}
	// A directory is a format 1 backup; this one is none.
	src, err = OpenSource(t.Context(), Location{Path: t.TempDir()}, SourceOptions{})
	if err != nil || src.Kind != FromDir {
		t.Fatal(src, err)
	}
	if _, err := src.Open(t.Context(), OpenOptions{}); err == nil {
		t.Error("an empty directory opened as a backup")
	}
}

// A file in a VM, through the VM's qubes.Restore service.
func TestSourceVM(t *testing.T) {
	data, _ := goodArchive(t)
	h := demoHost(t)
	dir, err := h.FS("work")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backup.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	loc := Location{Path: "/backup.bin", VM: "work"}
	if _, err := OpenSource(t.Context(), loc, SourceOptions{Host: h}); err == nil {
		t.Fatal("opened from a VM that is not running")
	}
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	src, err := OpenSource(t.Context(), loc, SourceOptions{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Open(t.Context(), OpenOptions{Passphrase: []byte("wrong horse")}); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if src, err = src.Reopen(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifySource(t, src)
}

// stallingReader says when it is first read, then blocks until closed.
type stallingReader struct {
	reading chan struct{}
	r       *io.PipeReader
}

func (s *stallingReader) Read(p []byte) (int, error) {
	select {
	case <-s.reading:
	default:
		close(s.reading)
	}
	return s.r.Read(p)
}

// Cancelling an Open that waits for its input returns at once, with an
// error that is ErrCancelled and the context's.
func TestOpenCancelled(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	in := &stallingReader{reading: make(chan struct{}), r: pr}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := Open(ctx, in, OpenOptions{Passphrase: testPass})
		done <- err
	}()
	<-in.reading
	cancel()
	err := <-done
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("open: %v", err)
	}

	// A command that sends nothing: cancelling stops it too.
	testutil.RequireTool(t, "sh")
	ctx, cancel = context.WithCancel(t.Context())
	src, err := OpenSource(ctx, Location{Path: "exec sleep 60"}, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := src.Open(ctx, OpenOptions{Passphrase: testPass})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, ErrCancelled) {
		t.Errorf("open: %v", err)
	}
	src.Close() // closed already: its outcome once more
	if _, err := OpenSource(ctx, Location{Path: "true"}, SourceOptions{}); !errors.Is(err, ErrCancelled) {
		t.Errorf("open source after the cancel: %v", err)
	}
}
