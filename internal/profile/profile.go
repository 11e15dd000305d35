package profile

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strings"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/scryptenc"
)

var (
	// ErrInvalid means a profile's name or content is wrong.
	ErrInvalid = errors.New("invalid backup profile")
	// ErrInsecure means a profile holding a passphrase can be read by
	// other users.
	ErrInsecure = errors.New("backup profile readable by other users")
	// ErrUnsupported means a profile uses a reference feature PedOS does
	// not have (passphrase_vm).
	ErrUnsupported = errors.New("unsupported backup profile feature")
)

// Dom0 is the destination_vm value for a directory on the host itself.
const Dom0 = "dom0"

// Profile is one backup profile.
type Profile struct {
	// DestinationVM is the VM that receives the backup, or Dom0.
	DestinationVM string
	// DestinationPath is an absolute directory when DestinationVM is
	// Dom0; otherwise the path or command line handed to the VM, as given.
	DestinationPath string
	// Include lists VM names, @tag:NAME and @type:CLASS entries. nil
	// (include: null) means the default selection; an empty non-nil list
	// is kept as include: [] and selects nothing.
	Include []string
	// Exclude lists entries to leave out, in the same syntax.
	Exclude []string
	// Compression is the compression key; the zero value is the default
	// (gzip).
	Compression Compression
	// Passphrase is passphrase_text, or nil.
	Passphrase []byte
	// ScryptLogN is the PedOS key scrypt_logn: the scrypt cost of each
	// chunk key as a power of two; 0 means the engine's default.
	ScryptLogN int
	// Incremental, IncrementalBase and FullEvery are the PedOS keys
	// incremental, incremental_base and full_every: back up incrementally
	// (qvm-backup --incremental), on the chain's full backup rather than
	// its last ("full"; "" is last), with a full backup after FullEvery
	// increments (0: the engine's default).
	Incremental     bool
	IncrementalBase string
	FullEvery       int
}

// Compression is the value of the compression key: true (the default
// filter, gzip), false, or the name of a filter program.
type Compression struct {
	Off    bool   // compression: false
	Filter string // compression: NAME; "" means the default filter
}

// Enabled reports whether the backup is compressed.
func (c Compression) Enabled() bool { return !c.Off }

// FilterName is the filter to compress with, as the compress package names
// it: "gzip" by default, "none" when compression is off.
func (c Compression) FilterName() string {
	switch {
	case c.Off:
		return "none"
	case c.Filter == "":
		return "gzip"
	}
	return c.Filter
}

// String is the value as the profile spells it.
func (c Compression) String() string {
	switch {
	case c.Off:
		return "false"
	case c.Filter == "":
		return "true"
	}
	return c.Filter
}

// HasPassphrase reports whether the profile supplies the passphrase.
func (p Profile) HasPassphrase() bool { return len(p.Passphrase) > 0 }

// String describes p for messages and debugging, with the passphrase
// redacted so that a stray %v cannot print it.
func (p Profile) String() string {
	pass := "none"
	if p.HasPassphrase() {
		pass = "REDACTED"
	}
	return fmt.Sprintf("{destination_vm=%s destination_path=%q include=%s exclude=%v compression=%s passphrase_text=%s scrypt_logn=%d incremental=%t incremental_base=%s full_every=%d}",
		p.DestinationVM, p.DestinationPath, includeString(p.Include), p.Exclude, p.Compression, pass, p.ScryptLogN,
		p.Incremental, p.IncrementalBase, p.FullEvery)
}

// GoString is String, so that %#v does not print the passphrase either.
func (p Profile) GoString() string { return "profile.Profile" + p.String() }

// LogValue keeps the passphrase out of logs.
func (p Profile) LogValue() slog.Value {
	pass := "none"
	if p.HasPassphrase() {
		pass = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("destination_vm", p.DestinationVM),
		slog.String("destination_path", p.DestinationPath),
		slog.String("include", includeString(p.Include)),
		slog.Any("exclude", p.Exclude),
		slog.String("compression", p.Compression.String()),
		slog.String("passphrase_text", pass),
		slog.Int("scrypt_logn", p.ScryptLogN),
		slog.Bool("incremental", p.Incremental),
		slog.String("incremental_base", p.IncrementalBase),
		slog.Int("full_every", p.FullEvery),
	)
}

func includeString(l []string) string {
	if l == nil {
		return "null"
	}
	return fmt.Sprint(l)
}

