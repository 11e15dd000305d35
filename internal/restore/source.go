package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"pedos.dev/backup/internal/cmdrun"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/qrexec"
)

// Location is where a backup is read from.
type Location struct {
	// Path, in dom0 (VM empty or "dom0"), is one of:
	//   - a directory: a format 1 backup (OpenDir);
	//   - "-": SourceOptions.Stdin;
	//   - a path, absolute or starting with "." ("./x", "../x"), or the
	//     name of an existing file: that file;
	//   - anything else: a command line, run by /bin/sh -c in dom0 in a
	//     process group of its own (package cmdrun), whose standard output
	//     is the archive. It is trusted input from the dom0 user
	//     (doc/reference.md E.22).
	// With VM set, Path is the location line of the VM's qubes.Restore
	// service: a file in the VM, or a command line run there.
	Path string
	// VM holds the backup; "" or "dom0" means dom0.
	VM string
}

// SourceKind is what a Location resolves to.
type SourceKind int

// The kinds of source.
const (
	FromFile    SourceKind = iota + 1 // a dom0 file
	FromDir                           // a format 1 directory in dom0
	FromStdin                         // SourceOptions.Stdin ("-")
	FromCommand                       // a dom0 command's standard output
	FromVM                            // a VM's qubes.Restore service
)

// InVM reports whether the location is in a VM other than dom0.
func (l Location) InVM() bool { return l.VM != "" && l.VM != "dom0" }

// Kind says what the location is, as OpenSource will take it, without
// opening anything: a front end asks no passphrase for a format 1
// directory, which has none.
func (l Location) Kind() SourceKind {
	switch {
	case l.InVM():
		return FromVM
	case l.Path == "-":
		return FromStdin
	}
	fi, err := os.Stat(l.Path)
	switch {
	case err == nil && fi.IsDir():
		return FromDir
	case err == nil, strings.HasPrefix(l.Path, "/"), strings.HasPrefix(l.Path, "."):
		return FromFile
	}
	return FromCommand
}

// SourceOptions configure OpenSource.
type SourceOptions struct {
	// Stdin is read for the location "-".
	Stdin io.Reader
	// Stderr receives a dom0 command's standard error (a terminal is
	// handed to it as it is); nil keeps its end for the error message.
	Stderr io.Writer
	// Host resolves the VMs of the local transport (Transport nil).
	Host *host.Host
	// Transport reaches a VM; nil means qrexec.NewLocal(Host), which needs
	// the program to call qrexec.MaybeServe first thing.
	Transport qrexec.Transport
}

// ErrCannotReopen: the source cannot be read again from its start
// (standard input).
var ErrCannotReopen = errors.New("the backup source cannot be read again")

// Source is an opened Location: the archive's bytes, read once. A file is
// opened; a command or a VM service is started. Its Open method opens the
// backup it holds (the Backup then reads from it); it is also an
// io.Reader for the Open function. Close it when done: Finish after a
// data pass that succeeded, Close otherwise.
//
// A Source is read once. After a failed Open (a wrong passphrase, say),
// Reopen gives a new one from the start of the same location: the file
// opened again, the command or the VM service started again. Standard
// input cannot be reopened.
type Source struct {
	Location Location
	Kind     SourceKind

	opts SourceOptions
	r    io.Reader
	file *os.File
	cmd  *cmdrun.Cmd
	vm   io.ReadCloser
	// An Open that a cancel abandoned may still read while Close runs.
	eof  atomic.Bool // the command's output was read to its end
	done atomic.Bool // closed, with err
	err  error
}

