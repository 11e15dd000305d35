package qrexec

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// frameSize is the most data one frame of the backup stream carries; the
// sink's only buffer.
const frameSize = 128 << 10

// A Sink is a backup stream on its way into a VM. Its methods are for one
// goroutine; to interrupt a blocked Write from another, cancel the context
// given to OpenBackupSink.
type Sink interface {
	// Write sends backup data. After a failure every Write returns the
	// same error, which carries the VM side's outcome when it has one.
	io.Writer
	// Commit ends the stream and returns the VM side's outcome: nil once
	// the backup is complete and on disk (fsync'd) or accepted by the
	// command, else an error such as "writing backup to VM work failed:
	// Invalid command foo (exit status 1)".
	Commit() error
	// Abort tells the VM side that the stream failed, because of cause,
	// and waits for it to end: a directory destination removes its
	// partial file, a command destination is killed with all it started.
	// Later calls of Write and Commit return an error wrapping cause.
	// Once the stream was committed or had failed, Abort does nothing.
	Abort(cause error)
	// Name is the backup file's path inside the VM in the directory
	// case, "" for a command. It is final once Commit succeeded; before,
	// it is the name planned at the start (it gains a "-2" suffix if
	// another file takes it meanwhile).
	Name() string
}

// OpenBackupSink starts the backup service in vm with location, an existing
// directory inside the VM or a command line (trusted: see the package
// documentation), and returns the sink for the stream. A VM that is not
// running, and a location that is neither a directory nor a command, are
// errors here, before any data is sent. ctx covers the whole stream:
// cancelling it aborts the backup.
func OpenBackupSink(ctx context.Context, t Transport, vm, location string) (Sink, error) {
	loc, err := cleanLocation(location)
	if err != nil {
		return nil, err
	}
	conn, err := t.Open(ctx, vm, ServiceBackup)
	if err != nil {
		return nil, err
	}
	s := &sink{
		vm:      vm,
		conn:    conn,
		replies: bufio.NewReaderSize(conn, replyLimit),
		buf:     make([]byte, 4, 4+frameSize),
	}
	if _, err := io.WriteString(conn, loc+"\n"); err != nil {
		return nil, s.fail(err)
	}
	// The VM side answers once its file exists or its command runs.
	reply, err := s.reply()
	if err != nil {
		return nil, s.fail(err)
	}
	if name, ok := strings.CutPrefix(reply, "ready "); ok {
		s.name = name
	} else if reply != "ready" {
		return nil, s.fail(s.protocolError(fmt.Errorf("unexpected reply %q", reply)))
	}
	return s, nil
}

type sink struct {
	vm      string
	conn    Conn
	replies *bufio.Reader
	name    string
	buf     []byte // the frame being filled: 4 bytes of length, then data
	err     error  // sticky: set by a failure, Commit or Abort
	broken  bool   // the VM side broke the protocol and was aborted
	waited  bool   // the service has been reaped, with waitErr
	waitErr error
}

var errCommitted = errors.New("backup stream already committed")

func (s *sink) Name() string { return s.name }

func (s *sink) Write(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := 0
	for len(b) > 0 {
		k := copy(s.buf[len(s.buf):cap(s.buf)], b)
		s.buf = s.buf[:len(s.buf)+k]
		b = b[k:]
		n += k
		if len(s.buf) == cap(s.buf) {
			if err := s.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends the buffered data as one frame.
func (s *sink) flush() error {
	if len(s.buf) == 4 {
		return nil
	}
	binary.BigEndian.PutUint32(s.buf, uint32(len(s.buf)-4))
	if _, err := s.conn.Write(s.buf); err != nil {
		return s.fail(err)
	}
	s.buf = s.buf[:4]
	return nil
}

func (s *sink) Commit() error {
	if s.err != nil {
		if s.err == errCommitted {
			return nil
		}
		return s.err
	}
	if err := s.flush(); err != nil {
		return err
	}
	if _, err := s.conn.Write(make([]byte, 4)); err != nil { // the end marker
		return s.fail(err)
	}
	if err := s.conn.CloseWrite(); err != nil {
		return s.fail(err)
	}
	reply, err := s.reply()
	if err != nil {
		return s.fail(err)
	}
	name, saved := strings.CutPrefix(reply, "saved ")
	if !saved && reply != "done" {
		return s.fail(s.protocolError(fmt.Errorf("unexpected reply %q", reply)))
	}
	if err := s.wait(); err != nil {
		return s.fail(err)
	}
	if saved {
		s.name = name
	}
	s.err = errCommitted
	return nil
}

func (s *sink) Abort(cause error) {
	if s.err != nil {
		return // committed, aborted, or failed already: the call is over
	}
	if cause == nil {
		cause = errors.New("aborted")
	}
	s.conn.Abort()
	s.wait() // its failure is our doing
	s.err = fmt.Errorf("writing backup to VM %s aborted: %w", s.vm, cause)
}

// fail ends the call after err and sets the sticky error. The VM side's
// outcome is the better news: when our write failed, or its reply did not
// come, it is because the service ended, and it said why. (Should it still
// run, it is aborted.)
func (s *sink) fail(err error) error {
	if s.err != nil {
		return s.err
	}
	s.conn.Abort()
	if werr := s.wait(); werr != nil && !s.broken {
		err = werr
	}
	s.err = serviceFailed("writing backup to", s.vm, err)
	return s.err
}

// wait reaps the service once. It first reads what is left of its stdout
// (the service exits only when it has written all of it), but no more than
// a reply's worth: a VM that keeps talking is cut off.
func (s *sink) wait() error {
	if !s.waited {
		s.waited = true
		var chatty error
		if n, _ := io.CopyN(io.Discard, s.replies, replyLimit); n == replyLimit {
			chatty = s.protocolError(errors.New("the VM side sends more than its replies"))
		}
		s.waitErr = s.conn.Wait()
		if chatty != nil {
			s.waitErr = chatty
		}
	}
	return s.waitErr
}

// reply reads one line from the service.
func (s *sink) reply() (string, error) {
	line, err := s.replies.ReadSlice('\n')
	switch {
	case err == io.EOF:
		return "", errors.New("the VM side ended without a reply")
	case err == bufio.ErrBufferFull:
		return "", s.protocolError(errors.New("the VM side's reply is too long"))
	case err != nil:
		return "", fmt.Errorf("reading the VM side's reply: %w", err)
	}
	return sanitize(string(line[:len(line)-1])), nil
}

// protocolError aborts a VM side that does not follow the protocol: it is
// not trusted to end on its own. err, rather than its exit status, is what
// went wrong.
func (s *sink) protocolError(err error) error {
	s.broken = true
	s.conn.Abort()
	return err
}

// cleanLocation removes CR and LF, as the reference system does, so that
// the location is exactly one line.
func cleanLocation(location string) (string, error) {
	loc := strings.NewReplacer("\r", "", "\n", "").Replace(location)
	switch {
	case loc == "":
		return "", errors.New("no backup location given")
	case len(loc) > MaxLocation:
		return "", fmt.Errorf("backup location is longer than %d bytes", MaxLocation)
	}
	return loc, nil
}
