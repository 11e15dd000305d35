package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"pedos.dev/backup/internal/archive"
)

// terminal is the user's side of a pseudo-terminal: what was written to
// the terminal so far, and a keyboard.
type terminal struct {
	t         *testing.T
	ptmx, tty *os.File
	mu        sync.Mutex
	out       bytes.Buffer
	seen      int
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no pseudo-terminal under CI: %v", err)
		}
		t.Skipf("no pseudo-terminal: %v", err)
	}
	term := &terminal{t: t, ptmx: ptmx, tty: tty}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		ptmx.Close()
		select {
		case <-done:
		case <-time.After(time.Second):
			// A reader stuck on the terminal after a failure keeps the
			// reading goroutine alive; do not hang the test on it.
		}
	})
	return term
}

// expect waits until the terminal shows s and returns what came before it
// since the last expect.
func (term *terminal) expect(s string) string {
	term.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		term.mu.Lock()
		all := term.out.String()
		term.mu.Unlock()
		if i := strings.Index(all[term.seen:], s); i >= 0 {
			before := all[term.seen : term.seen+i]
			term.seen += i + len(s)
			return before
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the terminal did not show %q; it shows %q", s, all)
		}
		time.Sleep(time.Millisecond)
	}
}

// shows waits (briefly) until the whole output is want; the reader
// may still be copying the last bytes when ReadPassphrase returns.
func (term *terminal) shows(want string) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if term.all() == want {
			return true
		}
	}
	return false
}

func (term *terminal) all() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

func (term *terminal) echo() bool {
	tio, err := unix.IoctlGetTermios(int(term.tty.Fd()), unix.TCGETS)
	if err != nil {
		term.t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// waitNoEcho waits until the reader has turned echo off, as a person
// would wait for the prompt before typing.
func (term *terminal) waitNoEcho() {
	term.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); term.echo(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			term.t.Fatal("echo stays on")
		}
	}
}

func (term *terminal) typ(s string) {
	term.t.Helper()
	if _, err := term.ptmx.Write([]byte(s)); err != nil {
		term.t.Fatal(err)
	}
}

type result struct {
	pass []byte
	err  error
}

// ask runs ReadPassphrase on the terminal in the background.
func (term *terminal) ask(prompt string, confirm bool) <-chan result {
	old := ttyPath
	ttyPath = term.tty.Name()
	term.t.Cleanup(func() { ttyPath = old })
	ch := make(chan result, 1)
	go func() {
		p, err := ReadPassphrase(prompt, confirm)
		ch <- result{p, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("ReadPassphrase did not return")
	}
	return result{}
}

func TestReadPassphraseConfirm(t *testing.T) {
	term := newTerminal(t)
	ch := term.ask("New passphrase: ", true)
	term.expect("New passphrase: ")
	term.waitNoEcho()
	term.typ("s3cret pass\r") // Enter sends CR, as a real terminal's does
	term.expect("\r\n" + ConfirmPassphrasePrompt)
	term.waitNoEcho()
	term.typ("s3cret pass\r")
	r := wait(t, ch)
	if r.err != nil || string(r.pass) != "s3cret pass" {
		t.Fatalf("got %q, %v", r.pass, r.err)
	}
	if want := "New passphrase: \r\n" + ConfirmPassphrasePrompt + "\r\n"; !term.shows(want) {
		t.Errorf("the terminal shows %q, want %q", term.all(), want)
	}
	if !term.echo() {
		t.Error("echo is still off")
	}
}

// The terminal's own line editing works: Ctrl-U kills the line, DEL erases.
func TestReadPassphraseLineEditing(t *testing.T) {
	term := newTerminal(t)
	ch := term.ask("Passphrase: ", false)
	term.expect("Passphrase: ")
	term.waitNoEcho()
	term.typ("wrong\x15right\x7f\x7f\x7fght\r")
	r := wait(t, ch)
	if r.err != nil || string(r.pass) != "right" {
		t.Fatalf("got %q, %v", r.pass, r.err)
	}
	if !term.shows("Passphrase: \r\n") {
		t.Errorf("the terminal shows %q", term.all())
	}
}

func TestReadPassphraseRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typed  []string // one entry per prompt
		err    error
		msg    string
		nAsked int
	}{
		{"mismatch", []string{"one\r", "two\r"}, ErrPassphraseMismatch, "the passphrases do not match", 2},
		{"empty", []string{"\r"}, archive.ErrBadPassphraseText, "unusable passphrase: it is empty", 1},
		{"arrow key", []string{"pass\x1b[Aword\r"}, archive.ErrBadPassphraseText, "control character (U+001B)", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			term := newTerminal(t)
			ch := term.ask("Passphrase: ", true)
			prompts := []string{"Passphrase: ", ConfirmPassphrasePrompt}
			for i, keys := range tc.typed {
				term.expect(prompts[i])
				term.waitNoEcho()
				term.typ(keys)
			}
			r := wait(t, ch)
			if r.pass != nil || r.err == nil || !strings.Contains(r.err.Error(), tc.msg) || (tc.err != nil && !errors.Is(r.err, tc.err)) {
				t.Errorf("got %q, %v; want %q", r.pass, r.err, tc.msg)
			}
			if n := strings.Count(term.all(), ": "); n != tc.nAsked {
				t.Errorf("asked %d times: %q", n, term.all())
			}
			if !term.echo() {
				t.Error("echo is still off")
			}
		})
	}
}

