package admintools

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmStart is qvm-start: start halted VMs.
func QvmStart(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-start", stdin: stdin, stdout: stdout, stderr: stderr}
	var skip bool
	c := newRoot(e, "[options] VMNAME...", "Start halted VMs. Every VMNAME is checked before any VM starts.")
	c.Flags().BoolVar(&skip, "skip-if-running", false, "do not fail for a VM that is already running")
	c.Args = nargs(1, -1, "VMNAME")
	c.RunE = func(_ *cobra.Command, names []string) error {
		h, db, err := loadHost(e)
		if err != nil {
			return err
		}
		var todo []string
		for _, n := range uniq(names) {
			d, err := domain(db, n)
			switch {
			case err != nil:
				return err
			case d.Class() == host.AdminVM:
				return errors.New("dom0 always runs; it cannot be started")
			case h.IsRunning(n) && !skip:
				return cli.WithHint(fmt.Errorf("VM %s is already running", n), "--skip-if-running ignores running VMs")
			case h.IsRunning(n):
				continue
			}
			todo = append(todo, n)
		}
		return each(e, todo, h.Start)
	}
	return execute(e, c, args)
}

// QvmShutdown is qvm-shutdown: stop running VMs, committing their volumes.
func QvmShutdown(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-shutdown", stdin: stdin, stdout: stdout, stderr: stderr}
	var (
		all, wait, force bool
		timeout          int
		exclude          []string
	)
	c := newRoot(e, "[options] [--all | VMNAME...]",
		"Shut down running VMs, committing their volumes. A VM that is halted already is skipped.\n"+
			"Shutdown is immediate here, so --wait, --timeout and --force change nothing.")
	f := c.Flags()
	f.BoolVar(&all, "all", false, "shut down every running VM but dom0")
	f.StringSliceVar(&exclude, "exclude", nil, "with --all, leave these VMs running (`VMNAME`[,VMNAME...])")
	f.BoolVar(&wait, "wait", false, "wait for the VMs to shut down (always the case)")
	f.IntVar(&timeout, "timeout", 0, "`SECONDS` to wait (accepted for compatibility)")
	f.BoolVar(&force, "force", false, "shut down even VMs others depend on (accepted for compatibility)")
	c.Args = nargs(0, -1, "")
	c.RunE = func(_ *cobra.Command, names []string) error {
		switch {
		case all && len(names) > 0:
			return cli.Usagef("--all cannot be combined with VM names")
		case !all && len(exclude) > 0:
			return cli.Usagef("--exclude needs --all")
		case !all && len(names) == 0:
			return cli.Usagef("missing VMNAME (or --all)")
		}
		h, db, err := loadHost(e)
		if err != nil {
			return err
		}
		for _, n := range exclude {
			if _, err := domain(db, n); err != nil {
				return err
			}
		}
		var todo []string
		if all {
			for _, d := range db.Domains() {
				n := d.Name()
				if d.Class() != host.AdminVM && h.IsRunning(n) && !slices.Contains(exclude, n) {
					todo = append(todo, n)
				}
			}
		}
		for _, n := range uniq(names) {
			d, err := domain(db, n)
			switch {
			case err != nil:
				return err
			case d.Class() == host.AdminVM:
				return errors.New("dom0 cannot be shut down with qvm-shutdown")
			case h.IsRunning(n):
				todo = append(todo, n)
			}
		}
		return each(e, todo, h.Shutdown)
	}
	return execute(e, c, args)
}

func loadHost(e *env) (*host.Host, *host.DB, error) {
	h, err := e.host()
	if err != nil {
		return nil, nil, err
	}
	db, err := h.Load()
	return h, db, err
}

// each runs fn on every VM, going on after a failure so that one broken
// VM does not hold up the others; every failure is printed.
func each(e *env, names []string, fn func(string) error) error {
	var last error
	for _, n := range names {
		if err := fn(n); err != nil {
			if last != nil {
				cli.PrintError(e.stderr, e.tool, last)
			}
			last = err
		}
	}
	return last
}
