package admintools

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmTags is qvm-tags: list, add or remove the tags of a VM.
func QvmTags(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-tags", stdin: stdin, stdout: stdout, stderr: stderr}
	c := newRoot(e, "[options] VMNAME [list [TAG] | add TAG... | del TAG...]",
		"List the tags of a VM (sorted), check for one (list TAG: exit status 1 if missing),\n"+
			"add tags or remove them. Short forms: ls, l; a; d, remove.")
	c.Args = nargs(1, -1, "VMNAME")
	c.RunE = func(_ *cobra.Command, a []string) error {
		vm, action, tags := a[0], "list", []string(nil)
		if len(a) > 1 {
			action, tags = a[1], a[2:]
		}
		switch action {
		case "list", "ls", "l":
			if len(tags) > 1 {
				return cli.Usagef("list takes at most one TAG")
			}
			return listTags(e, vm, tags)
		case "add", "a", "del", "d", "remove":
		default:
			return cli.Usagef("unknown action %q (want list, add or del)", action)
		}
		if len(tags) == 0 {
			return cli.Usagef("%s needs at least one TAG", action)
		}
		h, err := e.host()
		if err != nil {
			return err
		}
		return h.Update(func(db *host.DB) error {
			d, err := domain(db, vm)
			if err != nil {
				return err
			}
			for _, t := range tags {
				if action == "add" || action == "a" {
					if err := d.AddTag(t); err != nil {
						return err
					}
				} else if !d.RemoveTag(t) {
					return fmt.Errorf("VM %s has no tag %q", vm, t)
				}
			}
			return nil
		})
	}
	return execute(e, c, args)
}

func listTags(e *env, vm string, only []string) error {
	h, err := e.host()
	if err != nil {
		return err
	}
	db, err := h.Load()
	if err != nil {
		return err
	}
	d, err := domain(db, vm)
	if err != nil {
		return err
	}
	if len(only) == 1 {
		if !d.HasTag(only[0]) {
			return fmt.Errorf("VM %s has no tag %q", vm, only[0])
		}
		fmt.Fprintln(e.stdout, only[0])
		return nil
	}
	for _, t := range slices.Sorted(slices.Values(d.Tags())) {
		fmt.Fprintln(e.stdout, t)
	}
	return nil
}
