package qrexec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// MaybeServe runs the VM side of a service and exits, when this process
// was started as one by the local transport; otherwise it returns at once.
// Every program that opens a VM sink or source through Local (and the test
// binary of such a package, from TestMain) must call it first thing in main.
func MaybeServe() {
	service, ok := os.LookupEnv(serviceEnv)
	if !ok {
		return
	}
	os.Exit(serve(service))
}

// serve is the VM side of one call. Its working directory is the VM's
// filesystem; stdin, stdout and stderr are the call's.
func serve(service string) int {
	h := newHandler()
	becomeGroupLeader()
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	loc, err := readLocation(in)
	if err != nil {
		return h.fail(err)
	}
	root, err := os.OpenRoot(".")
	if err != nil {
		return h.fail(err)
	}
	switch service {
	case ServiceBackup:
		return serveBackup(h, root, loc, &frames{in: in, raw: os.Stdin})
	case ServiceRestore:
		return serveRestore(h, root, loc)
	case ServiceCheck:
		return serveCheck(loc)
	case ServiceList:
		return serveList(h, root, loc)
	case ServiceBrowse:
		return serveBrowse(h, root, loc)
	}
	return h.fail(fmt.Errorf("unknown service %q", service))
}

// handler orders the VM side's one irreversible step, committing its
// output, against an abort that may arrive at any time (a signal, or EOF
// before the end of the stream).
type handler struct {
	mu       sync.Mutex
	undo     func() // removes partial output or kills the command; may be nil
	finished bool   // the output is committed: too late to undo
}

// newHandler makes the abort signals abort the service. It must run before
// there is anything to undo.
func newHandler() *handler {
	h := &handler{}
	// A write to a dom0 that went away must fail like any other, so that
	// we clean up, rather than kill us on the spot.
	if len(brokenPipe) > 0 { // no signals would mean all of them
		signal.Notify(make(chan os.Signal, 1), brokenPipe...)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, abortSignals...)
	go func() {
		sig := <-sigs
		h.abort(fmt.Sprintf("aborted (%v)", sig))
	}()
	return h
}

// setUndo registers how to undo the partial output.
func (h *handler) setUndo(undo func()) {
	h.mu.Lock()
	h.undo = undo
	h.mu.Unlock()
}

// commit runs do, which makes the output final, unless an abort came first.
func (h *handler) commit(do func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := do(); err != nil {
		return err
	}
	h.finished = true
	return nil
}

// abort undoes the partial output and exits. It keeps the lock: nothing
// may commit after it.
func (h *handler) abort(why string) {
	h.mu.Lock()
	fmt.Fprintln(os.Stderr, why)
	if h.undo != nil && !h.finished {
		h.undo()
	}
	os.Exit(1)
}

// fail reports err, undoes the partial output and returns the exit status.
// It keeps the lock too, as the caller is on its way out.
func (h *handler) fail(err error) int {
	h.mu.Lock()
	fmt.Fprintln(os.Stderr, err)
	if h.undo != nil && !h.finished {
		h.undo()
	}
	return 1
}

// reply sends a line to dom0.
func reply(format string, args ...any) error {
	_, err := fmt.Fprintf(os.Stdout, format+"\n", args...)
	return err
}

// readLocation reads the location line as the reference system does: one
// line, CR/LF removed.
func readLocation(in *bufio.Reader) (string, error) {
	line, err := in.ReadSlice('\n')
	if err != nil && err != bufio.ErrBufferFull {
		return "", errors.New("no location line")
	}
	loc := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	switch {
	case err == bufio.ErrBufferFull || len(loc) > MaxLocation:
		return "", fmt.Errorf("location line is longer than %d bytes", MaxLocation)
	case loc == "":
		return "", errors.New("empty location")
	}
	return loc, nil
}

// inVM turns a location into a path for the VM's os.Root: an absolute path
// starts at the top of the VM's filesystem.
func inVM(loc string) string {
	if rel := strings.TrimLeft(loc, "/"); rel != "" {
		return rel
	}
	return "."
}

// command returns the command that runs the location line, or an error
// when its first word is not a program, like the reference system's
// "Invalid command". what describes the path case for the message, and
// pathErr is why the location did not work as a path (a path leaving the
// VM's filesystem, say), if that is news.
func command(loc, what string, pathErr error) (*exec.Cmd, error) {
	word, err := firstWord(loc)
	if err == nil {
		_, err = exec.LookPath(word)
	}
	if err != nil {
		if word == "" {
			word = loc
		}
		msg := fmt.Sprintf("Invalid command %s (not %s in the VM, nor a program)", word, what)
		if pathErr != nil && !errors.Is(pathErr, fs.ErrNotExist) && !errors.Is(pathErr, syscall.ENOTDIR) {
			msg += ": " + pathErr.Error()
		}
		return nil, errors.New(msg)
	}
	cmd := exec.Command("/bin/sh", "-c", loc)
	// The command sees the VM's environment, not the service's.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, serviceEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stderr = os.Stderr
	return cmd, nil
}

// exitStatus turns a command's end into the service's: its own exit
// status, so that dom0 reports what the command said.
func exitStatus(err error) int {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if code := exitErr.ExitCode(); code > 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "command ended: %v\n", exitErr)
	return 1
}

// firstWord returns the first word of a shell command line, with quotes
// and backslashes applied: enough to check that it names a program.
func firstWord(line string) (string, error) {
	var w strings.Builder
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	for ; i < len(line); i++ {
		switch c := line[i]; c {
		case ' ', '\t', ';', '&', '|', '<', '>', '(', ')':
			return w.String(), nil
		case '\\':
			if i++; i < len(line) {
				w.WriteByte(line[i])
			}
		case '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated quote")
			}
			w.WriteString(line[i+1 : i+1+end])
			i += 1 + end
		case '"':
			for i++; ; i++ {
				if i == len(line) {
					return "", errors.New("unterminated quote")
				}
				if line[i] == '"' {
					break
				}
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("$`\"\\", line[i+1]) >= 0 {
					i++
				}
				w.WriteByte(line[i])
			}
		default:
			w.WriteByte(c)
		}
	}
	return w.String(), nil
}
