package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"pedos.dev/backup/internal/archive"
)

// ttyPath is the terminal ReadPassphrase asks on; tests point it at a
// pseudo-terminal.
var ttyPath = "/dev/tty"

// ConfirmPassphrasePrompt is the second prompt of ReadPassphrase, as the
// reference words it.
const ConfirmPassphrasePrompt = "Enter again for verification: "

// ErrNoTerminal means there is no terminal to ask for a passphrase on
// (a cron job, a pipe, a service).
var ErrNoTerminal = errors.New("no terminal to ask for the passphrase on")

// ErrPassphraseMismatch means the two entries of a new passphrase differ.
var ErrPassphraseMismatch = errors.New("the passphrases do not match")

// ReadPassphrase asks for a passphrase on the controlling terminal,
// /dev/tty, never on stdin, which may carry data. The prompt goes to the
// terminal too, and what is typed is not echoed. With confirm, it asks a
// second time and refuses a mismatch, as for a new backup. It refuses what
// archive.CheckPassphrase refuses (empty input, control characters such as
// an arrow key's escape sequence), before the confirmation.
//
// Ctrl-C while it waits restores the terminal's echo before the signal
// takes its course, so call it before installing a SIGINT handler of your
// own: with one, the signal no longer ends the program and the read goes
// on with echo back on. A WatchSignals outside a Busy section is the
// exception: it ends the program, after the echo is back. Ctrl-D is
// ignored (x/term reads on through it).
func ReadPassphrase(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, noTerminal(err)
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return nil, noTerminal(fmt.Errorf("%s is not a terminal", ttyPath))
	}
	pass, err := readHidden(tty, prompt)
	if err != nil {
		return nil, err
	}
	if err := archive.CheckPassphrase(pass); err != nil {
		clear(pass)
		return nil, err
	}
	if confirm {
		again, err := readHidden(tty, ConfirmPassphrasePrompt)
		if err != nil {
			clear(pass)
			return nil, err
		}
		same := bytes.Equal(pass, again)
		clear(again)
		if !same {
			clear(pass)
			return nil, ErrPassphraseMismatch
		}
	}
	return pass, nil
}

func noTerminal(err error) error {
	return WithHint(fmt.Errorf("%w (%v)", ErrNoTerminal, err),
		"use --passphrase-file FILE, or --passphrase-file - to read it from standard input")
}

// readHidden prints prompt on tty and reads a line with echo off.
func readHidden(tty *os.File, prompt string) ([]byte, error) {
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	// term.ReadPassword leaves signals on, so Ctrl-C would kill us with
	// echo off and leave the user's shell typing blind.
	if s := activeSignals(); s != nil {
		// The tool's Signals ends the program; echo must be back first.
		defer s.AtSignal(func() {
			term.Restore(fd, state)
			io.WriteString(tty, "\n")
		})()
		return readPrompted(tty, fd, prompt)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case sig := <-sigs:
			term.Restore(fd, state)
			io.WriteString(tty, "\n")
			// With our handler gone the signal has its default effect
			// again, unless the program handles it itself.
			signal.Stop(sigs)
			if s, ok := sig.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), s)
			}
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		<-stopped
	}()

	return readPrompted(tty, fd, prompt)
}

