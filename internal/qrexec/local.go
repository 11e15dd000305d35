package qrexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

const (
	// serviceEnv carries the service name to the child; MaybeServe looks
	// for it.
	serviceEnv = "PEDOS_QREXEC_SERVICE"
	// tripwireArg is the child's only argument. A program that forgot to
	// call MaybeServe then fails on an unknown flag instead of doing its
	// normal job with our pipe as its stdin.
	tripwireArg = "--pedos-qrexec-service"
	// abortGrace is how long a service may take to clean up after it was
	// told to abort, before its whole process group is killed. It also
	// bounds how long Wait waits for stderr once the service exited.
	abortGrace = 5 * time.Second
	// defaultPath is the child's PATH when we have none to pass on.
	defaultPath = "/usr/local/bin:/usr/bin:/bin"
)

// Local is the transport of a PedOS host. It runs a service in a child
// process, this program re-executed (so its main must call MaybeServe
// first), with the VM's filesystem directory as its working directory and
// the environment PEDOS_VM=<vm>, HOME=<dir>/home/user, PATH and TZ. The
// child leads a new process group, which an abort kills as a whole.
type Local struct {
	res    VMResolver
	exe    string
	exeErr error
}

var _ Transport = (*Local)(nil)

// NewLocal returns the local transport for the VMs res knows.
func NewLocal(res VMResolver) *Local {
	exe, err := os.Executable()
	return &Local{res: res, exe: exe, exeErr: err}
}

// Open starts service in vm; see Transport.
func (l *Local) Open(ctx context.Context, vm, service string) (Conn, error) {
	dir, err := l.res.FS(vm)
	if err != nil {
		return nil, err
	}
	if !l.res.Running(vm) {
		return nil, &NotRunningError{VM: vm}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	fail := func(err error) (Conn, error) {
		return nil, fmt.Errorf("starting %s in VM %s: %w", service, vm, err)
	}
	if l.exeErr != nil {
		return fail(l.exeErr)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fail(err)
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	env := []string{
		serviceEnv + "=" + service,
		"PEDOS_VM=" + vm,
		"HOME=" + filepath.Join(dir, "home", "user"),
		"PATH=" + path,
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz) // the VM's local time is the host's
	}

	inR, inW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return fail(err)
	}
	c := &localConn{vm: vm, service: service, ctx: ctx, stdin: inW, stdout: outR}
	c.cmd = &exec.Cmd{
		Path:        l.exe,
		Args:        []string{l.exe, tripwireArg},
		Env:         env,
		Dir:         dir,
		Stdin:       inR,
		Stdout:      outW,
		Stderr:      &c.stderr,
		SysProcAttr: groupAttr(),
		WaitDelay:   abortGrace,
	}
	err = c.cmd.Start()
	// The child has its own copies now. Ours must go, or we would never see
	// EOF on its stdout, nor would a write to its stdin fail once it exits.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return fail(err)
	}
	c.stopWatch = context.AfterFunc(ctx, c.Abort)
	return c, nil
}

// localConn is a call running in a child process.
type localConn struct {
	vm        string
	service   string
	ctx       context.Context
	cmd       *exec.Cmd
	stdin     *os.File
	stdout    *os.File
	stderr    tailBuffer
	stopWatch func() bool // ends the watch on ctx

	abortOnce sync.Once
	mu        sync.Mutex
	exited    bool        // Wait has reaped the child
	killTimer *time.Timer // kills the group once abortGrace has passed

	waitOnce sync.Once
	waitErr  error
}

func (c *localConn) Write(b []byte) (int, error) { return c.stdin.Write(b) }
func (c *localConn) Read(b []byte) (int, error)  { return c.stdout.Read(b) }
func (c *localConn) CloseWrite() error           { return c.stdin.Close() }

func (c *localConn) Abort() {
	c.abortOnce.Do(func() {
		// Two ways to say it: EOF before the end marker is the protocol's
		// abort, which any transport can carry; the signal reaches a
		// service that is busy elsewhere (blocked writing to its command).
		c.stdin.Close()
		terminate(c.cmd.Process)
		c.mu.Lock()
		if !c.exited {
			c.killTimer = time.AfterFunc(abortGrace, c.kill)
		}
		c.mu.Unlock()
	})
}

// kill ends the service and everything it started, should it not have
// ended on its own after an abort.
func (c *localConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.exited {
		killGroup(c.cmd.Process)
	}
}

func (c *localConn) Wait() error {
	c.waitOnce.Do(func() { c.waitErr = c.wait() })
	return c.waitErr
}

func (c *localConn) wait() error {
	err := c.cmd.Wait()
	c.mu.Lock()
	c.exited = true
	if c.killTimer != nil {
		c.killTimer.Stop()
	}
	c.mu.Unlock()
	c.stopWatch()
	c.stdin.Close()
	c.stdout.Close()

	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: it exited 0, but something it left behind kept
		// stderr open, which costs us at most some diagnostics.
		return nil
	}
	if cause := context.Cause(c.ctx); cause != nil {
		// We stopped it; its "killed" status is no news.
		return cause
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return &ServiceError{
			VM:       c.vm,
			Service:  c.service,
			Status:   exitErr.ProcessState.String(),
			ExitCode: exitErr.ExitCode(),
			Stderr:   c.stderr.String(),
		}
	}
	return fmt.Errorf("%s in VM %s: %w", c.service, c.vm, err)
}
