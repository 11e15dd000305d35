package qrexec_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/qrexec"
	"pedos.dev/backup/internal/testutil"
)

// The services run in this test binary, re-executed by the local transport.
func TestMain(m *testing.M) {
	qrexec.MaybeServe()
	os.Exit(m.Run())
}

// vms is the host's view of its VMs, as the host package will give it.
type vms struct {
	dirs    map[string]string
	running map[string]bool
}

func (v *vms) FS(vm string) (string, error) {
	dir, ok := v.dirs[vm]
	if !ok {
		return "", fmt.Errorf("no VM named %s", vm)
	}
	return dir, nil
}

func (v *vms) Running(vm string) bool { return v.running[vm] }

// newHost returns a transport to two VMs, "work" (running) and "off"
// (halted), and work's filesystem, which has /home/user/backups.
func newHost(t *testing.T) (*qrexec.Local, string) {
	t.Helper()
	testutil.RequireTool(t, "sh")
	fsdir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fsdir, "home/user/backups"), 0o755); err != nil {
		t.Fatal(err)
	}
	res := &vms{
		dirs:    map[string]string{"work": fsdir, "off": t.TempDir()},
		running: map[string]bool{"work": true},
	}
	return qrexec.NewLocal(res), fsdir
}

var backupName = regexp.MustCompile(`^qubes-backup-\d{4}-\d\d-\d\dT\d{6}(-\d+)?$`)

// dirNames lists a directory, hidden files included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(b)
	return b
}

func backup(t *testing.T, tr qrexec.Transport, location string, data []byte) (string, error) {
	t.Helper()
	sink, err := qrexec.OpenBackupSink(context.Background(), tr, "work", location)
	if err != nil {
		return "", err
	}
	// Uneven writes, to cross frame boundaries at odd places.
	for len(data) > 0 {
		n := min(len(data), 100_000)
		if _, err := sink.Write(data[:n]); err != nil {
			if cerr := sink.Commit(); cerr == nil {
				t.Fatalf("Commit after a failed Write (%v) succeeded", err)
			}
			return sink.Name(), err
		}
		data = data[n:]
	}
	return sink.Name(), sink.Commit()
}

func TestBackupToDirectory(t *testing.T) {
	tr, fsdir := newHost(t)
	data := randomBytes(3<<20+17, 1)
	start := time.Now()
	sink, err := qrexec.OpenBackupSink(context.Background(), tr, "work", "/home/user/backups")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Errorf("second Commit: %v", err)
	}
	if _, err := sink.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	sink.Abort(errors.New("too late")) // does nothing
	name := sink.Name()
	dir := filepath.Join(fsdir, "home/user/backups")
	names := dirNames(t, dir)
	if len(names) != 1 || !backupName.MatchString(names[0]) {
		t.Fatalf("backup directory holds %q, want one qubes-backup-YYYY-MM-DDTHHMMSS", names)
	}
	if want := "/home/user/backups/" + names[0]; name != want {
		t.Errorf("Name() = %q, want %q", name, want)
	}
	stamp, err := time.ParseInLocation("2006-01-02T150405", strings.TrimPrefix(names[0], "qubes-backup-"), time.Local)
	if err != nil || stamp.Before(start.Truncate(time.Second)) || stamp.After(time.Now()) {
		t.Errorf("file name %s is not the local time of the backup (%v)", names[0], err)
	}
	got, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("file holds %d bytes, not the %d sent", len(got), len(data))
	}
	if info, _ := os.Stat(filepath.Join(dir, names[0])); info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode())
	}
}

