package host

import (
	"os"
	"os/user"
	"testing"
)

// A host without dom0.json (its database written by another system) has
// the running user and $HOME as its dom0 user, and says they are not
// stored.
func TestDom0NotStored(t *testing.T) {
	h := newHost(t)
	if d, stored, err := h.Dom0Stored(); err != nil || !stored || d != (Dom0{User: "user", Home: "/home/user"}) {
		t.Fatalf("%+v %v %v", d, stored, err)
	}
	if err := os.Remove(h.path(dom0File)); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	d, stored, err := h.Dom0Stored()
	if err != nil || stored || d != (Dom0{User: u.Username, Home: home}) {
		t.Fatalf("%+v %v %v", d, stored, err)
	}
	if d2, err := h.Dom0(); err != nil || d2 != d {
		t.Errorf("Dom0: %+v %v", d2, err)
	}
	// A home that cannot be a dom0 home is an error, not a guess.
	t.Setenv("HOME", "relative")
	if _, _, err := h.Dom0Stored(); err == nil {
		t.Error("relative $HOME accepted")
	}
}
