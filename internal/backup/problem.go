package backup

import (
	"errors"
	"fmt"
)

// ProblemCode says what kind of problem blocks a backup, for programs
// (tests, the GUI) that react to specific ones.
type ProblemCode string

// Problem codes.
const (
	UnknownVM           ProblemCode = "unknown-vm"            // a named VM does not exist
	BadSelector         ProblemCode = "bad-selector"          // @tag:/@type: selector that is malformed or matches nothing
	EmptySelection      ProblemCode = "empty-selection"       // nothing left to back up
	UnreadableSource    ProblemCode = "unreadable-source"     // a volume, file or the dom0 home cannot be read
	NoDestination       ProblemCode = "no-destination"        // no destination given
	DirMissing          ProblemCode = "dir-missing"           // the destination directory does not exist
	DestinationExists   ProblemCode = "destination-exists"    // the destination file exists
	CommandNotFound     ProblemCode = "command-not-found"     // a destination command's program is not installed
	NoSpace             ProblemCode = "no-space"              // the destination file system has too little free space
	DestinationInHome   ProblemCode = "destination-in-home"   // the dom0 home would be backed up into itself
	DestVMUnknown       ProblemCode = "dest-vm-unknown"       // the destination VM does not exist
	DestVMNotRunning    ProblemCode = "dest-vm-not-running"   // the destination VM is not running
	FilterNotInstalled  ProblemCode = "filter-not-installed"  // the compression program is not installed
	BadCompression      ProblemCode = "bad-compression"       // an impossible compression filter name
	BadPassphrase       ProblemCode = "bad-passphrase"        // a passphrase the scrypt tool could not read back
	BadScryptParameters ProblemCode = "bad-scrypt-parameters" // ScryptLogN out of range
	NotEnoughMemory     ProblemCode = "not-enough-memory"     // the memory budget holds not even one key derivation and chunk
)

// Problem is one reason the backup cannot run. Every problem is found by
// NewPlan, before anything is written.
type Problem struct {
	Code ProblemCode
	// Subject is the VM, selector, path or program concerned.
	Subject string
	// Message says what blocks the backup, naming Subject.
	Message string
	// Hint says how to fix it (often the option to use); may be "".
	Hint string
}

func (p Problem) Error() string { return p.Message }

func problem(code ProblemCode, subject, hint, format string, a ...any) Problem {
	return Problem{Code: code, Subject: subject, Message: fmt.Sprintf(format, a...), Hint: hint}
}

// ProblemsError is the error of Run for a plan with problems.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	if len(e.Problems) == 1 {
		return "backup cannot start: " + e.Problems[0].Message
	}
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return fmt.Sprintf("backup cannot start (%d problems):\n%v", len(e.Problems), errors.Join(errs...))
}
