package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// hintError carries a line of advice for the user along with an error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// WithHint attaches a hint to err; the hint is printed on its own line
// after the error. A nil err stays nil.
func WithHint(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: fmt.Sprintf(format, a...)}
}

// Hint returns the outermost hint attached to err, or "".
func Hint(err error) string {
	var h *hintError
	if errors.As(err, &h) {
		return h.hint
	}
	return ""
}

// usageError marks a mistake in the command line itself (unknown option,
// wrong number of arguments) rather than in what it asked for.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// Usagef returns a usage error: the command line is wrong.
func Usagef(format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...)}
}

// AsUsage marks err as a usage error.
func AsUsage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err}
}

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// Exit codes of the tools, as argparse uses them: 2 for a bad command line.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// ExitCode is the exit status for err.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case IsUsage(err):
		return ExitUsage
	}
	return ExitError
}

// PrintError writes "tool: error: message" and, if err has one, a
// "hint: ..." line. A message spanning lines keeps its later lines
// indented under the first, so every line stays attributable.
func PrintError(w io.Writer, tool string, err error) {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "\n  ")
	fmt.Fprintf(w, "%s: error: %s\n", tool, msg)
	if h := Hint(err); h != "" {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
}

// Warn writes "tool: warning: message".
func Warn(w io.Writer, tool, format string, a ...any) {
	fmt.Fprintf(w, "%s: warning: %s\n", tool, fmt.Sprintf(format, a...))
}
