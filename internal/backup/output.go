package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"pedos.dev/backup/internal/cmdrun"
	"pedos.dev/backup/internal/publish"
	"pedos.dev/backup/internal/qrexec"
)

// output is where the archive goes. Write is called from the archive
// writer's emitter goroutine; commit and abort from Run once that has
// ended. ctx, given when the output is opened, stops a command or a VM
// service that blocks a Write.
type output interface {
	io.Writer
	// commit makes the backup final and returns where it is.
	commit() (location string, err error)
	// abort discards what was written, where that is possible. It returns
	// the destination's own account of a failure it caused (a command that
	// exited), else nil.
	abort(cause error) error
}

// open opens the plan's target. Nothing that looks like a backup exists
// until commit.
func (p *Plan) open(ctx context.Context, out io.Writer, now time.Time) (output, error) {
	t := p.Target
	switch t.Kind {
	case ToDirectory:
		return openFile(t.Path, backupFileName(now))
	case ToFile:
		return openFile(filepath.Dir(t.Path), filepath.Base(t.Path))
	case ToStdout:
		if out == nil {
			return nil, errors.New("no writer for standard output")
		}
		return stdoutOutput{out}, nil
	case ToCommand:
		return startCommand(ctx, t.Path)
	case ToVM:
		tr := p.opts.Transport
		if tr == nil {
			tr = qrexec.NewLocal(p.h)
		}
		s, err := qrexec.OpenBackupSink(ctx, tr, t.VM, t.Path)
		if err != nil {
			return nil, err
		}
		return sinkOutput{s}, nil
	}
	return nil, errors.New("no destination")
}

// RemoveStale removes, from a dom0 destination directory (or the
// directory of a destination file), the hidden temporary files of backups
// that died there (publish.RemoveStale: their writer's lock is free), and
// returns their paths. A live backup's file is never touched. Other
// destinations have nothing to clean.
func (p *Plan) RemoveStale() ([]string, error) {
	var dir string
	switch p.Target.Kind {
	case ToDirectory:
		dir = p.Target.Path
	case ToFile:
		dir = filepath.Dir(p.Target.Path)
	default:
		return nil, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	removed, err := publish.RemoveStale(root, ".")
	for i, r := range removed {
		removed[i] = filepath.Join(dir, r)
	}
	return removed, err
}

// fileOutput writes a hidden temporary file in the destination directory
// and links it to the backup's name once it is complete and on disk.
type fileOutput struct {
	*os.File
	root      *os.Root // the destination directory
	tmp, base string
}

func openFile(dir, base string) (*fileOutput, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	f, tmp, err := publish.CreateTemp(root, ".", base)
	if err != nil {
		root.Close()
		return nil, err
	}
	return &fileOutput{File: f, root: root, tmp: tmp, base: base}, nil
}

func (o *fileOutput) commit() (string, error) {
	defer o.root.Close()
	err := o.Sync()
	var name string
	if err == nil {
		// Still open, so still locked: RemoveStale in another run must
		// not take the file between its close and its publication.
		name, err = publish.Publish(o.root, ".", o.tmp, o.base)
	}
	if err == nil {
		err = publish.SyncDir(o.root, ".")
	}
	if err != nil {
		o.root.Remove(o.tmp)
		o.Close()
		return "", err
	}
	if err := o.Close(); err != nil {
		return "", err // unreachable in practice: the data was synced
	}
	return filepath.Join(o.root.Name(), name), nil
}

func (o *fileOutput) abort(error) error {
	o.Close()
	o.root.Remove(o.tmp)
	o.root.Close()
	return nil
}

type stdoutOutput struct{ io.Writer }

func (stdoutOutput) commit() (string, error) { return "", nil }
func (stdoutOutput) abort(error) error       { return nil }

type sinkOutput struct{ qrexec.Sink }

func (s sinkOutput) commit() (string, error) {
	if err := s.Commit(); err != nil {
		return "", err
	}
	return s.Name(), nil
}

// abort needs no account: the sink's errors carry the VM side's.
func (s sinkOutput) abort(cause error) error {
	s.Abort(cause)
	return nil
}

// cmdOutput feeds a dom0 command (trusted: the dom0 user's own command
// line) run by package cmdrun in its own process group, so that stopping
// it stops everything it started. Its output is kept for its error.
type cmdOutput struct{ c *cmdrun.Cmd }

// Write feeds the command's stdin.
func (o cmdOutput) Write(b []byte) (int, error) { return o.c.Stdin.Write(b) }

func startCommand(ctx context.Context, line string) (cmdOutput, error) {
	c, err := cmdrun.Start(ctx, line, cmdrun.Config{Stdin: true})
	if err != nil {
		return cmdOutput{}, err
	}
	return cmdOutput{c}, nil
}

func (o cmdOutput) commit() (string, error) {
	o.c.Stdin.Close()
	if err := o.c.Wait(); err != nil {
		return "", o.failed(err)
	}
	return "", nil
}

// abort kills the command unless it has ended already: it must not take
// the end of the pipe for the end of a complete backup.
func (o cmdOutput) abort(error) error {
	o.c.Kill()
	err := o.c.Wait()
	o.c.Stdin.Close()
	switch {
	case o.c.Killed():
		return nil // our doing, or the context's
	case err == nil:
		return fmt.Errorf("backup command %q ended before the backup was complete", o.c.Line)
	}
	return o.failed(err)
}

func (o cmdOutput) failed(err error) error {
	if out := o.c.Output(); out != "" {
		return fmt.Errorf("backup command %q failed (%v): %s", o.c.Line, err, out)
	}
	return fmt.Errorf("backup command %q failed: %v", o.c.Line, err)
}
