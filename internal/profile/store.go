package profile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Dir is the directory under the host root that holds the profiles.
const Dir = "backup-profiles"

// ext is the profiles' file name extension.
const ext = ".yaml"

// maxSize bounds what Load reads: a real profile is a few hundred bytes.
const maxSize = 1 << 20

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidateName accepts profile names: a letter or digit, then letters,
// digits, '_', '.' and '-', at most 100 characters; a name, not a path.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 100 {
		return fmt.Errorf("%w: invalid profile name %q: use up to 100 letters, digits, '_', '.' and '-', starting with a letter or digit (a name, not a file path)", ErrInvalid, name)
	}
	return nil
}

// Path is the file that holds the profile name under the host root.
func Path(root, name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if root == "" {
		return "", errors.New("no PedOS root directory given")
	}
	return filepath.Join(root, Dir, name+ext), nil
}

// Error is a problem with a stored profile.
type Error struct {
	Path string // the profile file
	Line int    // the line at fault, or 0 when it concerns the whole file
	Msg  string
	Hint string // advice for the user (for cli.WithHint), or ""
	Err  error  // ErrInvalid, ErrUnsupported, ErrInsecure or an fs error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("backup profile %s, line %d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("backup profile %s: %s", e.Path, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads the profile name under the host root. It refuses a profile
// holding a passphrase that other users can read, as ssh refuses a
// readable private key: the passphrase must be assumed known.
func Load(root, name string) (Profile, error) {
	path, err := Path(root, name)
	if err != nil {
		return Profile{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		e := &Error{Path: path, Msg: "cannot read it: " + unwrapPath(err), Err: err}
		if errors.Is(err, fs.ErrNotExist) {
			e.Msg = fmt.Sprintf("no backup profile named %q", name)
			if names, _ := List(root); len(names) > 0 {
				e.Hint = "saved profiles: " + strings.Join(names, ", ")
			}
		}
		return Profile{}, e
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Profile{}, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	if !fi.Mode().IsRegular() {
		return Profile{}, &Error{Path: path, Msg: "not a regular file", Err: ErrInvalid}
	}
	if fi.Size() > maxSize {
		return Profile{}, &Error{Path: path, Msg: fmt.Sprintf("too large (%d bytes; a profile is a few lines)", fi.Size()), Err: ErrInvalid}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return Profile{}, &Error{Path: path, Msg: "cannot read it: " + unwrapPath(err), Err: err}
	}
	if len(data) > maxSize {
		return Profile{}, &Error{Path: path, Msg: "too large (a profile is a few lines)", Err: ErrInvalid}
	}
	p, pr := parse(data)
	if pr != nil {
		return Profile{}, &Error{Path: path, Line: pr.line, Msg: pr.msg, Hint: pr.hint, Err: pr.err}
	}
	if perm := fi.Mode().Perm(); p.HasPassphrase() && perm&0o077 != 0 {
		return Profile{}, &Error{Path: path, Err: ErrInsecure,
			Msg:  fmt.Sprintf("it holds a passphrase but other users may read it (mode %04o)", perm),
			Hint: "chmod 600 " + path}
	}
	return p, nil
}

// unwrapPath drops the "open PATH: " prefix of an fs error whose path the
// message already names.
func unwrapPath(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Save writes the profile name under the host root, replacing any old one:
// mode 0600 in a 0700 directory, atomically (a temporary file, fsync,
// rename, fsync of the directory), so a crash leaves the old profile or the
// new one, and no reader sees half a file or a passphrase with loose
// permissions.
func Save(root, name string, p Profile) error {
	path, err := Path(root, name)
	if err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("backup profile %q: %w", name, err)
	}
	data, err := marshal(p)
	if err != nil {
		return fmt.Errorf("backup profile %q: %w", name, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving backup profile %q: %w", name, err)
	}
	// MkdirAll keeps an existing directory's mode, and the umask may have
	// loosened a new one.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("saving backup profile %q: %w", name, err)
	}
	if err := writeAtomic(path, data); err != nil {
		return fmt.Errorf("saving backup profile %q: %w", name, err)
	}
	return nil
}

// testHookBeforeRename, when set by tests, runs after the temporary file
// is written and before it is renamed.
var testHookBeforeRename func(tmp string) error

func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	// CreateTemp makes the file 0600 whatever the umask.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if testHookBeforeRename != nil {
		if err = testHookBeforeRename(f.Name()); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // the profile is in place; only its durability is unknown
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// List returns the names of the saved profiles, sorted; none when the
// directory does not exist.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ext)
		if ok && e.Type().IsRegular() && ValidateName(name) == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Remove deletes the profile name; removing one that does not exist is not
// an error.
func Remove(root, name string) error {
	path, err := Path(root, name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing backup profile %q: %w", name, err)
	}
	return nil
}