func TestBackupToRelativeDirectory(t *testing.T) {
	tr, fsdir := newHost(t)
	// Relative to the VM's top, which is the service's working directory.
	name, err := backup(t, tr, "home/user/backups", []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	names := dirNames(t, filepath.Join(fsdir, "home/user/backups"))
	if len(names) != 1 || name != "home/user/backups/"+names[0] {
		t.Fatalf("Name() = %q, directory holds %q", name, names)
	}
}

func TestBackupNeverOverwrites(t *testing.T) {
	tr, fsdir := newHost(t)
	dir := filepath.Join(fsdir, "home/user/backups")
	// Take every name the backup could get in the next seconds.
	now := time.Now()
	taken := map[string]bool{}
	for s := -1; s < 10; s++ {
		n := "qubes-backup-" + now.Add(time.Duration(s)*time.Second).Format("2006-01-02T150405")
		taken[n] = true
		if err := os.WriteFile(filepath.Join(dir, n), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name, err := backup(t, tr, "/home/user/backups", []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(name)
	if taken[base] || !taken[strings.TrimSuffix(base, "-2")] {
		t.Fatalf("backup saved as %s, want a taken name plus -2", base)
	}
	for n := range taken {
		if b, _ := os.ReadFile(filepath.Join(dir, n)); string(b) != "old" {
			t.Errorf("%s was overwritten", n)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, base)); string(b) != "new" {
		t.Errorf("%s holds %q", base, b)
	}
	if got := len(dirNames(t, dir)); got != len(taken)+1 {
		t.Errorf("%d files in the directory, want %d", got, len(taken)+1)
	}
}

func TestBackupToCommand(t *testing.T) {
	for _, tc := range []struct{ tool, location string }{
		{"cat", `sh -c 'cat > "home/user/backups/out file.bin"'`},
		{"dd", `dd "of=home/user/backups/out file.bin" bs=64k status=none`},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			tr, fsdir := newHost(t)
			testutil.RequireTool(t, tc.tool)
			data := randomBytes(5<<20+3, 2)
			name, err := backup(t, tr, tc.location, data)
			if err != nil {
				t.Fatal(err)
			}
			if name != "" {
				t.Errorf("Name() = %q for a command", name)
			}
			got, err := os.ReadFile(filepath.Join(fsdir, "home/user/backups/out file.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("command received %d bytes, not the %d sent", len(got), len(data))
			}
		})
	}
}

func TestCommandEnvironment(t *testing.T) {
	tr, fsdir := newHost(t)
	if _, err := backup(t, tr, `sh -c 'printf "%s|%s|%s|%s" "$PEDOS_VM" "$HOME" "$(pwd -P)" "$PEDOS_QREXEC_SERVICE" > env.txt'`, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(fsdir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(fsdir)
	if want := "work|" + filepath.Join(fsdir, "home/user") + "|" + real + "|"; string(got) != want {
		t.Errorf("command saw %q, want %q", got, want)
	}
}

func TestVMNotRunning(t *testing.T) {
	tr, _ := newHost(t)
	_, err := qrexec.OpenBackupSink(context.Background(), tr, "off", "/home/user/backups")
	if !errors.Is(err, qrexec.ErrNotRunning) || err.Error() != "VM off is not running" {
		t.Errorf("backup to a halted VM: %v", err)
	}
	_, err = qrexec.OpenRestoreSource(context.Background(), tr, "off", "/home/user/backups/x")
	if !errors.Is(err, qrexec.ErrNotRunning) {
		t.Errorf("restore from a halted VM: %v", err)
	}
	if _, err = qrexec.OpenBackupSink(context.Background(), tr, "nosuch", "/"); err == nil || !strings.Contains(err.Error(), "no VM named nosuch") {
		t.Errorf("backup to an unknown VM: %v", err)
	}
}

func TestBackupInvalidLocation(t *testing.T) {
	tr, fsdir := newHost(t)
	for _, loc := range []string{"/home/user/missing", "/home/user", "nosuchprogram --flag", "'unterminated"} {
		if loc == "/home/user" {
			// An existing file is not a directory.
			os.WriteFile(filepath.Join(fsdir, "home/user/file"), nil, 0o644)
			loc = "/home/user/file"
		}
		_, err := qrexec.OpenBackupSink(context.Background(), tr, "work", loc)
		var se *qrexec.ServiceError
		if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), "writing backup to VM work failed: Invalid command ") ||
			se.ExitCode != 1 {
			t.Errorf("backup to %q: %v", loc, err)
		}
	}
	if _, err := qrexec.OpenBackupSink(context.Background(), tr, "work", "\r\n"); err == nil {
		t.Error("empty location accepted")
	}
}

func TestBackupCommandFails(t *testing.T) {
	tr, fsdir := newHost(t)
	testutil.RequireTool(t, "head")
	data := randomBytes(4<<20, 3)

	_, err := backup(t, tr, `sh -c 'head -c 100 > x; echo "disk on fire" >&2; exit 3'`, data)
	var se *qrexec.ServiceError
	if !errors.As(err, &se) || se.ExitCode != 3 || !strings.Contains(err.Error(), "disk on fire (exit status 3)") ||
		!strings.HasPrefix(err.Error(), "writing backup to VM work failed: ") {
		t.Errorf("command exiting 3 mid-stream: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(fsdir, "x")); len(b) != 100 {
		t.Errorf("command got %d bytes", len(b))
	}

	// Success is no excuse for leaving data unread.
	_, err = backup(t, tr, `head -c 100 /dev/stdin`, data)
	if err == nil || !strings.Contains(err.Error(), "exited before reading all of the backup") {
		t.Errorf("command exiting 0 mid-stream: %v", err)
	}

	// A command that fails after reading everything.
	_, err = backup(t, tr, `sh -c 'cat > /dev/null; exit 7'`, data)
	if !errors.As(err, &se) || se.ExitCode != 7 {
		t.Errorf("command exiting 7 at the end: %v", err)
	}
}

func TestServiceErrorSanitised(t *testing.T) {
	tr, _ := newHost(t)
	_, err := backup(t, tr, `sh -c 'cat >/dev/null; printf "\033[2J\033]0;pwned\007bad\342\200\256txt\377\n" >&2; exit 5'`, nil)
	var se *qrexec.ServiceError
	if !errors.As(err, &se) {
		t.Fatalf("got %v", err)
	}
	if want := "?[2J?]0;pwned?bad?txt?"; se.Stderr != want {
		t.Errorf("stderr %q, want %q", se.Stderr, want)
	}
}

// pidFile waits for a command to write its pid into name.
func pidFile(t *testing.T, name string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(name)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
	}
	t.Fatalf("no pid in %s", name)
	return 0
}

// waitGone fails unless process pid ends soon. A zombie has ended: the test
// may run where nobody reaps orphans.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return
		}
	}
	t.Errorf("process %d is still running", pid)
}

