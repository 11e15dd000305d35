package admintools

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmRemove is qvm-remove: remove VMs and their files, after a y/N
// question unless --force.
func QvmRemove(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-remove", stdin: stdin, stdout: stdout, stderr: stderr}
	var force bool
	c := newRoot(e, "[options] VMNAME...",
		"Remove VMs with their volumes and files. The VMs must be halted and not in use by\n"+
			"other VMs or global properties (VMs named together may use each other).")
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	c.Args = nargs(1, -1, "VMNAME")
	c.RunE = func(_ *cobra.Command, names []string) error {
		h, err := e.host()
		if err != nil {
			return err
		}
		db, err := h.Load()
		if err != nil {
			return err
		}
		names = uniq(names)
		for _, n := range names {
			d, err := domain(db, n)
			if err != nil {
				return err
			}
			if d.Class() == host.AdminVM {
				return errors.New("dom0 cannot be removed")
			}
		}
		for _, n := range names {
			if h.IsRunning(n) {
				return cli.WithHint(fmt.Errorf("VM %s is running", n), "shut it down first: qvm-shutdown %s", n)
			}
		}
		order, err := removalOrder(db, names)
		if err != nil {
			return err
		}
		if !force {
			fmt.Fprintln(e.stdout, "This will completely remove the selected VM(s)...")
			for _, n := range names {
				fmt.Fprintln(e.stdout, " ", n)
			}
			fmt.Fprint(e.stdout, "Are you sure? [y/N] ")
			answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
			if !isTerminal(e.stdin) {
				fmt.Fprintln(e.stdout) // a terminal echoes the answer's newline; a pipe does not
			}
			switch strings.ToLower(strings.TrimSpace(answer)) {
			case "y", "yes":
			default:
				fmt.Fprintln(e.stdout, "Remove cancelled.")
				return nil
			}
		}
		for _, n := range order {
			if err := h.RemoveVM(n); err != nil {
				return err
			}
		}
		return nil
	}
	return execute(e, c, args)
}

// removalOrder finds an order in which the VMs can be removed one by one
// (users before what they use), trying it on a copy of the database.
// It fails, naming the users, if some VM stays in use by VMs or global
// properties outside the set.
func removalOrder(db *host.DB, names []string) ([]string, error) {
	trial := db.Clone()
	var order []string
	pending := slices.Clone(names)
	for len(pending) > 0 {
		var err error
		left := pending[:0]
		for _, n := range pending {
			if e := trial.RemoveDomain(n); e != nil {
				left = append(left, n)
				if err == nil {
					err = e
				}
				continue
			}
			order = append(order, n)
		}
		if len(left) == len(pending) {
			if errors.Is(err, host.ErrInUse) {
				err = cli.WithHint(err, "change those settings first (qvm-prefs VM PROPERTY VALUE), or remove those VMs too")
			}
			return nil, err
		}
		pending = left
	}
	return order, nil
}

// uniq drops repeated names, keeping the first of each.
func uniq(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// isTerminal reports whether r is a terminal (a character device).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
