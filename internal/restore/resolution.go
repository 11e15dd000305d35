package restore

// Resolution is an option that resolves a problem of a plan (doc/reference.md
// B.4), or applies what CheckHost warns a restore would leave at a
// default. A front end offers it in its own terms (the CLI names its flag,
// a GUI shows a checkbox or a button) and sets it with Apply or ApplyRun
// before it plans again.
type Resolution int

// The resolutions. Those of a plan's problems, and IgnoreSizeLimit of a
// data pass that failed with ErrSizeLimit, go in PlanOptions (Apply);
// RestoreGlobalDefaults and RestoreDom0DefaultDispVM, of CheckHost's
// warnings, in Options (ApplyRun).
const (
	SkipConflicting          Resolution = iota + 1 // leave out the VMs whose name the host has
	RenameConflicting                              // restore them as NAME-1, NAME-2, ...
	SkipBroken                                     // leave out the VMs whose template or netvm is missing
	IgnoreMissing                                  // give them the host's default instead
	ExcludeVM                                      // leave the problem's VM out
	SkipDom0Home                                   // leave the dom0 home out
	IgnoreUsernameMismatch                         // restore the dom0 home of another user
	IgnoreSizeLimit                                // read a VM's data beyond its backup-size (a data pass's ErrSizeLimit)
	RestoreGlobalDefaults                          // apply the backup's global settings the host leaves unset
	RestoreDom0DefaultDispVM                       // apply the backup's dom0 default_dispvm
)

// String describes the resolution in words, for logs and messages.
func (r Resolution) String() string {
	switch r {
	case SkipConflicting:
		return "skip the VMs whose name exists on the host"
	case RenameConflicting:
		return "rename the VMs whose name exists on the host"
	case SkipBroken:
		return "skip the VMs whose template or netvm is missing"
	case IgnoreMissing:
		return "use the host's default template or netvm"
	case ExcludeVM:
		return "exclude the VM"
	case SkipDom0Home:
		return "skip the dom0 home"
	case IgnoreUsernameMismatch:
		return "restore the dom0 home of another user"
	case IgnoreSizeLimit:
		return "read all of a VM's data, beyond its backup-size"
	case RestoreGlobalDefaults:
		return "apply the backup's global settings"
	case RestoreDom0DefaultDispVM:
		return "apply the backup's dom0 default_dispvm"
	}
	return "unknown resolution"
}

// Apply sets the resolution in opts; vm is the problem's VM (its name in
// the backup, "dom0" for the home), which ExcludeVM leaves out. It reports
// false for a resolution of the run options (ApplyRun).
func (r Resolution) Apply(opts *PlanOptions, vm string) bool {
	switch r {
	case SkipConflicting:
		opts.SkipConflicting = true
	case RenameConflicting:
		opts.RenameConflicting = true
	case SkipBroken:
		opts.SkipBroken = true
	case IgnoreMissing:
		opts.IgnoreMissing = true
	case ExcludeVM:
		if vm == "" {
			return false
		}
		for _, n := range opts.Exclude {
			if n == vm {
				return true
			}
		}
		opts.Exclude = append(opts.Exclude, vm)
	case SkipDom0Home:
		opts.SkipDom0Home = true
	case IgnoreUsernameMismatch:
		opts.IgnoreUsernameMismatch = true
	case IgnoreSizeLimit:
		opts.IgnoreSizeLimit = true
	default:
		return false
	}
	return true
}

// ApplyRun sets a resolution of CheckHost's warnings in opts; it reports
// false for the others.
func (r Resolution) ApplyRun(opts *Options) bool {
	switch r {
	case RestoreGlobalDefaults:
		opts.GlobalDefaults = true
	case RestoreDom0DefaultDispVM:
		opts.Dom0DefaultDispVM = true
	default:
		return false
	}
	return true
}

// Warning is what CheckHost found that a restore would leave at a
// default. Resolve lists the options that would apply it instead, if any.
type Warning struct {
	Message string
	Resolve []Resolution
}

func (w Warning) String() string { return w.Message }
