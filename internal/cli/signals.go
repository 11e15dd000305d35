package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/term"
)

// ExitInterrupted is the status of a run that SIGINT, SIGTERM or SIGHUP
// stopped, as a shell reports a program ended by Ctrl-C (128+2).
const ExitInterrupted = 130

// ErrInterrupted is the cause of a Signals context that a signal cancelled.
var ErrInterrupted = errors.New("interrupted")

// Signals gives a tool one way to end on SIGINT, SIGTERM and SIGHUP: with
// ExitInterrupted and a sentence, never the bare death by signal (status
// 143, or 129, with nothing said). While the tool has changed nothing
// that needs undoing, a signal runs the registered hooks (a prompt puts
// the terminal's echo back), calls idle to say so and exits at once: the
// run may be blocked in a read that nothing can cancel (a question, a
// passphrase). While a Busy section is open, the signal cancels Context
// instead, so that the run removes what it made and returns.
//
// It also receives SIGPIPE, which makes a write to a closed pipe on
// standard output or error fail with EPIPE instead of killing the program
// silently (Go's default for those two descriptors), so that the tool can
// say what the closed pipe cost.
type Signals struct {
	ch     chan os.Signal
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   func(os.Signal)
	done   chan struct{}
	ended  chan struct{}

	mu    sync.Mutex
	busy  int
	hooks map[int]func()
	next  int
}

// active is the Signals of the running tool, if any, for ReadPassphrase.
var active struct {
	sync.Mutex
	s *Signals
}

// WatchSignals starts watching. idle says, on standard error, that the
// run was interrupted with nothing to undo; the program then exits with
// ExitInterrupted. Call Stop when the run is over.
func WatchSignals(idle func(os.Signal)) *Signals {
	s := &Signals{
		ch:    make(chan os.Signal, 4),
		idle:  idle,
		done:  make(chan struct{}),
		ended: make(chan struct{}),
		hooks: map[int]func(){},
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	signal.Notify(s.ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	active.Lock()
	active.s = s
	active.Unlock()
	go s.watch()
	return s
}

func (s *Signals) watch() {
	defer close(s.ended)
	for {
		select {
		case sig := <-s.ch:
			if sig == syscall.SIGPIPE {
				continue // the write that caused it fails with EPIPE
			}
			s.mu.Lock()
			if s.busy == 0 {
				for i := 0; i < s.next; i++ {
					if h := s.hooks[i]; h != nil {
						h()
					}
				}
				s.idle(sig)
				os.Exit(ExitInterrupted)
			}
			s.cancel(fmt.Errorf("%w (%v)", ErrInterrupted, sig))
			s.mu.Unlock()
		case <-s.done:
			return
		}
	}
}

// Context is cancelled, with a cause wrapping ErrInterrupted, by a signal
// that comes while a Busy section is open.
func (s *Signals) Context() context.Context { return s.ctx }

// Interrupted reports whether a signal cancelled Context.
func (s *Signals) Interrupted() bool { return errors.Is(context.Cause(s.ctx), ErrInterrupted) }

// Busy opens a section during which a signal cancels Context rather than
// ending the program: the run has made something it must remove, or
// changed something it must finish. The returned func closes it.
func (s *Signals) Busy() (end func()) {
	s.mu.Lock()
	s.busy++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.busy--
			s.mu.Unlock()
		})
	}
}

// AtSignal registers h to run before a signal ends the program outside
// a Busy section (put the terminal back, stop a child that would outlive
// the exit); the returned func removes it. h must not block.
func (s *Signals) AtSignal(h func()) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.next
	s.next++
	s.hooks[i] = h
	return func() {
		s.mu.Lock()
		delete(s.hooks, i)
		s.mu.Unlock()
	}
}

// Stop stops watching; signals have their default effect again.
func (s *Signals) Stop() {
	signal.Stop(s.ch)
	active.Lock()
	if active.s == s {
		active.s = nil
	}
	active.Unlock()
	close(s.done)
	<-s.ended
	s.cancel(nil)
}

// activeSignals is the running tool's Signals, or nil.
func activeSignals() *Signals {
	active.Lock()
	defer active.Unlock()
	return active.s
}

// CheckDataOutput says why f, standard output, cannot take data meant to
// be kept: it is a terminal, /dev/null, or closed. (Go reopens a
// descriptor 0-2 that is closed at start-up as /dev/null, so `>&-`
// arrives here as /dev/null; its writes would all succeed.) nil when f is
// a file, a pipe, a socket or another device.
func CheckDataOutput(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("it is closed (%v)", err)
	}
	switch {
	case isDevNull(f):
		return errors.New("it is /dev/null, or was closed: the backup would be lost")
	case fi.Mode()&os.ModeCharDevice != 0 && term.IsTerminal(int(f.Fd())):
		return errors.New("it is a terminal")
	}
	return nil
}
