package backup

import (
	"time"

	"pedos.dev/backup/internal/qrexec"
)

// Options describe one backup.
type Options struct {
	// VMs selects what to back up: VM names, "@tag:NAME" (the VMs with that
	// tag) and "@type:CLASS" (the VMs of that class). "dom0" means the dom0
	// user's home. Empty: every VM whose include_in_backups is true.
	VMs []string
	// Exclude leaves VMs out after VMs was applied; the same selectors.
	Exclude []string
	// Compression is the filter: "" means gzip, "none" no compression;
	// gzip and zstd are built in, any other name is a program that must
	// be installed.
	Compression string
	// ScryptLogN is the scrypt cost of every key (N = 2^logN, r 8, p 1);
	// 0 means 18.
	ScryptLogN  uint8
	Destination Destination
	// Passphrase may be left empty for a plan that is only shown, and set
	// later with Plan.SetPassphrase; Run needs it.
	Passphrase []byte
	// Now gives the time of the backup (file name, backup id, member times,
	// backup_timestamp); nil means time.Now.
	Now func() time.Time
	// SelectedMetadataOnly keeps out of the archive's qubes.xml the VMs
	// that are neither backed up nor named by a backed-up VM (its template,
	// netvm, default_dispvm, device backends, ... in turn) or by a global
	// property. The reference writer always stores the whole database, so
	// a backup of one VM tells the names and settings of all (E.19).
	SelectedMetadataOnly bool
	// MaxMemory is the memory budget in bytes for the archive writer's
	// chunk buffers and key derivations; 0 means half of what the machine
	// (and the process's cgroup) has available.
	MaxMemory int64
	// Incremental makes the backup an increment of the destination's last
	// backup when dom0 has its record (doc/incremental.md): only the
	// blocks that changed are stored. It is full when there is no record,
	// or after FullEvery increments. Either way the backup is recorded,
	// once published, as the base of the next one.
	Incremental bool
	// FromFull bases the increment on the chain's full backup instead of
	// its last one (a differential backup).
	FromFull bool
	// FullEvery is how many increments a chain gets before a backup is
	// full again; 0 means DefaultFullEvery.
	FullEvery int
	// IndexDir is where dom0 keeps its record of each destination's
	// chain; "" means backup-chains in the host's state directory.
	IndexDir string
	// Transport reaches a destination VM; nil means qrexec.NewLocal on the
	// host, which needs the program to call qrexec.MaybeServe first thing.
	Transport qrexec.Transport

	// chunkSize cuts compressed streams; 0 means the format's 100 MiB.
	// Only tests change it.
	chunkSize int
	// syncProgress reports on the data path, not through progress.Async,
	// so that an event marks a precise moment. Only tests set it.
	syncProgress bool
}

// Destination is where the archive goes: see the package documentation.
type Destination struct {
	// Path: in dom0 a directory, a new file, "-" for stdout, or a command
	// line; in a VM the location line of its qubes.Backup service.
	Path string
	// VM is the destination VM; "" or "dom0" means dom0.
	VM string
}

// TargetKind is what a destination resolved to.
type TargetKind int

// The kinds of destination.
const (
	ToDirectory TargetKind = iota + 1 // a new file in an existing dom0 directory
	ToFile                            // a new dom0 file named by the user
	ToStdout                          // the writer given to Run
	ToCommand                         // a dom0 command's stdin
	ToVM                              // a VM's qubes.Backup service
)

// Target is a resolved destination.
type Target struct {
	Kind TargetKind
	// Path is the absolute directory or file (ToDirectory, ToFile), the
	// command line (ToCommand) or the location in the VM (ToVM).
	Path string
	VM   string // ToVM only
}

// String describes the target for a summary.
func (t Target) String() string {
	switch t.Kind {
	case ToDirectory:
		return "new file " + backupFilePrefix + "YYYY-MM-DDTHHMMSS in directory " + t.Path
	case ToFile:
		return "new file " + t.Path
	case ToStdout:
		return "standard output"
	case ToCommand:
		return "command in dom0: " + t.Path
	case ToVM:
		return "VM " + t.VM + ": " + t.Path
	}
	return "no destination"
}

// backupFilePrefix starts the name of a backup file made in a directory.
const backupFilePrefix = "qubes-backup-"

// backupFileName is the file name for a backup made at t.
func backupFileName(t time.Time) string {
	return backupFilePrefix + t.Format("2006-01-02T150405")
}
