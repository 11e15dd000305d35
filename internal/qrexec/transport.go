package qrexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Service names, as in the reference system.
const (
	ServiceBackup  = "qubes.Backup"
	ServiceRestore = "qubes.Restore"
	// Ours: the plan-time check of a destination, the listing of the
	// backups in a directory or under an s3:// prefix, and the listing
	// of any directory for a dom0 dialog that browses a VM's files.
	ServiceCheck  = "pedos.BackupCheck"
	ServiceList   = "pedos.BackupList"
	ServiceBrowse = "pedos.Browse"
)

// MaxLocation is the longest location line a service accepts.
const MaxLocation = 4096

// A Transport runs a VM-side service. The local transport runs it in a child
// process whose view of the VM's filesystem is a host directory; a remote one
// (ssh to a real machine) can be added later.
type Transport interface {
	// Open starts service in vm. ctx covers the whole call: cancelling it
	// aborts the service (Conn.Abort). A VM that is not running is an
	// error wrapping ErrNotRunning, and nothing is started.
	Open(ctx context.Context, vm, service string) (Conn, error)
}

// Conn is one running service call. Write and CloseWrite feed the service's
// stdin and Read reads its stdout, each from one goroutine at a time.
type Conn interface {
	io.Writer
	io.Reader
	// CloseWrite gives the service EOF on its stdin.
	CloseWrite() error
	// Wait waits for the service to end and releases the call. It returns
	// nil when the service exited 0, otherwise an error: a *ServiceError
	// when the service itself failed. The service's stdout must have been
	// read to EOF, or the call aborted, or Wait may never return.
	Wait() error
	// Abort asks the service to abandon its work now (remove its partial
	// output, stop its command) and kills it if it does not end promptly.
	// It may be called from any goroutine, more than once; Wait must still
	// be called.
	Abort()
}

// VMResolver tells a transport about VMs. It is supplied by the caller (the
// host package implements it).
type VMResolver interface {
	// FS returns the host directory that is the VM's filesystem.
	FS(vm string) (dir string, err error)
	// Running reports whether the VM runs; only running VMs answer calls.
	Running(vm string) bool
}

// ErrNotRunning is wrapped by the error for a call to a VM that is not
// running.
var ErrNotRunning = errors.New("VM is not running")

// NotRunningError is the error for a call to a VM that is not running.
type NotRunningError struct{ VM string }

func (e *NotRunningError) Error() string        { return "VM " + e.VM + " is not running" }
func (e *NotRunningError) Is(target error) bool { return target == ErrNotRunning }

// ServiceError is a VM-side service that ended unsuccessfully.
type ServiceError struct {
	VM, Service string
	// Status is how it ended, as os/exec says it: "exit status 3",
	// "signal: killed".
	Status string
	// ExitCode is its exit status, or -1 when a signal ended it.
	ExitCode int
	// Stderr is the end of its stderr (at most stderrLimit bytes), made
	// safe to print: the VM is not trusted with our terminal.
	Stderr string
}

func (e *ServiceError) Error() string {
	if e.Stderr == "" {
		return e.Status
	}
	return e.Stderr + " (" + e.Status + ")"
}

const (
	// stderrLimit bounds how much of a service's stderr we keep: the end
	// is where its error message is, and a chatty or hostile VM must not
	// grow our memory.
	stderrLimit = 4 << 10
	// replyLimit bounds a reply line from the VM.
	replyLimit = MaxLocation + 256
)

// tailBuffer keeps the last stderrLimit bytes written to it. exec's stderr
// goroutine writes it while we may read it, hence the lock.
type tailBuffer struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrLimit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String returns the kept text, sanitised.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := sanitize(string(t.buf))
	if t.truncated && s != "" {
		s = "..." + s
	}
	return s
}

// sanitize makes text from a VM safe to show: every control or invisible
// character other than newline and tab (escape sequences, bidi overrides)
// and every invalid byte becomes '?'. Surrounding space is trimmed.
func sanitize(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == utf8.RuneError && size == 1, !unicode.IsPrint(r):
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// serviceFailed wraps err, the outcome of a call, for the user: "writing
// backup to VM work failed: Invalid command foo (exit status 1)".
func serviceFailed(what, vm string, err error) error {
	return fmt.Errorf("%s VM %s failed: %w", what, vm, err)
}
