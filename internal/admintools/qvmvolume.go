package admintools

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmVolume is qvm-volume: list and describe volumes, resize them, and
// import or export their content.
func QvmVolume(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-volume", stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e, "[--root DIR] [COMMAND] [options]",
		"Manage VM volumes. Without a command, list them. A volume is named VM:VOLUME\n"+
			"(work:private). Sizes are bytes or take a unit: K, M, G, T are powers of 1000,\n"+
			"KiB, MiB, GiB, TiB (or Ki...) powers of 1024.")
	return runCommands(e, root, args, volumeList(e), volumeInfo(e), volumeResize(e), volumeImport(e), volumeExport(e))
}

func volumeList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "list [VMNAME...]",
		Aliases: []string{"ls", "l"},
		Short:   "List the volumes of the VMs",
		Long: "List the volumes of the given VMs, or of every VM; SIZE is the volume's size, USAGE the disk space it takes\n" +
			"(\"-\" for a volume in a pool PedOS keeps no images in).",
		RunE: func(_ *cobra.Command, names []string) error {
			h, db, err := loadHost(e)
			if err != nil {
				return err
			}
			for _, n := range names {
				if _, err := domain(db, n); err != nil {
					return err
				}
			}
			if len(names) == 0 {
				for _, d := range db.Domains() {
					names = append(names, d.Name())
				}
			}
			names = uniq(names)
			slices.Sort(names)
			t := cli.NewTable("POOL:VOLUME", "VMNAME", "VOLUME_NAME", "SIZE", "USAGE")
			for _, n := range names {
				d, _ := db.Domain(n)
				for _, v := range d.Volumes() {
					info, err := h.VolumeInfo(n, v.Name)
					usage := cli.FormatSize(info.Usage)
					switch {
					case errors.Is(err, host.ErrPoolDriver) || errors.Is(err, host.ErrNoSuchPool):
						// A pool PedOS keeps no images in (a database
						// written by Qubes): listed, its usage unknown.
						usage = "-"
					case err != nil:
						return err
					}
					t.Row(v.Pool+":"+v.VID, n, v.Name, cli.FormatSize(volSize(info)), usage)
				}
			}
			_, err = t.WriteTo(e.stdout)
			return err
		},
	}
}

// volumeFields are the rows of qvm-volume info, in the reference tool's order.
var volumeFields = []struct {
	name string
	get  func(v host.VolumeInfo) string
}{
	{"pool", func(v host.VolumeInfo) string { return v.Pool }},
	{"vid", func(v host.VolumeInfo) string { return v.VID }},
	{"rw", func(v host.VolumeInfo) string { return pyBool(v.RW) }},
	{"source", func(v host.VolumeInfo) string { return v.Source }},
	{"save_on_stop", func(v host.VolumeInfo) string { return pyBool(v.SaveOnStop) }},
	{"snap_on_start", func(v host.VolumeInfo) string { return pyBool(v.SnapOnStart) }},
	{"size", func(v host.VolumeInfo) string { return strconv.FormatInt(volSize(v), 10) }},
	{"usage", func(v host.VolumeInfo) string { return strconv.FormatInt(v.Usage, 10) }},
	{"revisions_to_keep", func(v host.VolumeInfo) string { return strconv.Itoa(v.RevisionsToKeep) }},
}

func volumeInfo(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "info VM:VOLUME [PROPERTY]",
		Aliases: []string{"i"},
		Short:   "Show a volume's settings and size",
		Long:    "Show a volume's pool, vid, rw, source, save_on_stop, snap_on_start, size and usage (bytes)\nand revisions_to_keep, or just PROPERTY.",
		Args:    nargs(1, 2, "VM:VOLUME"),
		RunE: func(_ *cobra.Command, a []string) error {
			h, vm, vol, err := volumeArg(e, a[0])
			if err != nil {
				return err
			}
			info, err := h.VolumeInfo(vm, vol)
			if err != nil {
				return err
			}
			t := cli.NewTable()
			for _, f := range volumeFields {
				if len(a) == 2 && f.name == a[1] {
					fmt.Fprintln(e.stdout, f.get(info))
					return nil
				}
				t.Row(f.name, f.get(info))
			}
			if len(a) == 2 {
				var names []string
				for _, f := range volumeFields {
					names = append(names, f.name)
				}
				return cli.WithHint(fmt.Errorf("no volume property %q", a[1]), "the properties are %s", strings.Join(names, ", "))
			}
			_, err = t.WriteTo(e.stdout)
			return err
		},
	}
}