func TestReadPassphraseNoTerminal(t *testing.T) {
	old := ttyPath
	defer func() { ttyPath = old }()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("secret\n"), 0o600)
	for path, msg := range map[string]string{
		file:                        file + " is not a terminal",
		"/nonexistent/dev/tty":      "open /nonexistent/dev/tty: no such file or directory",
		filepath.Join(file, "x/tt"): "not a directory",
	} {
		ttyPath = path
		p, err := ReadPassphrase("Passphrase: ", false)
		if p != nil || !errors.Is(err, ErrNoTerminal) || !strings.Contains(err.Error(), "no terminal to ask for the passphrase on (") ||
			!strings.Contains(err.Error(), msg) || !strings.Contains(Hint(err), "--passphrase-file") {
			t.Errorf("%s: %q, %v (hint %q)", path, p, err, Hint(err))
		}
	}
}

// The real /dev/tty, as a process with a controlling terminal sees it.
// TestHelperProcess is the child.
func startChild(t *testing.T, term *terminal, mode string, stdin string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "PEDOS_TEST_HELPER="+mode)
	var out bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.ExtraFiles = []*os.File{term.tty}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("PEDOS_TEST_HELPER")
	if mode == "" {
		t.Skip("only run as a child process")
	}
	if mode == "watched" {
		WatchSignals(func(sig os.Signal) { fmt.Printf("interrupted (%v)\n", sig) })
	}
	pass, err := ReadPassphrase("Passphrase: ", false)
	rest, _ := io.ReadAll(os.Stdin)
	fmt.Printf("pass=%q err=%v stdin=%q\n", pass, err, rest)
	os.Exit(0)
}

func TestReadPassphraseDevTTY(t *testing.T) {
	term := newTerminal(t)
	cmd, out := startChild(t, term, "read", "data on stdin\n")
	term.expect("Passphrase: ")
	term.waitNoEcho()
	term.typ("from the tty\r")
	if err := cmd.Wait(); err != nil {
		t.Fatal(err, out)
	}
	if want := "pass=\"from the tty\" err=<nil> stdin=\"data on stdin\\n\"\n"; out.String() != want {
		t.Errorf("child: %q, want %q", out, want)
	}
	if !term.shows("Passphrase: \r\n") {
		t.Errorf("terminal: %q", term.all())
	}
}

// Ctrl-C at the prompt kills the program as usual, but not before echo is
// back on.
func TestReadPassphraseInterrupt(t *testing.T) {
	term := newTerminal(t)
	cmd, out := startChild(t, term, "read", "")
	term.expect("Passphrase: ")
	term.waitNoEcho()
	term.typ("half\x03")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Fatalf("child: %v, want death by SIGINT; output %q", err, out)
	}
	if !term.echo() {
		t.Error("echo left off after Ctrl-C")
	}
}

