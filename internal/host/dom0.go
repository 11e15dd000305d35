package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
)

// Dom0 is the dom0 user whose home a backup stores (as dom0-home/<base
// name of Home>). It is kept in $ROOT/dom0.json, not in pedos.xml: the
// database is backed up whole and restored elsewhere, the user is local.
// A host without dom0.json uses the running user (see Dom0Stored).
type Dom0 struct {
	User string `json:"user"`
	Home string `json:"home"`
}

var dom0UserRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

func (d Dom0) check() error {
	if !dom0UserRE.MatchString(d.User) || len(d.User) > 255 {
		return errorf(ErrInvalid, "invalid dom0 user name %q", d.User)
	}
	if !filepath.IsAbs(d.Home) || filepath.Clean(d.Home) != d.Home || d.Home == "/" {
		return errorf(ErrInvalid, "dom0 home %q must be a clean absolute path below /", d.Home)
	}
	return checkText("dom0 home", d.Home)
}

func (d Dom0) marshal() []byte {
	b, _ := json.MarshalIndent(d, "", "  ")
	return append(b, '\n')
}

// resolve fills in the defaults: the current user and $HOME.
func (o InitOptions) resolve() (Dom0, error) {
	d := Dom0{User: o.User, Home: o.Home}
	var err error
	if d.User == "" {
		if d.User, err = currentUser(); err != nil {
			return d, err
		}
	}
	if d.Home == "" {
		if d.Home, err = os.UserHomeDir(); err != nil {
			return d, fmt.Errorf("finding the dom0 home: %w", err)
		}
	}
	d.Home = filepath.Clean(d.Home)
	return d, d.check()
}

func currentUser() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("finding the dom0 user: %w", err)
	}
	return u.Username, nil
}

// Dom0 returns the dom0 user and home directory; see Dom0Stored.
func (h *Host) Dom0() (Dom0, error) {
	d, _, err := h.Dom0Stored()
	return d, err
}

// Dom0Stored returns the dom0 user and home directory and whether the
// host stores them. A host whose database was written by another system
// (a Qubes qubes.xml made pedos.xml) has no dom0.json: then they are the
// running user and $HOME, as pedos-host init would have chosen.
func (h *Host) Dom0Stored() (Dom0, bool, error) {
	var d Dom0
	data, err := os.ReadFile(h.path(dom0File))
	if errors.Is(err, fs.ErrNotExist) {
		d, err := InitOptions{}.resolve()
		return d, false, err
	}
	if err != nil {
		return d, true, err
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return d, true, fmt.Errorf("%s: %w", h.path(dom0File), err)
	}
	return d, true, d.check()
}

// SetDom0 changes the dom0 user and home directory.
func (h *Host) SetDom0(d Dom0) error {
	if err := d.check(); err != nil {
		return err
	}
	return h.locked(func() error { return writeFileAtomic(h.path(dom0File), d.marshal(), 0o644) })
}