func volumeResize(e *env) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "resize [options] VM:VOLUME SIZE",
		Aliases: []string{"extend"},
		Short:   "Change a volume's size",
		Long:    "Change a volume's size. Growing adds empty space; shrinking cuts data off the end,\nso it needs --force and a halted VM.",
		Args:    nargs(2, 2, "VM:VOLUME and SIZE"),
		RunE: func(_ *cobra.Command, a []string) error {
			size, err := cli.ParseSize(a[1])
			if err == nil && size == 0 {
				err = fmt.Errorf("invalid size %q: a volume cannot be empty", a[1])
			}
			if err != nil {
				return err
			}
			h, vm, vol, err := volumeArg(e, a[0])
			if err != nil {
				return err
			}
			err = h.ResizeVolume(vm, vol, size, force)
			switch {
			case errors.Is(err, host.ErrShrink):
				return cli.WithHint(err, "add --force to shrink anyway; the data past the new end is lost")
			case errors.Is(err, host.ErrRunning):
				return cli.WithHint(err, "shut the VM down first: qvm-shutdown %s", vm)
			}
			return err
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "allow shrinking, which discards the data past the new end")
	return c
}

func volumeImport(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "import VM:VOLUME PATH|-",
		Short: "Replace a volume's content with a file or standard input",
		Long: "Replace a volume's content with the file PATH, or standard input for '-'; the volume's\n" +
			"size becomes the data's length. The VM must be halted. Holes stay holes and\n" +
			"all-zero blocks become holes.",
		Args: nargs(2, 2, "VM:VOLUME and PATH (or - for standard input)"),
		RunE: func(_ *cobra.Command, a []string) error {
			h, vm, vol, info, err := imageVolumeArg(e, a[0])
			if err != nil {
				return err
			}
			if info.Running {
				return cli.WithHint(fmt.Errorf("VM %s is running", vm), "shut it down first: qvm-shutdown %s", vm)
			}
			var r io.Reader = e.stdin
			if a[1] != "-" {
				f, err := os.Open(a[1])
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.IsDir() {
					return fmt.Errorf("%s is a directory", a[1])
				}
				r = f
			}
			_, err = h.ImportVolume(vm, vol, r)
			return err
		},
	}
}

func volumeExport(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "export VM:VOLUME PATH|-",
		Short: "Copy a volume's content to a new file or standard output",
		Long: "Copy a volume's content to the new file PATH (kept sparse), or to standard output for '-'.\n" +
			"Of a running VM, this is its content from before it started.",
		Args: nargs(2, 2, "VM:VOLUME and PATH (or - for standard output)"),
		RunE: func(_ *cobra.Command, a []string) error {
			h, vm, vol, info, err := imageVolumeArg(e, a[0])
			if err != nil {
				return err
			}
			if info.Running {
				cli.Warn(e.stderr, e.tool, "%s is running; exporting %s as it was when %s started", vm, vol, vm)
			}
			if a[1] != "-" {
				_, err = h.ExportVolume(vm, vol, a[1])
				if errors.Is(err, fs.ErrExist) {
					return cli.WithHint(fmt.Errorf("%s already exists", a[1]), "export writes a new file; remove it or choose another name")
				}
				return err
			}
			f, _, err := h.OpenVolume(vm, vol)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(e.stdout, f)
			return err
		},
	}
}

// volumeArg opens the host and splits VM:VOLUME, checking both exist.
func volumeArg(e *env, arg string) (h *host.Host, vm, vol string, err error) {
	vm, vol, ok := strings.Cut(arg, ":")
	if !ok || vm == "" || vol == "" {
		return nil, "", "", cli.Usagef("%q is not VM:VOLUME (for example work:private)", arg)
	}
	h, db, err := loadHost(e)
	if err != nil {
		return nil, "", "", err
	}
	d, err := domain(db, vm)
	if err != nil {
		return nil, "", "", err
	}
	if _, err := d.Volume(vol); err != nil {
		var names []string
		for _, v := range d.Volumes() {
			names = append(names, v.Name)
		}
		if len(names) == 0 {
			return nil, "", "", err
		}
		return nil, "", "", cli.WithHint(err, "the volumes of %s are %s", vm, strings.Join(names, ", "))
	}
	return h, vm, vol, nil
}

// imageVolumeArg is volumeArg for import and export, which need a volume
// with an image of its own.
func imageVolumeArg(e *env, arg string) (h *host.Host, vm, vol string, info host.VolumeInfo, err error) {
	if h, vm, vol, err = volumeArg(e, arg); err != nil {
		return
	}
	if info, err = h.VolumeInfo(vm, vol); err == nil && info.Path == "" {
		err = fmt.Errorf("VM %s volume %s has no image of its own (it is not saved on stop)", vm, vol)
	}
	return
}

// pyBool writes a boolean as the reference tools (Python) print it.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// volSize is a volume's size: as configured, which a resize of a running
// VM changes at once, while its committed image keeps the old length
// until shutdown.
func volSize(v host.VolumeInfo) int64 {
	if v.Size > 0 {
		return v.Size
	}
	return v.Nominal
}
