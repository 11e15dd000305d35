package admintools_test

// Script commands for the qvm-backup scripts: reading an archive back,
// listing directories, file modes, Ctrl-C in the middle of a run, a
// disk that fills up while a backup runs, and backups of old Qubes
// releases.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// scriptTimeout bounds the waits of these commands.
const scriptTimeout = 30 * time.Second

// lsbackup ARCHIVE PASSFILE opens a backup with the passphrase on the first
// line of PASSFILE, reads every stored file to its end (which authenticates
// and decompresses each chunk) and prints the compression, then the stored
// files' names. "! lsbackup" expects the header to be refused (a wrong
// passphrase) and prints why.
func cmdLsbackup(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: lsbackup ARCHIVE PASSFILE")
	}
	w := ts.Stdout()
	pass, _, _ := strings.Cut(ts.ReadFile(args[1]), "\n")
	f, err := os.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	r, err := archive.NewReader(bufio.NewReader(f), archive.ReaderOptions{Passphrase: []byte(pass)})
	if neg {
		if err == nil {
			r.Close()
			ts.Fatalf("%s opened with the passphrase of %s", args[0], args[1])
		}
		fmt.Fprintln(w, err)
		return
	}
	ts.Check(err)
	defer r.Close()
	comp := "none"
	if h := r.Header(); h.Compressed {
		comp = h.CompressionFilter
	}
	fmt.Fprintf(w, "compression %s\n", comp)
	for {
		file, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		ts.Check(err)
		if _, err := io.Copy(io.Discard, file); err != nil {
			ts.Fatalf("%s: %v", file.Name, err)
		}
		fmt.Fprintln(w, file.Name)
	}
}

// lsdir DIR prints the names in DIR, hidden ones included, one a line.
func cmdLsdir(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: lsdir DIR")
	}
	w := ts.Stdout() // even when there is nothing to print, so stdout is this command's
	entries, err := os.ReadDir(ts.MkAbs(args[0]))
	ts.Check(err)
	for _, e := range entries {
		fmt.Fprintln(w, e.Name())
	}
}

// one VAR GLOB sets $VAR to the one path that matches GLOB.
func cmdOne(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: one VAR GLOB")
	}
	m, err := filepath.Glob(ts.MkAbs(args[1]))
	ts.Check(err)
	if len(m) != 1 {
		ts.Fatalf("%s matches %d files, want one: %q", args[1], len(m), m)
	}
	ts.Setenv(args[0], m[0])
}

// newest VAR GLOB sets VAR to the last of the files GLOB matches, in name
// order: the newest backup in a directory (qvm-backup's names sort by time,
// a second one in the same second getting "-2").
func cmdNewest(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: newest VAR GLOB")
	}
	m, err := filepath.Glob(ts.MkAbs(args[1]))
	ts.Check(err)
	if len(m) == 0 {
		ts.Fatalf("%s matches nothing", args[1])
	}
	slices.SortFunc(m, func(a, b string) int { return cmpBackupNames(a, b) })
	ts.Setenv(args[0], m[len(m)-1])
}

// cmpBackupNames orders backup file names by time, then by their "-N"
// suffix as a number.
func cmpBackupNames(a, b string) int {
	split := func(s string) (string, int) {
		base, n := s, 1
		if i := strings.LastIndex(s, "-"); i > len(s)-4 {
			if k, err := strconv.Atoi(s[i+1:]); err == nil {
				base, n = s[:i], k
			}
		}
		return base, n
	}
	ab, an := split(a)
	bb, bn := split(b)
	if c := strings.Compare(ab, bb); c != 0 {
		return c
	}
	return an - bn
}

// cmpsparse FILE1 FILE2 compares two sparse files (volume images) quickly:
// their lengths, and their bytes wherever either holds data; elsewhere
// both are holes, which read as zeros.
func cmdCmpsparse(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cmpsparse FILE1 FILE2")
	}
	var files [2]*os.File
	var sizes [2]int64
	for i, name := range args {
		f, err := os.Open(ts.MkAbs(name))
		ts.Check(err)
		defer f.Close()
		fi, err := f.Stat()
		ts.Check(err)
		files[i], sizes[i] = f, fi.Size()
	}
	if sizes[0] != sizes[1] {
		ts.Fatalf("%s is %d bytes long, %s %d", args[0], sizes[0], args[1], sizes[1])
	}
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, f := range files {
		regions, err := sparsetar.DataRegions(f, sizes[0])
		ts.Check(err)
		for _, r := range regions {
			for off := r.Offset; off < r.Offset+r.Length; {
				n := int(min(int64(len(a)), r.Offset+r.Length-off))
				_, err := files[0].ReadAt(a[:n], off)
				ts.Check(err)
				_, err = files[1].ReadAt(b[:n], off)
				ts.Check(err)
				if !bytes.Equal(a[:n], b[:n]) {
					ts.Fatalf("%s and %s differ between bytes %d and %d", args[0], args[1], off, off+int64(n))
				}
				off += int64(n)
			}
		}
	}
}

