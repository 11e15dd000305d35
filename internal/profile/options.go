package profile

import (
	"errors"
	"path/filepath"
	"strings"

	"pedos.dev/backup/internal/backup"
)

// A profile is a backup job: what to back up, where to and how. Options and
// FromOptions convert between a profile and the backup engine's options,
// for every front end (qvm-backup's --profile and --save-profile, a GUI's
// saved jobs).

var (
	// ErrNoSelection: the profile's include: [] selects no VM.
	ErrNoSelection = errors.New("the profile selects no VM (include: [])")
	// ErrDestination: the options send the backup where a profile cannot
	// (standard output, a dom0 command).
	ErrDestination = errors.New("a profile cannot send the backup there")
)

// Options returns the backup options the profile describes. The
// passphrase, if the profile holds one, is not among them: it is
// p.Passphrase, for the front end to choose (a passphrase file may
// override it). Neither is the memory budget, which is the machine's,
// not the job's.
func (p Profile) Options() (backup.Options, error) {
	if p.Include != nil && len(p.Include) == 0 {
		return backup.Options{}, ErrNoSelection
	}
	return backup.Options{
		VMs:         p.Include,
		Exclude:     p.Exclude,
		Compression: p.Compression.FilterName(),
		ScryptLogN:  uint8(p.ScryptLogN),
		Destination: backup.Destination{Path: p.DestinationPath, VM: p.DestinationVM},
		Incremental: p.Incremental,
		FromFull:    p.IncrementalBase == "full",
		FullEvery:   p.FullEvery,
	}, nil
}

// FromOptions is the profile of a backup's options, checked as Save will
// check it: a dom0 destination must be a directory or file path (made
// absolute, as the reference does), not standard output or a command
// (ErrDestination); a VM's location is kept as given. The passphrase is
// not taken: set Passphrase to store it.
func FromOptions(opts backup.Options) (Profile, error) {
	dst := opts.Destination
	p := Profile{
		DestinationVM:   Dom0,
		DestinationPath: dst.Path,
		Include:         opts.VMs,
		Exclude:         opts.Exclude,
		ScryptLogN:      int(opts.ScryptLogN),
		Incremental:     opts.Incremental,
	}
	if opts.Incremental {
		p.FullEvery = opts.FullEvery
		if opts.FromFull {
			p.IncrementalBase = "full"
		}
	}
	if len(p.Include) == 0 {
		p.Include = nil // include: null, the default selection
	}
	if dst.VM != "" && dst.VM != Dom0 {
		p.DestinationVM = dst.VM
	} else {
		if !isPath(dst.Path) {
			what := "a dom0 command"
			if dst.Path == "-" {
				what = "standard output"
			}
			return Profile{}, destinationError(what)
		}
		abs, err := filepath.Abs(dst.Path)
		if err != nil {
			return Profile{}, err
		}
		p.DestinationPath = abs
	}
	switch opts.Compression {
	case "none":
		p.Compression.Off = true
	case "", "gzip":
	default:
		p.Compression.Filter = opts.Compression
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// destinationError is ErrDestination, naming the destination.
type destinationError string

func (e destinationError) Error() string        { return "a profile cannot send the backup to " + string(e) }
func (e destinationError) Is(target error) bool { return target == ErrDestination }

// isPath reports whether a dom0 destination is a path, as the backup
// engine decides: absolute, or starting with "." ("./", "../").
func isPath(loc string) bool {
	return strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, ".")
}