// Under a tool's WatchSignals, Ctrl-C at the prompt ends the program with
// ExitInterrupted and its sentence, after echo is back on.
func TestReadPassphraseInterruptWatched(t *testing.T) {
	term := newTerminal(t)
	cmd, out := startChild(t, term, "watched", "")
	term.expect("Passphrase: ")
	term.waitNoEcho()
	term.typ("half\x03")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
		t.Fatalf("child: %v, want exit status %d; output %q", err, ExitInterrupted, out)
	}
	if out.String() != "interrupted (interrupt)\n" {
		t.Errorf("child said %q", out)
	}
	if !term.echo() {
		t.Error("echo left off after Ctrl-C")
	}
}

func TestChooseProgressTerminal(t *testing.T) {
	term := newTerminal(t)
	if err := pty.Setsize(term.tty, &pty.Winsize{Rows: 30, Cols: 123}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TERM", "xterm")
	r, err := ChooseProgress("auto", term.tty)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := r.(*ProgressBar)
	if !ok {
		t.Fatalf("auto on a terminal: %T", r)
	}
	if w := b.width(); w != 123 {
		t.Errorf("width %d, want 123", w)
	}
	t.Setenv("TERM", "dumb")
	if r, _ := ChooseProgress("auto", term.tty); typeName(r) != "*cli.ProgressLines" {
		t.Errorf("auto on a dumb terminal: %T", r)
	}
}

func TestReadPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), perm)
		os.Chmod(p, perm)
		return p
	}
	for _, tc := range []struct {
		content string
		pass    string
		warn    string
	}{
		{"secret\n", "secret", ""},
		{"secret", "secret", ""},
		{"secret\r\n", "secret", ""},
		{"two words\nsecond line ignored\n", "two words", ""},
		{" padded \n", " padded ", "begins or ends with a space; the space is part of it"},
		{"ünïcode\n", "ünïcode", ""},
		{strings.Repeat("x", 1024) + "\n", strings.Repeat("x", 1024), ""},
	} {
		p := file("ok", tc.content, 0o600)
		pass, warns, err := ReadPassphraseFile(p)
		if err != nil || string(pass) != tc.pass || strings.Join(warns, "|") != "" && tc.warn == "" ||
			tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warn)) {
			t.Errorf("%q: %q %q %v; want %q", tc.content, pass, warns, err, tc.pass)
		}
	}
	for _, tc := range []struct{ content, msg string }{
		{"", "unusable passphrase: it is empty"},
		{"\nsecret\n", "unusable passphrase: it is empty"},
		{"tab\there\n", "control character (U+0009)"},
		{"cr\rinside\n", "control character (U+000D)"},
		{strings.Repeat("x", 1025) + "\n", "longer than 1024 bytes"},
		{strings.Repeat("x", 5000), "longer than 1024 bytes"},
		{"\xff\xfe\n", "not valid UTF-8"},
	} {
		p := file("bad", tc.content, 0o600)
		pass, _, err := ReadPassphraseFile(p)
		if pass != nil || !errors.Is(err, archive.ErrBadPassphraseText) || !strings.Contains(err.Error(), "passphrase from "+p+": ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %q %v; want %q", tc.content, pass, err, tc.msg)
		}
	}
	if _, _, err := ReadPassphraseFile(file("empty", "\nx", 0o600)); Hint(err) != "the passphrase is the first line of the file" {
		t.Errorf("hint for an empty first line: %q", Hint(err))
	}
	if _, _, err := ReadPassphraseFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}

	// A file others may read works, with a warning.
	for _, perm := range []os.FileMode{0o640, 0o604, 0o644} {
		p := file("loose", "secret\n", perm)
		pass, warns, err := ReadPassphraseFile(p)
		want := fmt.Sprintf("passphrase file %s may be read by other users (mode %04o); chmod 600 %s", p, perm, p)
		if err != nil || string(pass) != "secret" || len(warns) != 1 || warns[0] != want {
			t.Errorf("mode %v: %q %q %v", perm, pass, warns, err)
		}
	}
	if _, warns, _ := ReadPassphraseFile(file("owner", "secret\n", 0o400)); warns != nil {
		t.Errorf("mode 0400: %q", warns)
	}

	// "-" reads standard input up to the line end and leaves the rest.
	old := stdin
	defer func() { stdin = old }()
	in := &oneByteReader{r: strings.NewReader("from stdin \nrest of the data")}
	stdin = in
	pass, warns, err := ReadPassphraseFile("-")
	if err != nil || string(pass) != "from stdin " || len(warns) != 1 || !strings.Contains(warns[0], "standard input") {
		t.Errorf("stdin: %q %q %v", pass, warns, err)
	}
	if rest, _ := io.ReadAll(in); string(rest) != "rest of the data" {
		t.Errorf("stdin left: %q", rest)
	}
	// An empty line is an empty passphrase; no input at all, or /dev/null
	// (what a closed standard input becomes), is no passphrase.
	stdin = strings.NewReader("\n")
	if _, _, err := ReadPassphraseFile("-"); err == nil || !strings.Contains(err.Error(), "passphrase from standard input: unusable passphrase: it is empty") {
		t.Errorf("an empty line on stdin: %v", err)
	}
	stdin = strings.NewReader("")
	if _, _, err := ReadPassphraseFile("-"); err == nil || err.Error() != "no passphrase on standard input: it ended before any" {
		t.Errorf("empty stdin: %v", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	stdin = null
	if _, _, err := ReadPassphraseFile("-"); err == nil || err.Error() != "no passphrase on standard input: it is /dev/null, or was closed" {
		t.Errorf("/dev/null as stdin: %v", err)
	}
}

// A file with no line end (here /dev/zero, endless) is read only so far,
// and refused in well under a second.
func TestReadPassphraseFileBounded(t *testing.T) {
	start := time.Now()
	pass, _, err := ReadPassphraseFile("/dev/zero")
	if pass != nil || err == nil || err.Error() != "reading the passphrase from /dev/zero: no line end in its first 64 KiB: not a passphrase file" {
		t.Errorf("/dev/zero: %q, %v", pass, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	long := filepath.Join(t.TempDir(), "long")
	os.WriteFile(long, bytes.Repeat([]byte("x"), 70<<10), 0o600)
	if _, _, err := ReadPassphraseFile(long); err == nil || !strings.Contains(err.Error(), "no line end in its first 64 KiB") {
		t.Errorf("70 KiB without a line end: %v", err)
	}
}

// oneByteReader fails the test if more than one byte is asked for, the
// way a reader that must not consume past a line is used.
type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestConfirm(t *testing.T) {
	for in, want := range map[string]bool{
		"y\n": true, "Y\n": true, "yes\n": true, "YES\n": true, "Yes": true, "  y  \n": true, "y\r\n": true,
		"n\n": false, "\n": false, "": false, "no\n": false, "yess\n": false, "ye\n": false, "y es\n": false,
		"sure\n": false, strings.Repeat("y", 100) + "\n": false,
	} {
		var out strings.Builder
		got, err := Confirm(strings.NewReader(in), &out, "Do you want to proceed?")
		if err != nil || got != want {
			t.Errorf("answer %q: %v, %v; want %v", in, got, err, want)
		}
		wantOut := "Do you want to proceed? [y/N] "
		if in == "" {
			wantOut += "\n"
		}
		if out.String() != wantOut {
			t.Errorf("answer %q: printed %q, want %q", in, out.String(), wantOut)
		}
	}
	// Only the answer's line is read.
	in := &oneByteReader{r: strings.NewReader("y\nnext line\n")}
	if ok, _ := Confirm(in, io.Discard, "Go?"); !ok {
		t.Error("y not taken")
	}
	if rest, _ := io.ReadAll(in); string(rest) != "next line\n" {
		t.Errorf("left %q", rest)
	}
	if _, err := Confirm(iotestErr{}, io.Discard, "Go?"); err == nil {
		t.Error("read error lost")
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("broken") }
