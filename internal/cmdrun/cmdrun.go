// Package cmdrun runs the dom0 command lines that the backup engine writes
// to (a destination command) and the restore engine reads from (a source
// command). Such a line is trusted input from the dom0 user, run as given
// by /bin/sh -c (doc/reference.md E.22).
//
// Every command runs in a process group of its own, so that stopping it
// (Kill, or cancelling the context it was started with) stops everything
// it started, not only the shell. Once it has ended or been killed, Wait
// waits at most WaitDelay for output pipes that something it left running
// still holds open.
package cmdrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WaitDelay bounds how long Wait waits for the command's output once it
// has exited or been killed.
const WaitDelay = 10 * time.Second

// tailSize is how much of a command's output Output keeps.
const tailSize = 4096

// Config says which of the command's streams the caller uses.
type Config struct {
	// Stdin: the command reads what the caller writes to Cmd.Stdin;
	// otherwise its standard input is empty (/dev/null).
	Stdin bool
	// Stdout: the caller reads the command's standard output from
	// Cmd.Stdout; otherwise it is kept, with its standard error, for
	// Output.
	Stdout bool
	// Stderr, if set, receives the command's standard error. A file (a
	// terminal) is handed to the command as it is, so a terminal stays a
	// terminal; its output is then not kept for Output.
	Stderr io.Writer
}

// Cmd is a running command line.
type Cmd struct {
	// Line is the command line as given.
	Line string
	// Stdin is the write end of the command's standard input (with
	// Config.Stdin); the caller closes it to signal the end.
	Stdin io.WriteCloser
	// Stdout is the read end of the command's standard output (with
	// Config.Stdout); the caller closes it.
	Stdout io.ReadCloser

	cmd    *exec.Cmd
	out    *tail
	done   chan struct{} // closed when the command has been reaped, with err
	err    error
	killed atomic.Bool // we sent the group SIGKILL while it ran
	mu     sync.Mutex  // orders Kill against the reaping
	reaped bool
}

// Start runs line with /bin/sh -c in a new process group. Cancelling ctx
// kills the group, as Kill does. The command is reaped in the background;
// Wait returns how it ended.
func Start(ctx context.Context, line string, cfg Config) (*Cmd, error) {
	c := &Cmd{Line: line, out: &tail{max: tailSize}, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		c.Kill()
		return nil
	}
	cmd.WaitDelay = WaitDelay
	c.cmd = cmd
	// Our own pipes (not exec's StdinPipe/StdoutPipe): the command is
	// reaped in the background, and exec would close its pipes then, with
	// output still unread in them.
	var theirs []*os.File
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	if cfg.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin, c.Stdin = r, w
		theirs = append(theirs, r)
	}
	if cfg.Stdout {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(theirs...)
			if c.Stdin != nil {
				c.Stdin.Close()
			}
			return nil, err
		}
		cmd.Stdout, c.Stdout = w, r
		theirs = append(theirs, w)
	} else {
		cmd.Stdout = c.out
	}
	switch f := cfg.Stderr.(type) {
	case nil:
		cmd.Stderr = c.out
	case *os.File:
		cmd.Stderr = f
	default:
		cmd.Stderr = io.MultiWriter(c.out, f)
	}
	err := cmd.Start()
	// The command has its own copies now. Ours must go, or we would never
	// see the end of its output, nor would a write fail once it exits.
	closeAll(theirs...)
	if err != nil {
		if c.Stdin != nil {
			c.Stdin.Close()
		}
		if c.Stdout != nil {
			c.Stdout.Close()
		}
		return nil, fmt.Errorf("starting %q: %w", line, err)
	}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.reaped = true
		c.mu.Unlock()
		c.err = err
		close(c.done)
	}()
	return c, nil
}

// Kill kills the command and everything in its process group, unless it
// has ended already. It does not wait; Wait does.
func (c *Cmd) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reaped {
		return
	}
	c.killed.Store(true)
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

// Done is closed once the command has ended and been reaped.
func (c *Cmd) Done() <-chan struct{} { return c.done }

// Wait waits for the command to end and returns its outcome: nil for
// exit status 0, else an *exec.ExitError (or exec.ErrWaitDelay, when it
// exited 0 but something it left running held its output open).
func (c *Cmd) Wait() error {
	<-c.done
	return c.err
}

// Killed reports whether the command ended by the SIGKILL that Kill (or
// the context) sent: then its failure is our doing, not news.
func (c *Cmd) Killed() bool {
	select {
	case <-c.done:
	default:
		return false
	}
	var ee *exec.ExitError
	if !c.killed.Load() || !errors.As(c.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Output is the end of what the command wrote to the streams the caller
// does not use (up to 4 KiB), as valid UTF-8, spaces trimmed.
func (c *Cmd) Output() string { return strings.TrimSpace(c.out.String()) }

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.b), "?")
}
