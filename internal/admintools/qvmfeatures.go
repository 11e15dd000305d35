package admintools

import (
	"cmp"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmFeatures is qvm-features: list, print, set or unset VM features.
func QvmFeatures(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-features", stdin: stdin, stdout: stdout, stderr: stderr}
	var unset bool
	c := newRoot(e, "[options] VMNAME [FEATURE [VALUE]]",
		"List the features of a VM, print one, set one to VALUE or unset one.\n"+
			"Features are text; true is written \"1\" and false \"\" (an empty VALUE).")
	c.Flags().BoolVarP(&unset, "unset", "D", false, "unset FEATURE (also --default, --delete)")
	c.Flags().BoolVar(&unset, "default", false, "same as --unset")
	c.Flags().BoolVar(&unset, "delete", false, "same as --unset")
	c.Args = nargs(1, 3, "VMNAME")
	c.RunE = func(_ *cobra.Command, a []string) error {
		vm := a[0]
		switch {
		case unset && len(a) < 2:
			return cli.Usagef("--unset requires a FEATURE")
		case unset && len(a) == 3:
			return cli.Usagef("a VALUE cannot be given with --unset")
		}
		h, err := e.host()
		if err != nil {
			return err
		}
		if len(a) == 3 || unset {
			return h.Update(func(db *host.DB) error {
				d, err := domain(db, vm)
				if err != nil {
					return err
				}
				if unset {
					d.DeleteFeature(a[1])
					return nil
				}
				return d.SetFeature(a[1], a[2])
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
			v, ok := d.Feature(a[1])
			if !ok {
				return fmt.Errorf("VM %s has no feature %q", vm, a[1])
			}
			fmt.Fprintln(e.stdout, v)
			return nil
		}
		feats := d.Features()
		slices.SortStableFunc(feats, func(a, b host.Feature) int { return cmp.Compare(a.Name, b.Name) })
		t := cli.NewTable()
		for _, f := range feats {
			t.Row(f.Name, f.Value)
		}
		_, err = t.WriteTo(e.stdout)
		return err
	}
	return execute(e, c, args)
}