// Validate checks every field as Load would, so that Save never writes a
// profile Load refuses.
func (p Profile) Validate() error {
	bad := func(key, msg string) error { return fmt.Errorf("%w: %s: %s", ErrInvalid, key, msg) }
	if msg := checkDestVM(p.DestinationVM); msg != "" {
		return bad(keyDestVM, msg)
	}
	if msg := checkDestPath(p.DestinationVM, p.DestinationPath); msg != "" {
		return bad(keyDestPath, msg)
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{keyInclude, p.Include}, {keyExclude, p.Exclude}} {
		for _, s := range l.list {
			if _, msg := checkSelector(s); msg != "" {
				return bad(l.key, msg)
			}
		}
	}
	if p.Compression.Off && p.Compression.Filter != "" {
		return bad(keyCompression, fmt.Sprintf("filter %q given with compression off", p.Compression.Filter))
	}
	if p.Compression.Filter != "" {
		if msg := checkFilter(p.Compression.Filter); msg != "" {
			return bad(keyCompression, msg)
		}
	}
	if p.Passphrase != nil {
		if msg := checkPassphrase(p.Passphrase); msg != "" {
			return bad(keyPassphrase, msg)
		}
	}
	if msg := checkLogN(p.ScryptLogN); msg != "" {
		return bad(keyLogN, msg)
	}
	if msg := checkBase(p.IncrementalBase); msg != "" {
		return bad(keyBase, msg)
	}
	if msg := checkFullEvery(p.FullEvery); msg != "" {
		return bad(keyFullEvery, msg)
	}
	if !p.Incremental && (p.IncrementalBase != "" || p.FullEvery != 0) {
		return bad(keyIncremental, chainKeysAlone)
	}
	return nil
}

// chainKeysAlone is the message for incremental_base or full_every
// without incremental: true.
const chainKeysAlone = "incremental_base and full_every need incremental: true"

// maxFullEvery bounds full_every: a chain that long is a mistake.
const maxFullEvery = 1000

func checkBase(base string) string {
	if base != "" && base != "last" && base != "full" {
		return fmt.Sprintf("%q is neither last nor full", base)
	}
	return ""
}

func checkFullEvery(n int) string {
	if n < 0 || n > maxFullEvery {
		return fmt.Sprintf("%d out of range (1-%d)", n, maxFullEvery)
	}
	return ""
}

// The checks return a message for the user, or "" when the value is good;
// Load adds the line number, Validate the key.

func checkDestVM(vm string) string {
	if vm == "" {
		return "empty (use dom0 for a directory on this host)"
	}
	if err := host.ValidateName(vm); err != nil {
		return err.Error()
	}
	return ""
}

func checkDestPath(vm, p string) string {
	switch {
	case p == "":
		return "empty"
	case hasControl(p):
		return fmt.Sprintf("%q contains a control character", p)
	case vm == Dom0 && !path.IsAbs(p):
		return fmt.Sprintf("%q is not an absolute path (a dom0 destination must be one)", p)
	}
	return ""
}

var (
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	wildRE = regexp.MustCompile(`[*?\[\]]`)
)

// vmClasses are the classes @type: may name.
var vmClasses = []string{host.AdminVM, host.TemplateVM, host.AppVM, host.StandaloneVM, host.DispVM}

// checkSelector checks an include/exclude entry and returns its canonical
// spelling (the legacy "$" prefix becomes "@", as the reference does).
func checkSelector(s string) (string, string) {
	if strings.HasPrefix(s, "$") {
		s = "@" + s[1:]
	}
	switch {
	case strings.HasPrefix(s, "@tag:"):
		if !tagRE.MatchString(s[len("@tag:"):]) {
			return s, fmt.Sprintf("%q: invalid tag name (use letters, digits, '_', '.', '-')", s)
		}
	case strings.HasPrefix(s, "@type:"):
		class := s[len("@type:"):]
		for _, c := range vmClasses {
			if class == c {
				return s, ""
			}
		}
		return s, fmt.Sprintf("%q: unknown VM class (want one of %s)", s, strings.Join(vmClasses, ", "))
	case strings.HasPrefix(s, "@"):
		return s, fmt.Sprintf("%q: unknown selector (want a VM name, @tag:NAME or @type:CLASS)", s)
	case wildRE.MatchString(s):
		return s, fmt.Sprintf("%q: wildcards are not expanded in a profile; list the VM names", s)
	default:
		if err := host.ValidateName(s); err != nil {
			return s, err.Error()
		}
	}
	return s, ""
}

func checkFilter(name string) string {
	if name == "" || !archive.ValidHeaderValue(name) {
		return fmt.Sprintf("%q is not a filter name (true, false, or a program name of letters, digits and '-', such as xz)", name)
	}
	return ""
}

func checkPassphrase(pass []byte) string {
	if err := archive.CheckPassphrase(pass); err != nil {
		return err.Error()
	}
	return ""
}

func checkLogN(n int) string {
	if n == 0 {
		return ""
	}
	p := scryptenc.DefaultParams
	if n < 0 || n > 255 {
		return fmt.Sprintf("%d out of range (10-40)", n)
	}
	p.LogN = uint8(n)
	if err := p.ValidateForWriting(); err != nil {
		return fmt.Sprintf("%d out of range (10-40)", n)
	}
	return ""
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}