// OpenSource opens loc. ctx covers the source's whole life, not only this
// call: cancelling it stops a command or a VM service.
func OpenSource(ctx context.Context, loc Location, opts SourceOptions) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx)
	}
	s := &Source{Location: loc, Kind: loc.Kind(), opts: opts}
	switch s.Kind {
	case FromDir:
		s.r = strings.NewReader("") // OpenDir reads the directory itself
	case FromStdin:
		if opts.Stdin == nil {
			return nil, errors.New("no standard input to read the backup from")
		}
		s.r = opts.Stdin
	case FromFile:
		f, err := os.Open(loc.Path)
		if err != nil {
			return nil, err
		}
		s.file, s.r = f, f
	case FromCommand:
		c, err := cmdrun.Start(ctx, loc.Path, cmdrun.Config{Stdout: true, Stderr: opts.Stderr})
		if err != nil {
			return nil, err
		}
		s.cmd, s.r = c, c.Stdout
	case FromVM:
		t := opts.Transport
		if t == nil {
			if opts.Host == nil {
				return nil, errors.New("restore: no host to reach VM " + loc.VM + " through")
			}
			t = qrexec.NewLocal(opts.Host)
		}
		rc, err := qrexec.OpenRestoreSource(ctx, t, loc.VM, loc.Path)
		if err != nil {
			return nil, err
		}
		s.vm, s.r = rc, rc
	}
	return s, nil
}

// Read reads the archive.
func (s *Source) Read(p []byte) (int, error) {
	if s.done.Load() {
		return 0, os.ErrClosed
	}
	n, err := s.r.Read(p)
	if err == io.EOF && s.cmd != nil {
		s.eof.Store(true)
	}
	return n, err
}

// CanReopen reports whether Reopen can read the location again.
func (s *Source) CanReopen() bool { return s.Kind != FromStdin }

// Reopen closes s and opens its location again, from the start, with the
// same options, under ctx: to retry Open with another passphrase.
func (s *Source) Reopen(ctx context.Context) (*Source, error) {
	if !s.CanReopen() {
		return nil, ErrCannotReopen
	}
	s.Close()
	return OpenSource(ctx, s.Location, s.opts)
}

// Open opens the backup the source holds (OpenDir for a format 1
// directory, else Open). When that fails, the source is closed, and a
// source that failed by itself (a command's exit status, a VM service's
// error) is named as the cause of whatever reading found; Reopen then
// gives a source to try again with.
func (s *Source) Open(ctx context.Context, opts OpenOptions) (*Backup, error) {
	var b *Backup
	var err error
	if s.Kind == FromDir {
		b, err = OpenDir(s.Location.Path)
	} else {
		b, err = Open(ctx, s, opts)
	}
	if err != nil {
		// Closing also ends the read of an Open that a cancel abandoned.
		if cerr := s.Close(); cerr != nil && !errors.Is(err, ErrCancelled) {
			return nil, &SourceError{Err: cerr, Read: err}
		}
		return nil, err
	}
	return b, nil
}

// SourceError is a source that failed by itself: a command that exited
// with an error, a VM service that failed. Read is what reading the
// archive found meanwhile, if anything.
type SourceError struct {
	Err  error
	Read error
}

func (e *SourceError) Error() string {
	if e.Read != nil {
		return fmt.Sprintf("the backup source failed: %v (%v)", e.Err, e.Read)
	}
	return "the backup source failed: " + e.Err.Error()
}

func (e *SourceError) Unwrap() error { return e.Err }

// Stop stops a command source at once, from any goroutine (a signal
// handler: the command must not outlive the program); reading then fails.
// Other sources are left to Close.
func (s *Source) Stop() {
	if s.cmd != nil {
		s.cmd.Kill()
	}
}

// Close stops the source unless it was read to its end. It returns the
// source's own outcome, once it was read to its end: a command's failure
// (its exit status), a VM service's error. Stopped earlier, it returns nil:
// the caller wanted no more.
func (s *Source) Close() error {
	if s.done.Swap(true) {
		return s.err
	}
	switch {
	case s.file != nil:
		s.file.Close()
	case s.vm != nil:
		s.err = s.vm.Close()
	case s.cmd != nil:
		eof := s.eof.Load()
		if !eof {
			s.cmd.Kill()
		}
		s.cmd.Stdout.Close()
		if err := s.cmd.Wait(); err != nil && eof {
			s.err = fmt.Errorf("command %q: %w", s.Location.Path, err)
		}
	}
	return s.err
}

// Finish reads the rest of the source, so that a command or VM service
// ends on its own and its outcome is known (not killed by a closed pipe),
// and closes it: after a data pass that succeeded, its error says that
// the source failed even though the archive proved complete.
func (s *Source) Finish() error {
	_, err := io.Copy(io.Discard, s)
	cerr := s.Close()
	if err != nil {
		return err
	}
	if cerr != nil {
		return &SourceError{Err: cerr}
	}
	return nil
}
