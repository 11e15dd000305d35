package backup

import (
	"errors"
	"fmt"
	"slices"
)

// ProblemCode says what kind of problem blocks a backup, for programs
// (tests, the GUI) that react to specific ones.
type ProblemCode string

// Problem codes.
const (
	UnknownVM           ProblemCode = "unknown-vm"            // a named VM does not exist
	BadSelector         ProblemCode = "bad-selector"          // a @tag:/@type: selector that is malformed
	NoMatch             ProblemCode = "no-match"              // a selector that matches no VM
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
	BucketMissing       ProblemCode = "bucket-missing"        // an s3:// destination's bucket does not exist
	CredentialsRefused  ProblemCode = "credentials-refused"   // the object storage refused the destination VM's credentials
	EndpointUnreachable ProblemCode = "endpoint-unreachable"  // the object storage endpoint did not answer the destination VM
	StorageProblem      ProblemCode = "storage-problem"       // an s3:// destination that cannot work otherwise (no prefix, no configuration)
)

// Problem is one reason the backup cannot run. Every problem is found by
// NewPlan, before anything is written.
type Problem struct {
	Code ProblemCode
	// Subject is the VM, selector, path or program concerned.
	Subject string
	// Message says what blocks the backup, naming Subject.
	Message string
	// Hint says how to fix it, in words of no front end; may be "".
	Hint string
	// Resolve lists what would resolve it, first the likeliest: changes
	// of the options (Resolution.Apply), choices for the user, actions
	// on the host.
	Resolve []Resolution
}

func (p Problem) Error() string { return p.Message }

func problem(code ProblemCode, subject, hint, format string, a ...any) Problem {
	return Problem{Code: code, Subject: subject, Message: fmt.Sprintf(format, a...), Hint: hint, Resolve: resolutions[code]}
}

// Resolution is a way to resolve a problem, or to act on a remark of the
// summary (a running VM). A front end offers it in its own terms (the CLI
// names its option or command, a GUI shows a checkbox, a button or the
// page to go back to). Those that change the options are set with Apply
// before planning again; the others are choices the user makes (another
// destination, say) or actions on the host (IsAction).
type Resolution int

// The resolutions.
const (
	// ExcludeVM leaves the problem's Subject (a VM; "dom0": the dom0
	// home) out of the backup: Options.Exclude.
	ExcludeVM Resolution = iota + 1
	// ExcludeDom0Home leaves the dom0 home out: Options.Exclude.
	ExcludeDom0Home
	// DropSelector removes Subject, a VM name or selector, from
	// Options.VMs and Options.Exclude.
	DropSelector
	// DefaultCompression compresses with gzip, the default.
	DefaultCompression
	// DefaultScryptCost uses the default scrypt cost.
	DefaultScryptCost
	// SelectVMs: the user names the VMs to back up (or sets
	// include_in_backups on those a default backup takes).
	SelectVMs
	// ChooseDestination: the user chooses another destination.
	ChooseDestination
	// ChoosePassphrase: the user chooses another passphrase.
	ChoosePassphrase
	// RaiseMemoryBudget: the user gives a larger Options.MaxMemory.
	RaiseMemoryBudget
	// LowerScryptCost: the user chooses a lower Options.ScryptLogN.
	LowerScryptCost
	// StartVM is an action: start Subject (the destination VM).
	StartVM
	// ShutDownVM is an action: shut the VM down before the backup, so
	// that it holds the VM's current state rather than the state from
	// before its start (SummaryRow.Resolve of a running VM).
	ShutDownVM
)

// resolutions are each problem's resolutions, the likeliest first.
var resolutions = map[ProblemCode][]Resolution{
	UnknownVM:           {DropSelector},
	BadSelector:         {DropSelector},
	NoMatch:             {DropSelector},
	EmptySelection:      {SelectVMs},
	UnreadableSource:    {ExcludeVM},
	NoDestination:       {ChooseDestination},
	DirMissing:          {ChooseDestination},
	DestinationExists:   {ChooseDestination},
	CommandNotFound:     {ChooseDestination},
	NoSpace:             {ChooseDestination},
	DestinationInHome:   {ChooseDestination, ExcludeDom0Home},
	DestVMUnknown:       {ChooseDestination},
	DestVMNotRunning:    {StartVM, ChooseDestination},
	FilterNotInstalled:  {DefaultCompression},
	BadCompression:      {DefaultCompression},
	BadPassphrase:       {ChoosePassphrase},
	BadScryptParameters: {DefaultScryptCost},
	NotEnoughMemory:     {RaiseMemoryBudget, LowerScryptCost},
	BucketMissing:       {ChooseDestination},
	CredentialsRefused:  {ChooseDestination},
	EndpointUnreachable: {ChooseDestination},
	StorageProblem:      {ChooseDestination},
}

// String describes the resolution in words, for logs and messages.
func (r Resolution) String() string {
	switch r {
	case ExcludeVM:
		return "leave the VM out"
	case ExcludeDom0Home:
		return "leave the dom0 home out"
	case DropSelector:
		return "drop it from the selection"
	case DefaultCompression:
		return "compress with gzip"
	case DefaultScryptCost:
		return "use the default scrypt cost"
	case SelectVMs:
		return "select the VMs to back up"
	case ChooseDestination:
		return "choose another destination"
	case ChoosePassphrase:
		return "choose another passphrase"
	case RaiseMemoryBudget:
		return "raise the memory budget"
	case LowerScryptCost:
		return "lower the scrypt cost"
	case StartVM:
		return "start the VM"
	case ShutDownVM:
		return "shut the VM down"
	}
	return "unknown resolution"
}

// IsAction reports whether the resolution is an action on the host, not
// a change of the options.
func (r Resolution) IsAction() bool { return r == StartVM || r == ShutDownVM }

// Apply changes opts as the resolution of problem p says, and reports
// whether it did: false for the user's choices and the actions, which
// Apply cannot make.
func (r Resolution) Apply(opts *Options, p Problem) bool {
	switch r {
	case ExcludeVM:
		if p.Subject == "" {
			return false
		}
		if !slices.Contains(opts.Exclude, p.Subject) {
			opts.Exclude = append(opts.Exclude, p.Subject)
		}
	case ExcludeDom0Home:
		if !slices.Contains(opts.Exclude, "dom0") {
			opts.Exclude = append(opts.Exclude, "dom0")
		}
	case DropSelector:
		drop := func(l []string) []string {
			return slices.DeleteFunc(slices.Clone(l), func(s string) bool { return s == p.Subject })
		}
		vms, exclude := drop(opts.VMs), drop(opts.Exclude)
		if len(vms) == len(opts.VMs) && len(exclude) == len(opts.Exclude) {
			return false
		}
		opts.VMs, opts.Exclude = vms, exclude
	case DefaultCompression:
		opts.Compression = ""
	case DefaultScryptCost:
		opts.ScryptLogN = 0
	default:
		return false
	}
	return true
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