// stopCases are the ways dom0 stops a backup before committing it.
var stopCases = []struct {
	name string
	stop func(cancel context.CancelFunc, s qrexec.Sink) error
}{
	{"Abort", func(_ context.CancelFunc, s qrexec.Sink) error {
		s.Abort(errors.New("source VM vanished"))
		return s.Commit()
	}},
	{"cancel", func(cancel context.CancelFunc, s qrexec.Sink) error {
		cancel()
		for {
			if _, err := s.Write(make([]byte, 1<<20)); err != nil {
				return err
			}
		}
	}},
}

func TestBackupStoppedDirectory(t *testing.T) {
	for _, tc := range stopCases {
		t.Run(tc.name, func(t *testing.T) {
			tr, fsdir := newHost(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sink, err := qrexec.OpenBackupSink(ctx, tr, "work", "/home/user/backups")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sink.Write(randomBytes(1<<20, 4)); err != nil {
				t.Fatal(err)
			}
			err = tc.stop(cancel, sink)
			if err == nil {
				t.Fatal("stopped backup reported success")
			}
			if tc.name == "cancel" && !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not say it was cancelled", err)
			}
			if names := dirNames(t, filepath.Join(fsdir, "home/user/backups")); len(names) != 0 {
				t.Errorf("left behind: %q", names)
			}
		})
	}
}

func TestBackupStoppedCommand(t *testing.T) {
	for _, tc := range stopCases {
		t.Run(tc.name, func(t *testing.T) {
			tr, fsdir := newHost(t)
			testutil.RequireTool(t, "sleep")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The command leaves a child behind; that must go too.
			sink, err := qrexec.OpenBackupSink(ctx, tr, "work",
				`sh -c 'sleep 1000 & echo $! > sleep.pid; echo $$ > sh.pid; cat > out.bin'`)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sink.Write(randomBytes(1<<20, 5)); err != nil {
				t.Fatal(err)
			}
			shPid := pidFile(t, filepath.Join(fsdir, "sh.pid"))
			sleepPid := pidFile(t, filepath.Join(fsdir, "sleep.pid"))
			if err := tc.stop(cancel, sink); err == nil {
				t.Fatal("stopped backup reported success")
			}
			waitGone(t, shPid)
			waitGone(t, sleepPid)
		})
	}
}

