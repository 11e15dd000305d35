package host

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error from this package that concerns one of these
// conditions wraps the sentinel and names the VM, property or file.
var (
	// ErrNoHost: the directory holds no pedos.xml.
	ErrNoHost = errors.New("no PedOS host")
	// ErrNoSuchVM: no VM of that name.
	ErrNoSuchVM = errors.New("no such VM")
	// ErrNoSuchVolume: the VM has no volume of that name.
	ErrNoSuchVolume = errors.New("no such volume")
	// ErrExists: the name (VM, host, device, file) is already taken.
	ErrExists = errors.New("already exists")
	// ErrInUse: other VMs or global properties still refer to the VM.
	ErrInUse = errors.New("in use")
	// ErrInvalid: a name or value that the schema does not allow.
	ErrInvalid = errors.New("invalid")
	// ErrRunning: the operation needs the VM halted.
	ErrRunning = errors.New("VM is running")
	// ErrNotRunning: the operation needs the VM running.
	ErrNotRunning = errors.New("VM is not running")
	// ErrNoSuchPool: no storage pool of that name.
	ErrNoSuchPool = errors.New("no such storage pool")
	// ErrPoolDriver: the pool's driver keeps no image files PedOS can use.
	ErrPoolDriver = errors.New("unsupported storage pool driver")
	// ErrShrink: a resize would cut data off the end of a volume.
	ErrShrink = errors.New("shrinking a volume discards data")
)

// errorf returns an error that reads as format says and matches kind
// (and any %w in format) with errors.Is, so messages need not repeat the
// sentinel's text.
func errorf(kind error, format string, a ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, a...)}
}

type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// withArticle puts "a" or "an" before a class name: "an AppVM".
func withArticle(class string) string {
	if class != "" && strings.ContainsRune("AEIOU", rune(class[0])) {
		return "an " + class
	}
	return "a " + class
}