// readPrompted prints prompt on tty and reads a line from it with echo off.
func readPrompted(tty *os.File, fd int, prompt string) ([]byte, error) {
	if _, err := io.WriteString(tty, prompt); err != nil {
		return nil, fmt.Errorf("writing the prompt: %w", err)
	}
	pass, err := term.ReadPassword(fd)
	io.WriteString(tty, "\n") // the Enter was not echoed either
	if errors.Is(err, io.EOF) {
		return nil, errors.New("no passphrase given (end of input)")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return pass, nil
}

// stdin is what ReadPassphraseFile reads for "-"; tests replace it.
var stdin io.Reader = os.Stdin

// ReadPassphraseFile reads a passphrase from the first line of the file
// path, or of standard input when path is "-". Only the line end is
// removed ("\n", or "\r\n": a passphrase cannot contain CR), not other
// white space, unlike the reference, which strips trailing blanks that the
// user may have meant. Standard input is read only up to that line end,
// so what follows stays for whoever reads it next.
//
// The warnings are for the user and do not stop the backup: a file other
// users may read, and white space at either end of the passphrase (it is
// kept, and easily forgotten).
func ReadPassphraseFile(path string) (pass []byte, warnings []string, err error) {
	name, r := path, stdin
	if path == "-" {
		name = "standard input"
		// Go reopens a standard input closed at start-up (<&-) as
		// /dev/null, which would read as an empty passphrase.
		if f, ok := stdin.(*os.File); ok && isDevNull(f) {
			return nil, nil, WithHint(errors.New("no passphrase on standard input: it is /dev/null, or was closed"),
				"give the passphrase on standard input, or use --passphrase-file FILE")
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the passphrase: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			warnings = append(warnings, fmt.Sprintf("passphrase file %s may be read by other users (mode %04o); chmod 600 %s",
				path, fi.Mode().Perm(), path))
		}
		r = f
	}
	line, long, got, err := readLine(r, 1025, maxPassphraseRead)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the passphrase from %s: %w", name, err)
	}
	if path == "-" && got == 0 {
		return nil, nil, WithHint(errors.New("no passphrase on standard input: it ended before any"),
			"give the passphrase on standard input, or use --passphrase-file FILE")
	}
	if long {
		clear(line)
		return nil, nil, fmt.Errorf("passphrase from %s: %w: it is longer than 1024 bytes", name, archive.ErrBadPassphraseText)
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if err := archive.CheckPassphrase(line); err != nil {
		clear(line)
		err = fmt.Errorf("passphrase from %s: %w", name, err)
		if len(line) == 0 {
			err = WithHint(err, "the passphrase is the first line of the file")
		}
		return nil, nil, err
	}
	if t := bytes.TrimSpace(line); len(t) != len(line) {
		warnings = append(warnings, fmt.Sprintf("the passphrase from %s begins or ends with a space; the space is part of it", name))
	}
	return line, warnings, nil
}

// maxPassphraseRead bounds what a passphrase file is read for: a file with
// no line end (/dev/zero, a disk image given by mistake) must not be read
// forever.
const maxPassphraseRead = 64 << 10

// readLine reads up to and including a newline, or to the end of input,
// one byte at a time so that nothing after the line is consumed, but no
// more than limit bytes. It returns the line without its newline, at
// most max bytes of it, whether there was more, and how many bytes it
// read.
func readLine(r io.Reader, max, limit int) (line []byte, long bool, read int, err error) {
	var b [1]byte
	for read < limit {
		n, err := r.Read(b[:])
		if n == 1 {
			read++
			if b[0] == '\n' {
				return line, long, read, nil
			}
			if len(line) < max {
				line = append(line, b[0])
			} else {
				long = true
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return line, long, read, nil
		}
		if err != nil {
			return line, long, read, err
		}
	}
	clear(line)
	return nil, true, read, fmt.Errorf("no line end in its first %d KiB: not a passphrase file", limit>>10)
}

// isDevNull reports whether f is /dev/null.
func isDevNull(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// Confirm asks question followed by " [y/N] " and reads one line from in:
// y or yes, in any case, is yes; anything else, or the end of input, is
// no.
func Confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	if _, err := fmt.Fprintf(out, "%s [y/N] ", question); err != nil {
		return false, err
	}
	var line []byte
	var got bool
	var b [1]byte
	for {
		n, err := in.Read(b[:])
		if n == 1 {
			got = true
			if b[0] == '\n' {
				break
			}
			if len(line) < 64 {
				line = append(line, b[0])
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			if !got {
				fmt.Fprintln(out) // end the prompt's line
			}
			break
		}
		if err != nil {
			return false, err
		}
	}
	switch string(bytes.ToLower(bytes.TrimSpace(line))) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
