package compress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

const (
	// stderrLimit bounds how much of a filter's stderr we keep: the end is
	// where its error message is, and a chatty filter must not grow memory.
	stderrLimit = 4 << 10
	// waitDelay bounds how long Wait waits for stderr to close after the
	// filter exited, should a child of the filter still hold it open.
	waitDelay = 2 * time.Second
)

// program is an external filter, resolved on PATH. Like the reference
// system it is run with no arguments to compress and with -d to decompress,
// reading stdin and writing stdout.
type program struct {
	name string // as in the header, for messages
	path string
}

func findProgram(name string) (*program, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrFilterNotFound, name, err)
	}
	return &program{name: name, path: path}, nil
}

// process is a running filter and our ends of its stdin and stdout.
type process struct {
	desc   string // command line, for messages
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	stderr tailBuffer
}

func (p *program) start(args ...string) (*process, error) {
	proc := &process{desc: strings.Join(append([]string{p.name}, args...), " ")}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	proc.cmd = exec.Command(p.path, args...)
	proc.cmd.Stdin, proc.cmd.Stdout, proc.cmd.Stderr = inR, outW, &proc.stderr
	proc.cmd.WaitDelay = waitDelay
	err = proc.cmd.Start()
	// The child has its own copies now. Ours must go, or we would never see
	// EOF on its stdout, nor would a write to its stdin fail once it exits.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("compress: starting filter %q: %w", proc.desc, err)
	}
	proc.stdin, proc.stdout = inW, outR
	return proc, nil
}

// wait reaps the filter and turns a failure into an error that carries the
// end of its stderr, which is usually the only useful diagnosis.
func (p *process) wait() error {
	err := p.cmd.Wait()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: it exited 0 but something kept stderr open, which
		// costs us at most some diagnostics.
		return nil
	}
	if msg := strings.TrimSpace(p.stderr.String()); msg != "" {
		return fmt.Errorf("compress: filter %q failed: %w: %s", p.desc, err, msg)
	}
	return fmt.Errorf("compress: filter %q failed: %w", p.desc, err)
}

// filterWriter feeds Write's data to the filter's stdin from the caller's
// goroutine while one goroutine copies the filter's stdout to the
// destination; with both sides moving, neither pipe can fill up and stall.
type filterWriter struct {
	proc   *process
	copied chan error // the stdout copy's result, once it is done
	err    error      // sticky: what Write returns once it failed or after Close
	done   bool       // finish has run
	result error      // the outcome, for Close
}

func (p *program) newWriter(w io.Writer) (io.WriteCloser, error) {
	proc, err := p.start()
	if err != nil {
		return nil, err
	}
	fw := &filterWriter{proc: proc, copied: make(chan error, 1)}
	go func() {
		_, err := io.Copy(w, proc.stdout)
		// After a destination error, closing our end makes the filter
		// fail on its next write instead of blocking on a full pipe.
		proc.stdout.Close()
		fw.copied <- err
	}()
	return fw, nil
}

func (fw *filterWriter) Write(b []byte) (int, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	n, err := fw.proc.stdin.Write(b)
	if err != nil {
		// The filter stopped reading: it died, or its output could not be
		// delivered. Either says more than the EPIPE we got here.
		if fw.finish() == nil {
			fw.result = fmt.Errorf("compress: filter %q exited before reading all its input: %w", fw.proc.desc, err)
		}
		fw.err = fw.result
		return n, fw.err
	}
	return n, nil
}

func (fw *filterWriter) Close() error {
	if !fw.done {
		fw.finish()
	}
	if fw.err == nil {
		fw.err = errClosed
	}
	return fw.result
}

// finish closes the filter's stdin so it flushes and exits, then waits for
// its output to reach the destination and for the process itself. Its
// result is also what Close returns.
func (fw *filterWriter) finish() error {
	fw.done = true
	fw.proc.stdin.Close()
	copyErr := <-fw.copied
	fw.result = fw.proc.wait()
	if copyErr != nil {
		// The destination's failure comes first: the filter's death from
		// the broken pipe is only its consequence.
		fw.result = fmt.Errorf("compress: writing output of filter %q: %w", fw.proc.desc, copyErr)
	}
	return fw.result
}

// filterReader reads the filter's stdout from the caller's goroutine while
// one goroutine feeds it the compressed source.
type filterReader struct {
	proc   *process
	fed    chan feedResult
	err    error // sticky: io.EOF, or the error that ended the stream
	done   bool  // the process has been reaped
	closed bool
}

type feedResult struct {
	srcErr   error // reading the source failed
	stdinErr error // the filter would not take all of the source
}

func (p *program) newReader(r io.Reader) (io.ReadCloser, error) {
	proc, err := p.start("-d")
	if err != nil {
		return nil, err
	}
	fr := &filterReader{proc: proc, fed: make(chan feedResult, 1)}
	go func() {
		res := feed(proc.stdin, r)
		proc.stdin.Close() // EOF for the filter
		fr.fed <- res
	}()
	return fr, nil
}

// feed copies src to the filter's stdin, keeping apart the source's errors,
// which mean the compressed data is missing or damaged, from the pipe's.
func feed(stdin io.Writer, src io.Reader) feedResult {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := stdin.Write(buf[:n]); werr != nil {
				return feedResult{stdinErr: werr}
			}
		}
		if err == io.EOF {
			return feedResult{}
		}
		if err != nil {
			return feedResult{srcErr: err}
		}
	}
}

func (fr *filterReader) Read(b []byte) (int, error) {
	if fr.err != nil {
		return 0, fr.err
	}
	n, err := fr.proc.stdout.Read(b)
	if err == io.EOF {
		err = fr.finish()
	}
	fr.err = err
	return n, err
}

// finish runs at EOF on the filter's stdout. A cleanly exiting filter is
// not enough: the source may have failed mid-way, and a filter such as cat
// cannot tell truncated input from complete input.
func (fr *filterReader) finish() error {
	fr.done = true
	fed := <-fr.fed
	waitErr := fr.proc.wait()
	fr.proc.stdout.Close()
	switch {
	case fed.srcErr != nil:
		return fmt.Errorf("compress: reading input of filter %q: %w", fr.proc.desc, fed.srcErr)
	case waitErr != nil:
		return waitErr
	case fed.stdinErr != nil:
		// Unread input is trailing data we cannot vouch for.
		return fmt.Errorf("compress: filter %q exited before reading all its input: %w", fr.proc.desc, fed.stdinErr)
	}
	return io.EOF
}

func (fr *filterReader) Close() error {
	if fr.closed {
		return nil
	}
	fr.closed = true
	if !fr.done {
		// The consumer gave up: stop the filter rather than let it run on,
		// or block forever on a full stdout pipe. The feeding goroutine is
		// not waited for, since it may be blocked reading the source; its
		// next write to the dead filter fails, and it ends.
		fr.done = true
		fr.proc.cmd.Process.Kill()
		fr.proc.stdout.Close()
		fr.proc.cmd.Wait() // its "killed" status is our doing, not news
		fr.err = errClosed
		return nil
	}
	err := fr.err
	fr.err = errClosed
	if err == io.EOF {
		return nil
	}
	return err
}

// tailBuffer keeps the last stderrLimit bytes written to it. exec's stderr
// goroutine writes it while we may read it, hence the lock.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrLimit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
