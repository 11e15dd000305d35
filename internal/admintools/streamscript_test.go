package admintools_test

// Script commands for how the tools end when their streams or their
// children are taken away: standard input or output closed, /dev/null or
// a terminal; a pipe that closes early; a child that must not outlive
// them.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/rogpeppe/go-internal/testscript"
)

// fdrun [in=closed|null] [out=closed|null|tty] CODE PROG [ARG...] runs
// PROG with its standard input or output closed (`<&-`, `>&-`), on
// /dev/null, or (output) on a terminal, and checks its exit status. Its
// standard error becomes stderr. Unnamed, standard input is /dev/null
// and standard output a pipe whose content becomes stdout.
func cmdFdrun(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: fdrun [in=closed|null] [out=closed|null|tty] CODE PROG [ARG...]")
	}
	opt := map[string]string{"in": "null", "out": "pipe"}
	for len(args) > 0 && strings.Contains(args[0], "=") {
		k, v, _ := strings.Cut(args[0], "=")
		opt[k], args = v, args[1:]
	}
	if len(args) < 2 {
		ts.Fatalf("usage: fdrun [in=closed|null] [out=closed|null|tty] CODE PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	prog, err := exec.LookPath(args[1])
	ts.Check(err)
	open := func(which string) *os.File { // nil: closed when the process starts
		switch v := opt[which]; v {
		case "closed":
			return nil
		case "null":
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			ts.Check(err)
			ts.Defer(func() { f.Close() })
			return f
		default:
			ts.Fatalf("fdrun: %s=%s is not possible", which, v)
		}
		return nil
	}
	in := open("in")
	var out *os.File
	var outR *os.File
	switch opt["out"] {
	case "pipe":
		outR, out, err = os.Pipe()
		ts.Check(err)
	case "tty":
		ptmx, tty, err := pty.Open()
		ts.Check(err)
		defer ptmx.Close()
		defer tty.Close()
		go io.Copy(io.Discard, ptmx)
		out = tty
	default:
		out = open("out")
	}
	errR, errW, err := os.Pipe()
	ts.Check(err)
	p, err := os.StartProcess(prog, append([]string{args[1]}, args[2:]...), &os.ProcAttr{
		Dir:   ts.MkAbs("."),
		Env:   scriptEnv(ts),
		Files: []*os.File{in, out, errW},
		Sys:   &syscall.SysProcAttr{Setsid: true}, // no controlling terminal
	})
	errW.Close()
	if outR != nil {
		out.Close()
	}
	ts.Check(err)
	var stdout []byte
	done := make(chan struct{})
	go func() {
		if outR != nil {
			stdout, _ = io.ReadAll(outR)
			outR.Close()
		}
		close(done)
	}()
	stderr, _ := io.ReadAll(errR)
	errR.Close()
	<-done
	st, err := p.Wait()
	ts.Check(err)
	ts.Stdout().Write(stdout)
	ts.Stderr().Write(stderr)
	if st.ExitCode() != want {
		ts.Fatalf("%s exited with status %d (%v), want %d", args[1], st.ExitCode(), st, want)
	}
}

// pipehead N CODE PROG [ARG...] runs PROG with its standard output into a
// pipe whose reader takes N bytes and closes it, like `PROG | head -c N`,
// and checks PROG's exit status. Its standard error becomes stderr;
// stdout says how many bytes the reader got.
func cmdPipehead(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: pipehead N CODE PROG [ARG...]")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	prog, err := exec.LookPath(args[2])
	ts.Check(err)
	cmd := exec.Command(prog, args[3:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = scriptEnv(ts)
	r, w, err := os.Pipe()
	ts.Check(err)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	ts.Check(cmd.Start())
	w.Close()
	got, _ := io.ReadFull(r, make([]byte, n))
	r.Close()
	err = cmd.Wait()
	ts.Stderr().Write(stderr.Bytes())
	ts.Stdout().Write([]byte("read " + strconv.Itoa(got) + " bytes\n"))
	checkExit(ts, args[2], err, want)
}

// dead PIDFILE checks that the process whose id PIDFILE holds has ended
// (waiting up to a few seconds for it).
func cmdDead(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: dead PIDFILE")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(args[0])))
	ts.Check(err)
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// A zombie has ended too; only its parent (gone) could reap it.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && zombie(b) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("process %d (from %s) is still running", pid, args[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// zombie reports whether a /proc/PID/stat line is of a zombie process.
func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitfor GLOB waits until a file matching GLOB holds data (a directory:
// exists).
func cmdWaitfor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfor GLOB")
	}
	deadline := time.Now().Add(scriptTimeout)
	for {
		m, _ := filepath.Glob(ts.MkAbs(args[0]))
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && (fi.IsDir() || fi.Size() > 0) {
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no %s within %v", args[0], scriptTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
