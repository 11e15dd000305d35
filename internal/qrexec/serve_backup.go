package qrexec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"time"

	"pedos.dev/backup/internal/objstore"
	"pedos.dev/backup/internal/publish"
)

// serveBackup is the VM side of qubes.Backup; in carries the frames.
func serveBackup(h *handler, root *os.Root, loc string, in *frames) int {
	if objstore.IsURL(loc) {
		return backupToObject(h, loc, in)
	}
	dir := inVM(loc)
	info, err := root.Stat(dir)
	if err == nil && info.IsDir() {
		return backupToDir(h, root, loc, dir, in)
	}
	cmd, err := command(loc, "a directory", err)
	if err != nil {
		return h.fail(err)
	}
	return backupToCommand(h, cmd, in)
}

// backupToDir writes the stream to a temporary file in dir and gives it its
// final name only once it is complete and on disk.
func backupToDir(h *handler, root *os.Root, loc, dir string, in *frames) int {
	base := "qubes-backup-" + time.Now().Format("2006-01-02T150405")
	// What backups that died here left goes. Silently: dom0 shows this
	// side's stderr only as the reason of a failure.
	publish.RemoveStale(root, dir)
	f, tmp, err := publish.CreateTemp(root, dir, base)
	if err != nil {
		return h.fail(err)
	}
	// Removing the name is enough, even while the file is being written:
	// the data goes when we exit.
	h.setUndo(func() { root.Remove(tmp) })
	if err := reply("ready %s", path.Join(loc, publish.FreeName(root, dir, base))); err != nil {
		return h.fail(err)
	}

	if err := copyFrames(f, in); err != nil {
		if errors.Is(err, errTruncated) {
			h.abort(err.Error())
		}
		return h.fail(err)
	}
	if err := f.Sync(); err != nil {
		return h.fail(err)
	}
	// Published while still open, so still locked (publish.RemoveStale).
	var name string
	err = h.commit(func() (err error) {
		name, err = publish.Publish(root, dir, tmp, base)
		return err
	})
	if err != nil {
		return h.fail(err)
	}
	f.Close()
	if err := publish.SyncDir(root, dir); err != nil {
		return h.fail(fmt.Errorf("%s is complete, but its directory could not be synced: %w", name, err))
	}
	if err := reply("saved %s", path.Join(loc, name)); err != nil {
		return h.fail(err)
	}
	return 0
}

// backupToCommand feeds the stream to the command's stdin.
func backupToCommand(h *handler, cmd *exec.Cmd, in *frames) int {
	// dom0 reads only replies on our stdout; what the command prints there
	// is diagnostics at best.
	cmd.Stdout = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return h.fail(err)
	}
	if err := cmd.Start(); err != nil {
		return h.fail(err)
	}
	h.setUndo(killOwnGroup)
	if err := reply("ready"); err != nil {
		return h.fail(err)
	}

	err = copyFrames(stdin, in)
	var werr *writeError
	switch {
	case errors.Is(err, errTruncated):
		h.abort(err.Error())
	case errors.As(err, &werr):
		// The command stopped reading. Its exit status says why, unless
		// it claims success, which it cannot have with data left over.
		stdin.Close()
		err := cmd.Wait()
		h.setUndo(nil)
		if err != nil {
			return exitStatus(err)
		}
		return h.fail(errors.New("the command exited before reading all of the backup"))
	case err != nil:
		return h.fail(err)
	}
	stdin.Close() // EOF: the end of the backup
	err = cmd.Wait()
	h.setUndo(nil)
	if err != nil {
		return exitStatus(err)
	}
	if err := reply("done"); err != nil {
		return h.fail(err)
	}
	return 0
}

// errTruncated: the stream ended without its end marker, dom0's abort.
var errTruncated = errors.New("backup stream ended before its end marker: aborted")

// writeError is a failure to write the stream, rather than to read it.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// copyFrames copies the framed stream to dst, up to its end marker. A dst
// that reads for itself (io.ReaderFrom: an object upload reads straight
// into its part buffers) is handed the stream, sparing a copy.
func copyFrames(dst io.Writer, in *frames) error {
	if _, err := io.Copy(dst, in); err != nil {
		if in.err != nil {
			return in.err
		}
		return &writeError{err}
	}
	return nil
}

// frames reads the data of the framed stream, frame after frame, until
// the end marker (io.EOF). err is the stream's own failure, so that
// copyFrames can tell it from the destination's.
//
// in is the stream as the location line was read from it; raw is what in
// reads from. Once in holds nothing more, frames reads raw directly:
// reading a frame's 4-byte header through in would fill in's 64 KiB
// buffer with the data after it, to be copied out again (about half of
// all the data: 0.15 s of CPU for a 358 MB backup here, against next to
// nothing for a 4-byte read per 128 KiB frame).
type frames struct {
	in   *bufio.Reader
	raw  io.Reader
	left uint32 // what the current frame still holds
	end  bool   // the end marker was read
	err  error
}

func (f *frames) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	for f.left == 0 {
		if f.end {
			return 0, io.EOF
		}
		var hdr [4]byte
		if _, err := io.ReadFull(f.source(), hdr[:]); err != nil {
			f.err = readError(err)
			return 0, f.err
		}
		f.left = binary.BigEndian.Uint32(hdr[:])
		f.end = f.left == 0
	}
	k, err := f.source().Read(p[:min(len(p), int(f.left))])
	f.left -= uint32(k)
	if err != nil {
		f.err = readError(err)
		return k, f.err
	}
	return k, nil
}

func (f *frames) source() io.Reader {
	if f.in.Buffered() > 0 {
		return f.in
	}
	return f.raw
}

func readError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncated
	}
	return err
}
