package admintools

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// PedosHost is pedos-host: create a host (empty or the demo) and describe it.
func PedosHost(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "pedos-host", stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e, "[--root DIR] COMMAND [options]",
		"Create a PedOS host (its state directory) and show what it holds.")
	root.Args = noCommand
	root.RunE = func(*cobra.Command, []string) error {
		return cli.Usagef("missing command (init, demo or info)")
	}

	var opts host.InitOptions
	create := func(name, short, long string, make func(string, host.InitOptions) (*host.Host, error)) *cobra.Command {
		c := &cobra.Command{
			Use:   name + " [--user USER] [--home DIR]",
			Short: short,
			Long:  long,
			Args:  nargs(0, 0, ""),
			RunE: func(*cobra.Command, []string) error {
				dir := e.rootDir()
				h, err := make(dir, opts)
				if errors.Is(err, host.ErrExists) {
					return cli.WithHint(fmt.Errorf("a PedOS host already exists at %s", dir),
						"choose another directory with --root, or remove this one first")
				}
				if err != nil {
					return err
				}
				return describe(e.stdout, h)
			},
		}
		c.Flags().StringVar(&opts.User, "user", "", "the dom0 user `USER` (default: the current user)")
		c.Flags().StringVar(&opts.Home, "home", "", "the dom0 user's home `DIR`, which backups store (default: $HOME; for demo ROOT/home/USER)")
		setup(c)
		return c
	}
	root.AddCommand(
		create("init", "Create a new, empty host", "Create a new, empty host: dom0, the eight labels, the file pool and the dom0 user.", host.Init),
		create("demo", "Create a demo host with VMs and sample data",
			"Create a demo host: a template, service VMs, a disposable template and DispVM, AppVMs,\na StandaloneVM, sample volume data, a firewall, notes and a dom0 home with files.", host.Demo),
	)
	info := &cobra.Command{
		Use:   "info",
		Short: "Show the host's root, dom0 user and home, and its VMs",
		Long:  "Show the host's root, dom0 user and home, and its number of VMs (dom0 not counted).",
		Args:  nargs(0, 0, ""),
		RunE: func(*cobra.Command, []string) error {
			h, err := e.host()
			if err != nil {
				return err
			}
			return describe(e.stdout, h)
		},
	}
	setup(info)
	root.AddCommand(info)
	return execute(e, root, args)
}

// describe prints what pedos-host info shows.
func describe(w io.Writer, h *host.Host) error {
	db, err := h.Load()
	if err != nil {
		return err
	}
	d0, stored, err := h.Dom0Stored()
	if err != nil {
		return err
	}
	vms, running := 0, 0
	for _, d := range db.Domains() {
		if d.Class() == host.AdminVM {
			continue
		}
		vms++
		if h.IsRunning(d.Name()) {
			running++
		}
	}
	t := cli.NewTable()
	t.Row("root", h.Root())
	t.Row("dom0_user", d0.User)
	t.Row("dom0_home", d0.Home)
	if !stored {
		t.Row("dom0_stored", "no (the host names no dom0 user: the running user's)")
	}
	t.Row("vms", fmt.Sprint(vms))
	t.Row("running", fmt.Sprint(running))
	_, err = t.WriteTo(w)
	return err
}