// A dom0 that dies mid-stream closes the connection without the end
// marker; that must not look like a complete backup.
func TestBackupTruncatedStream(t *testing.T) {
	tr, fsdir := newHost(t)
	conn, err := tr.Open(context.Background(), "work", qrexec.ServiceBackup)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "/home/user/backups\n")
	reply := make([]byte, 200)
	if n, err := conn.Read(reply); err != nil || !strings.HasPrefix(string(reply[:n]), "ready /home/user/backups/qubes-backup-") {
		t.Fatalf("reply %q, %v", reply[:n], err)
	}
	conn.Write([]byte{0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'})
	conn.CloseWrite()
	io.Copy(io.Discard, conn)
	if err := conn.Wait(); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("truncated stream: %v", err)
	}
	if names := dirNames(t, filepath.Join(fsdir, "home/user/backups")); len(names) != 0 {
		t.Errorf("left behind: %q", names)
	}
}

func TestLocationLine(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{strings.Repeat("a", qrexec.MaxLocation+1) + "\n", "location line is longer than 4096 bytes"},
		{"/home/user/backups", "no location line"},
		{"\r\n", "empty location"},
	} {
		tr, _ := newHost(t)
		conn, err := tr.Open(context.Background(), "work", qrexec.ServiceBackup)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, tc.line)
		conn.CloseWrite()
		io.Copy(io.Discard, conn)
		var se *qrexec.ServiceError
		if err := conn.Wait(); !errors.As(err, &se) || se.Stderr != tc.want {
			t.Errorf("line %.20q: %v, want %q", tc.line, err, tc.want)
		}
	}
	// The longest line is fine, and its CR/LF goes.
	tr, fsdir := newHost(t)
	os.WriteFile(filepath.Join(fsdir, "x"), []byte("data"), 0o644)
	loc := "cat x #"
	loc += strings.Repeat("a", qrexec.MaxLocation-len(loc))
	conn, err := tr.Open(context.Background(), "work", qrexec.ServiceRestore)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, loc+"\r\n")
	conn.CloseWrite()
	got, _ := io.ReadAll(conn)
	if err := conn.Wait(); err != nil || string(got) != "data" {
		t.Errorf("longest line: %q, %v", got, err)
	}
}

func TestUnknownService(t *testing.T) {
	tr, _ := newHost(t)
	conn, err := tr.Open(context.Background(), "work", "qubes.Nope")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "x\n")
	conn.CloseWrite()
	io.Copy(io.Discard, conn)
	if err := conn.Wait(); err == nil || !strings.Contains(err.Error(), `unknown service "qubes.Nope"`) {
		t.Errorf("unknown service: %v", err)
	}
}

func TestPathEscape(t *testing.T) {
	tr, fsdir := newHost(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o644)
	os.Symlink(outside, filepath.Join(fsdir, "home/user/out"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(fsdir, "home/user/secret"))
	// How many levels of .. lead from fsdir to / (and then to outside).
	up := strings.Repeat("/..", strings.Count(fsdir, "/"))

	for _, loc := range []string{"/../../etc", up + outside, "/home/user/out", "/home/user/out/"} {
		_, err := qrexec.OpenBackupSink(context.Background(), tr, "work", loc)
		if err == nil || !strings.Contains(err.Error(), "Invalid command") {
			t.Errorf("backup to %q: %v", loc, err)
		}
	}
	if names := dirNames(t, outside); len(names) != 1 {
		t.Errorf("written outside the VM: %q", names)
	}
	for _, loc := range []string{up + outside + "/secret", "/home/user/secret", "/home/user/out/secret"} {
		src, err := qrexec.OpenRestoreSource(context.Background(), tr, "work", loc)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(src)
		if err == nil || len(data) != 0 || !strings.Contains(err.Error(), "path escapes") {
			t.Errorf("restore from %q: %q, %v", loc, data, err)
		}
		src.Close()
	}
}

func TestInsideSymlinkAllowed(t *testing.T) {
	tr, fsdir := newHost(t)
	os.Symlink("backups", filepath.Join(fsdir, "home/user/link"))
	if _, err := backup(t, tr, "/home/user/link", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, filepath.Join(fsdir, "home/user/backups")); len(names) != 1 {
		t.Errorf("backups holds %q", names)
	}
}

func restore(t *testing.T, tr qrexec.Transport, location string) ([]byte, error) {
	t.Helper()
	src, err := qrexec.OpenRestoreSource(context.Background(), tr, "work", location)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(src)
	if cerr := src.Close(); (cerr == nil) != (err == nil) {
		t.Errorf("Close returned %v after reading returned %v", cerr, err)
	}
	return data, err
}

func TestRestore(t *testing.T) {
	tr, fsdir := newHost(t)
	data := randomBytes(2<<20+5, 6)
	os.WriteFile(filepath.Join(fsdir, "home/user/backups/x"), data, 0o600)

	for _, loc := range []string{"/home/user/backups/x", "cat home/user/backups/x", `sh -c "cat 'home/user/backups/x'"`} {
		got, err := restore(t, tr, loc)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("restore from %q: %d bytes, %v", loc, len(got), err)
		}
	}
}