// perm FILE MODE checks FILE's permission bits (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fi.Mode().Perm(); uint64(got) != want {
		ts.Fatalf("%s has mode %04o, want %04o", args[0], got, want)
	}
}

// interrupt [-TERM|-HUP|-KILL] CODE WHEN PROG [ARG...] runs PROG like
// exec, presses Ctrl-C (sends it SIGINT; or SIGTERM, SIGHUP, SIGKILL) as
// soon as WHEN holds, and checks that it then exits with status CODE (-1:
// killed by the signal). WHEN is a GLOB, true once a file matching it
// holds data, or stderr:TEXT, true once PROG has written TEXT to its
// standard error. PROG's output becomes stdout and stderr.
func cmdInterrupt(ts *testscript.TestScript, neg bool, args []string) {
	sig := os.Signal(os.Interrupt)
	if len(args) > 0 {
		if s, ok := map[string]os.Signal{"-TERM": syscall.SIGTERM, "-HUP": syscall.SIGHUP, "-KILL": syscall.SIGKILL}[args[0]]; ok {
			sig, args = s, args[1:]
		}
	}
	if neg || len(args) < 3 {
		ts.Fatalf("usage: interrupt [-TERM|-HUP|-KILL] CODE GLOB|stderr:TEXT PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	prog, err := exec.LookPath(args[2])
	ts.Check(err)
	cmd := exec.Command(prog, args[3:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = scriptEnv(ts)
	var stdout bytes.Buffer
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child PROG started keeps the output pipes open if PROG is killed
	// (SIGKILL leaves it no chance to stop it): stop waiting for them.
	cmd.WaitDelay = time.Second
	ts.Check(cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ready := func() bool {
		if text, ok := strings.CutPrefix(args[1], "stderr:"); ok {
			return strings.Contains(stderr.String(), text)
		}
		if m, _ := filepath.Glob(ts.MkAbs(args[1])); len(m) > 0 {
			if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 0 {
				ts.Logf("%s holds %d bytes", m[0], fi.Size())
				return true
			}
		}
		return false
	}
	var err2 error
	deadline := time.Now().Add(scriptTimeout)
	for !ready() {
		select {
		case err2 = <-done:
			ts.Logf("[stderr]\n%s", stderr.String())
			ts.Fatalf("%s ended (%v) before %s", args[2], err2, args[1])
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			ts.Fatalf("%s: no %s within %v", args[2], args[1], scriptTimeout)
		}
	}
	ts.Logf("sending %v", sig)
	ts.Check(cmd.Process.Signal(sig))
	select {
	case err2 = <-done:
	case <-time.After(scriptTimeout):
		cmd.Process.Kill()
		<-done
		ts.Fatalf("%s did not end within %v of %v", args[2], scriptTimeout, sig)
	}
	ts.Stdout().Write(stdout.Bytes())
	ts.Stderr().Write([]byte(stderr.String()))
	checkExit(ts, args[2], err2, want)
}

// checkExit checks that err, what Wait returned for prog, is exit status
// want (-1: death by a signal).
func checkExit(ts *testscript.TestScript, prog string, err error, want int) {
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode() // -1 when a signal ended it
	} else if err != nil {
		ts.Fatalf("%s: %v", prog, err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d (%v), want %d", prog, got, err, want)
	}
}

// lockedBuffer is a bytes.Buffer that one goroutine may write while
// another reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scriptEnv is the script's environment for a program started by a
// command of ours.
func scriptEnv(ts *testscript.TestScript) []string {
	names := []string{"PATH", "HOME", "TMPDIR", "WORK", "PEDOS_ROOT", "REPO"}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	var env []string
	for _, k := range names {
		if v := ts.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// canMountTmpfs reports, once, whether tmpfs file systems can be mounted
// here (as root): the condition [need:tmpfs].
var canMountTmpfs = sync.OnceValue(func() bool {
	dir, err := os.MkdirTemp("", "tmpfs-probe")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	if exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).Run() != nil {
		return false
	}
	return syscall.Unmount(dir, 0) == nil
})

// tmpfs DIR SIZE mounts a tmpfs of SIZE on DIR (made if need be) until the
// end of the script. Scripts check [need:tmpfs] first.
func cmdTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tmpfs DIR SIZE")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+args[1], "tmpfs", dir).CombinedOutput(); err != nil {
		ts.Fatalf("mount: %v: %s", err, bytes.TrimSpace(out))
	}
	ts.Defer(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			ts.Logf("unmounting %s: %v; detaching it", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// fill DIR FREE writes DIR/filler until the file system of DIR has at most
// FREE bytes free.
func cmdFill(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fill DIR FREE")
	}
	dir := ts.MkAbs(args[0])
	leave, err := cli.ParseSize(args[1])
	ts.Check(err)
	var st syscall.Statfs_t
	ts.Check(syscall.Statfs(dir, &st))
	free := int64(st.Bavail) * st.Bsize
	if free <= leave {
		return
	}
	ts.Check(os.WriteFile(filepath.Join(dir, "filler"), bytes.Repeat([]byte{0xa5}, int(free-leave)), 0o600))
}

// fifos holds the write ends that "fifo open" keeps open, by path.
var fifos sync.Map

// fifo make PATH makes a named pipe.
// fifo open PATH waits until a program opens PATH for reading, and keeps
// its write end open, so that the program's read waits for "fifo write".
// fifo write PATH FILE writes FILE into it and closes it.
func cmdFifo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: fifo make|open|write PATH [FILE]")
	}
	path := ts.MkAbs(args[1])
	switch {
	case args[0] == "make" && len(args) == 2:
		ts.Check(syscall.Mkfifo(path, 0o600))
	case args[0] == "open" && len(args) == 2:
		// Opening for writing without blocking fails (ENXIO) as long as
		// no one has the pipe open for reading.
		deadline := time.Now().Add(scriptTimeout)
		for {
			fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
			if err == nil {
				fifos.Store(path, os.NewFile(uintptr(fd), path))
				ts.Defer(func() { // a script that failed before fifo write
					if f, ok := fifos.LoadAndDelete(path); ok {
						f.(*os.File).Close()
					}
				})
				return
			}
			if !errors.Is(err, syscall.ENXIO) {
				ts.Fatalf("opening %s: %v", args[1], err)
			}
			if time.Now().After(deadline) {
				ts.Fatalf("no reader opened %s within %v", args[1], scriptTimeout)
			}
			time.Sleep(2 * time.Millisecond)
		}
	case args[0] == "write" && len(args) == 3:
		f, ok := fifos.LoadAndDelete(path)
		if !ok {
			ts.Fatalf("fifo write %s: not opened with fifo open", args[1])
		}
		w := f.(*os.File)
		_, err := w.Write([]byte(ts.ReadFile(args[2])))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		ts.Check(err)
	default:
		ts.Fatalf("usage: fifo make|open|write PATH [FILE]")
	}
}

// mklegacy VARIANT SRC OUT [PASSFILE] builds an old Qubes backup of the
// fixture SRC (laid out like /var/lib/qubes, with its core2 qubes.xml as
// SRC/qubes.xml) with the programs the old writers ran
// (testutil.LegacyWriter): VARIANT 3 is a format 3 archive, encrypted and
// gzipped, cut into 1 KiB chunks (so that even gzipped files span
// several); 3-plain is one neither encrypted nor compressed, in 64 KiB
// chunks; 2 is a format 2 archive with the 2014 header, encrypted, in 40
// KiB volumes; 1 is a format 1 directory OUT. The layout (vm5/ or
// appvms/work/) is the backup_path of SRC/qubes.xml.
// The passphrase is the first line of PASSFILE.
func cmdMklegacy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 || len(args) > 4 || (args[0] != "1") != (len(args) == 4) {
		ts.Fatalf("usage: mklegacy 3|3-plain|2 SRC OUT PASSFILE, or mklegacy 1 SRC OUT")
	}
	t := scriptTB{ts}
	src, out := ts.MkAbs(args[1]), ts.MkAbs(args[2])
	xml := ts.ReadFile(filepath.Join(args[1], "qubes.xml"))
	if args[0] == "1" {
		dir := testutil.LegacyV1Dir(t, src, xml)
		ts.Check(os.Rename(dir, out))
		return
	}
	opts := map[string]testutil.LegacyOptions{
		"3":       {Version: 3, Encrypt: true, Compress: true, Chunk: 1 << 10},
		"3-plain": {Version: 3, Chunk: 64 << 10},
		"2":       {Version: 2, Encrypt: true, Chunk: 40},
	}
	o, ok := opts[args[0]]
	if !ok {
		ts.Fatalf("mklegacy: unknown variant %q", args[0])
	}
	pass, _, _ := strings.Cut(ts.ReadFile(args[3]), "\n")
	ts.Check(os.WriteFile(out, testutil.LegacyBackup(t, src, xml, []byte(pass), o), 0o600))
}

// scriptTB is what testutil's builders need of a test, for a script.
type scriptTB struct{ ts *testscript.TestScript }

func (scriptTB) Helper() {}

func (s scriptTB) Fatalf(format string, args ...any) { s.ts.Fatalf(format, args...) }

func (s scriptTB) TempDir() string {
	dir, err := os.MkdirTemp(s.ts.Getenv("TMPDIR"), "mklegacy-")
	s.ts.Check(err)
	return dir
}
