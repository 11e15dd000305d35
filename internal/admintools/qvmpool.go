package admintools

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmPool is qvm-pool: list, describe, add and remove storage pools.
func QvmPool(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-pool", stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e, "[--root DIR] [COMMAND] [options]",
		"Manage the storage pools that hold VM volumes. Without a command, list them.\n"+
			"PedOS keeps volumes in file pools (drivers file and file-reflink): the image of a\n"+
			"volume is DIR_PATH/appvms/VM/VOLUME.img (vm-templates/... for a TemplateVM).\n"+
			"Pools of other drivers that the database declares are listed but hold no\n"+
			"volume PedOS can use.")
	return runCommands(e, root, args, poolList(e), poolInfo(e), poolAdd(e), poolRemove(e), poolDrivers(e))
}

func poolList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "l"},
		Short:   "List the pools and their drivers",
		Args:    nargs(0, 0, ""),
		RunE: func(*cobra.Command, []string) error {
			_, db, err := loadHost(e)
			if err != nil {
				return err
			}
			t := cli.NewTable("NAME", "DRIVER")
			for _, p := range db.Pools() {
				t.Row(p.Name, p.Driver)
			}
			_, err = t.WriteTo(e.stdout)
			return err
		},
	}
}

func poolInfo(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "info POOL...",
		Aliases: []string{"i"},
		Short:   "Show a pool's settings, size and usage",
		Long: "Show each pool's name, then its settings in name order (dir_path, driver,\n" +
			"revisions_to_keep, ...) and, for a file pool, the size of the file system that\n" +
			"holds it and the bytes used there (both in bytes).",
		Args: nargs(1, -1, "POOL"),
		RunE: func(_ *cobra.Command, names []string) error {
			_, db, err := loadHost(e)
			if err != nil {
				return err
			}
			var pools []host.Pool
			for _, n := range names {
				p, err := pool(db, n)
				if err != nil {
					return err
				}
				pools = append(pools, p)
			}
			t := cli.NewTable()
			for i, p := range pools {
				if i > 0 {
					t.Row("")
				}
				t.Row("name", p.Name)
				rows := slices.Clone(p.Config)
				if size, usage, ok := p.Space(); ok {
					rows = append(rows, host.Property{Name: "size", Value: strconv.FormatInt(size, 10)},
						host.Property{Name: "usage", Value: strconv.FormatInt(usage, 10)})
				}
				slices.SortStableFunc(rows, func(a, b host.Property) int { return strings.Compare(a.Name, b.Name) })
				for _, r := range rows {
					t.Row(r.Name, r.Value)
				}
			}
			_, err = t.WriteTo(e.stdout)
			return err
		},
	}
}

func poolAdd(e *env) *cobra.Command {
	var options []string
	c := &cobra.Command{
		Use:     "add [options] POOL DRIVER",
		Aliases: []string{"a"},
		Short:   "Add a pool",
		Long: "Add a pool of DRIVER (file or file-reflink) with its options, each -o NAME=VALUE\n" +
			"(repeatable, or comma-separated): dir_path, the absolute directory of its volumes\n" +
			"(required; made if missing, with appvms and vm-templates in it), and\n" +
			"revisions_to_keep (default 1; at most 1 for file).\n\n" +
			"example: qvm-pool add disk2 file -o dir_path=/mnt/disk2/pedos",
		Args: nargs(2, 2, "POOL and DRIVER"),
		RunE: func(_ *cobra.Command, a []string) error {
			opts := map[string]string{}
			for _, o := range options {
				for _, kv := range strings.Split(o, ",") {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return cli.Usagef("-o %q: want NAME=VALUE", kv)
					}
					if _, dup := opts[k]; dup {
						return cli.Usagef("-o: option %s given twice", k)
					}
					opts[k] = v
				}
			}
			h, err := e.host()
			if err != nil {
				return err
			}
			err = h.AddPool(a[0], a[1], opts)
			switch {
			case errors.Is(err, host.ErrExists):
				return cli.WithHint(err, "qvm-pool lists the pools")
			case errors.Is(err, host.ErrPoolDriver):
				return cli.WithHint(err, "qvm-pool drivers lists the drivers and their options")
			}
			return err
		},
	}
	c.Flags().StringArrayVarP(&options, "option", "o", nil, "set the driver option `NAME=VALUE` (repeatable; several may be joined with commas)")
	return c
}

func poolRemove(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "remove POOL...",
		Aliases: []string{"rm", "r"},
		Short:   "Remove pools",
		Long: "Remove pools from the host's database. A pool that holds volumes of VMs, or that is\n" +
			"a default pool (the global default_pool, default_pool_private, ...), is not removed.\n" +
			"The pool's directory and the files in it are left as they are.",
		Args: nargs(1, -1, "POOL"),
		RunE: func(_ *cobra.Command, names []string) error {
			h, db, err := loadHost(e)
			if err != nil {
				return err
			}
			// All or none: each removal is tried on a copy first.
			names = uniq(names)
			trial := db.Clone()
			for _, n := range names {
				if _, err := pool(trial, n); err != nil {
					return err
				}
				if err := trial.RemovePool(n); err != nil {
					if errors.Is(err, host.ErrInUse) {
						err = cli.WithHint(err, "a pool goes once no VM has a volume in it and no default_pool* property names it")
					}
					return err
				}
			}
			for _, n := range names {
				if err := h.RemovePool(n); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func poolDrivers(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "drivers",
		Aliases: []string{"d"},
		Short:   "List the drivers a pool can be added with, and their options",
		Args:    nargs(0, 0, ""),
		RunE: func(*cobra.Command, []string) error {
			t := cli.NewTable("DRIVER", "OPTIONS")
			for _, d := range host.FileDrivers {
				t.Row(d, "dir_path, revisions_to_keep")
			}
			_, err := t.WriteTo(e.stdout)
			return err
		},
	}
}

// pool finds pool name, with a hint when there is none.
func pool(db *host.DB, name string) (host.Pool, error) {
	p, err := db.Pool(name)
	if errors.Is(err, host.ErrNoSuchPool) {
		return p, cli.WithHint(err, "qvm-pool lists the pools")
	}
	return p, err
}

// poolFlag checks a -P/--pool argument: a file pool of the host.
func poolFlag(db *host.DB, name string) error {
	if strings.Contains(name, "=") {
		return cli.Usagef("--pool %q: give one pool for all volumes (VOLUME=POOL is not supported)", name)
	}
	if _, err := pool(db, name); err != nil {
		return err
	}
	if _, err := db.FilePool(name); err != nil {
		return fmt.Errorf("--pool %s: %w", name, err)
	}
	return nil
}