func TestRestoreFailures(t *testing.T) {
	tr, _ := newHost(t)
	for _, tc := range []struct{ loc, want string }{
		{"/home/user/backups/missing", "Invalid command /home/user/backups/missing (not a file in the VM, nor a program) (exit status 1)"},
		{"/home/user/backups", "Invalid command /home/user/backups"},
		{`sh -c 'printf partial; echo "tape jammed" >&2; exit 4'`, "tape jammed (exit status 4)"},
		{`printf partial; kill -9 $$`, "command ended: signal: killed (exit status 1)"},
	} {
		got, err := restore(t, tr, tc.loc)
		if err == nil || !strings.HasPrefix(err.Error(), "reading backup from VM work failed: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("restore from %q: %v, want %q", tc.loc, err, tc.want)
		}
		if strings.Contains(tc.loc, "partial") && string(got) != "partial" {
			t.Errorf("restore from %q: read %q", tc.loc, got)
		}
	}
}

func TestRestoreStopped(t *testing.T) {
	for _, how := range []string{"Close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			tr, fsdir := newHost(t)
			testutil.RequireTool(t, "cat")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src, err := qrexec.OpenRestoreSource(ctx, tr, "work", `sh -c 'echo $$ > sh.pid; cat /dev/zero'`)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(src, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			pid := pidFile(t, filepath.Join(fsdir, "sh.pid"))
			if how == "Close" {
				if err := src.Close(); err != nil {
					t.Errorf("Close before the end: %v", err)
				}
			} else {
				cancel()
				if _, err := io.Copy(io.Discard, src); !errors.Is(err, context.Canceled) {
					t.Errorf("reading after cancel: %v", err)
				}
			}
			waitGone(t, pid)
		})
	}
}

// Streams far larger than any buffer pass through in constant memory.
func TestLargeStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("large stream")
	}
	const size = 64 << 20
	const allocLimit = 4 << 20
	tr, fsdir := newHost(t)
	chunk := make([]byte, 1<<20)
	gen := rand.NewChaCha8([32]byte{7})

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sink, err := qrexec.OpenBackupSink(context.Background(), tr, "work", "/home/user/backups")
	if err != nil {
		t.Fatal(err)
	}
	sent := sha256.New()
	for range size / len(chunk) {
		gen.Read(chunk)
		sent.Write(chunk)
		if _, err := sink.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > allocLimit {
		t.Errorf("backup of %d MiB allocated %d KiB", size>>20, a>>10)
	}
	file := filepath.Join(fsdir, sink.Name())
	if info, err := os.Stat(file); err != nil || info.Size() != size {
		t.Fatalf("backup file: %v", err)
	}

	runtime.ReadMemStats(&before)
	src, err := qrexec.OpenRestoreSource(context.Background(), tr, "work", sink.Name())
	if err != nil {
		t.Fatal(err)
	}
	received := sha256.New()
	n, err := io.CopyBuffer(received, src, chunk)
	if err != nil || n != size {
		t.Fatalf("restored %d bytes: %v", n, err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > allocLimit {
		t.Errorf("restore of %d MiB allocated %d KiB", size>>20, a>>10)
	}
	if !bytes.Equal(sent.Sum(nil), received.Sum(nil)) {
		t.Error("restored stream differs from the one backed up")
	}
}
