package qrexec

import (
	"context"
	"errors"
	"io"
	"sync"
)

// OpenRestoreSource starts the restore service in vm with location, a file
// inside the VM or a command line (trusted: see the package documentation)
// whose stdout is the stream, and returns the stream.
//
// Reading it to the end returns io.EOF only when the VM side succeeded; a
// VM side that failed, even after sending data, ends the stream with its
// error instead, so a failed source never looks like a short but complete
// one. Close returns the same outcome once the stream was read to its end;
// closing earlier stops the VM side and returns nil, since the caller
// wanted no more. ctx covers the whole stream: cancelling it stops the VM
// side, and reading then fails.
func OpenRestoreSource(ctx context.Context, t Transport, vm, location string) (io.ReadCloser, error) {
	conn, err := call(ctx, t, vm, ServiceRestore, location, "reading backup from")
	if err != nil {
		return nil, err
	}
	return &source{vm: vm, conn: conn}, nil
}

// source may be closed while a Read is under way in another goroutine
// (an archive reader that ran ahead): mu guards its state, never a read
// of the stream itself. Only one of Read and Close waits for the service.
type source struct {
	vm     string
	conn   Conn
	mu     sync.Mutex
	err    error // sticky: io.EOF or the error that ended the stream
	closed bool
}

var errClosed = errors.New("restore source is closed")

func (s *source) Read(b []byte) (int, error) {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := s.conn.Read(b)
	if err == nil {
		return n, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil { // closed meanwhile: Close waits for the service
		return n, s.err
	}
	if err == io.EOF {
		// The end of its stdout is not yet the end of the stream: only its
		// exit status says whether it was complete.
		if err = s.conn.Wait(); err == nil {
			err = io.EOF
		} else {
			err = serviceFailed("reading backup from", s.vm, err)
		}
	} else {
		s.conn.Abort()
		s.conn.Wait()
		err = serviceFailed("reading backup from", s.vm, err)
	}
	s.err = err
	return n, err
}

func (s *source) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.err
	s.err = errClosed
	s.mu.Unlock()
	switch err {
	case nil:
		s.conn.Abort()
		s.conn.Wait() // its "killed" is our doing, not news
		return nil
	case io.EOF:
		return nil
	}
	return err
}
