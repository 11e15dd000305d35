package admintools

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmPrefs is qvm-prefs: list, print, set or reset VM properties.
func QvmPrefs(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-prefs", stdin: stdin, stdout: stdout, stderr: stderr}
	var reset, get, set, hideDefault bool
	c := newRoot(e, "[options] VMNAME [PROPERTY [VALUE]]",
		"List the properties of a VM (D marks a default value, - a value that was set),\n"+
			"print one, set one to VALUE, or reset one to its default with --default.\n"+
			"A VM reference or the netvm is cleared with an empty VALUE ('').")
	f := c.Flags()
	f.BoolVarP(&reset, "default", "D", false, "reset PROPERTY to its default value")
	f.BoolVarP(&get, "get", "g", false, "print the value of PROPERTY (the default action with no VALUE)")
	f.BoolVarP(&set, "set", "s", false, "set PROPERTY to VALUE (the default action with a VALUE)")
	f.BoolVar(&hideDefault, "hide-default", false, "when listing, leave out properties that have their default value")
	c.Args = nargs(1, 3, "VMNAME")
	c.RunE = func(_ *cobra.Command, a []string) error {
		vm := a[0]
		switch {
		case btoi(reset)+btoi(get)+btoi(set) > 1:
			return cli.Usagef("--default, --get and --set exclude each other")
		case (reset || get || set) && len(a) < 2:
			return cli.Usagef("missing PROPERTY")
		case (reset || get) && len(a) == 3:
			return cli.Usagef("a VALUE cannot be given with --default or --get")
		case set && len(a) < 3:
			return cli.Usagef("missing VALUE")
		}
		h, err := e.host()
		if err != nil {
			return err
		}
		if len(a) == 3 || reset {
			return h.Update(func(db *host.DB) error {
				d, err := domain(db, vm)
				if err != nil {
					return err
				}
				prop := a[1]
				if !hasProp(d, prop) {
					return noSuchProp(d, prop)
				}
				if reset {
					return d.ResetProp(prop)
				}
				if prop == "label" {
					if err := checkLabel(db, a[2]); err != nil {
						return err
					}
				}
				return d.SetProp(prop, a[2])
			})
		}
		db, err := h.Load()
		if err != nil {
			return err
		}
		d, err := domain(db, vm)
		if err != nil {
			return err
		}
		if len(a) == 2 {
			if !hasProp(d, a[1]) {
				return noSuchProp(d, a[1])
			}
			v, _ := d.Prop(a[1])
			fmt.Fprintln(e.stdout, v)
			return nil
		}
		names := d.PropNames()
		width := 0
		for _, n := range names {
			width = max(width, len(n))
		}
		for _, n := range names {
			v, isDefault := d.Prop(n)
			mark := "-"
			if isDefault {
				if hideDefault {
					continue
				}
				mark = "D"
			}
			fmt.Fprintln(e.stdout, strings.TrimRight(fmt.Sprintf("%-*s  %s  %s", width, n, mark, v), " "))
		}
		return nil
	}
	return execute(e, c, args)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
