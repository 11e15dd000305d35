package admintools

import (
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

// RunFunc is a tool's entry point: it runs the tool with the arguments
// after the program name and returns the exit status.
type RunFunc func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Tools maps each tool's program name to its entry point.
var Tools = map[string]RunFunc{
	"pedos-host":         PedosHost,
	"qvm-ls":             QvmLs,
	"qvm-create":         QvmCreate,
	"qvm-remove":         QvmRemove,
	"qvm-prefs":          QvmPrefs,
	"qvm-features":       QvmFeatures,
	"qvm-tags":           QvmTags,
	"qvm-start":          QvmStart,
	"qvm-shutdown":       QvmShutdown,
	"qvm-volume":         QvmVolume,
	"qvm-pool":           QvmPool,
	"qvm-backup":         QvmBackup,
	"qvm-backup-restore": QvmBackupRestore,
}

// env is what a tool runs with: its name, streams and the host root
// chosen by --root.
type env struct {
	tool           string
	stdin          io.Reader
	stdout, stderr io.Writer
	root           string
}

// host opens the host in --root, else $PEDOS_ROOT, else /var/lib/pedos.
func (e *env) host() (*host.Host, error) {
	return host.Open(e.rootDir())
}

func (e *env) rootDir() string {
	if e.root != "" {
		return e.root
	}
	return host.DefaultRoot()
}

const usageTemplate = `usage: {{.UseLine}}
{{with .Long}}
{{.}}
{{end}}{{if .HasAvailableSubCommands}}
commands:{{range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}
{{end}}{{if .HasAvailableLocalFlags}}
options:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}{{if .HasAvailableInheritedFlags}}
global options:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}`

// newRoot makes a tool's top command with --root and the house help
// format. use is the usage line after the program name.
func newRoot(e *env, use, long string) *cobra.Command {
	c := &cobra.Command{
		Use:                   e.tool + " " + use,
		Long:                  long,
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		CompletionOptions:     cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	c.PersistentFlags().StringVar(&e.root, "root", "", "use the host in `DIR` (default: $PEDOS_ROOT, else /var/lib/pedos)")
	setup(c)
	return c
}

// setup gives a command the house help format and usage errors.
func setup(c *cobra.Command) {
	c.DisableFlagsInUseLine = true
	c.Flags().BoolP("help", "h", false, "show this help message and exit")
	c.SetUsageTemplate(usageTemplate)
	c.SetHelpTemplate(`{{.UsageString}}`)
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.AsUsage(err) })
}

// execute runs c with args and turns its error into a message and an exit
// status.
func execute(e *env, c *cobra.Command, args []string) int {
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	c.SetArgs(args)
	c.SetIn(e.stdin)
	c.SetOut(e.stdout)
	c.SetErr(e.stderr)
	sub, err := c.ExecuteC()
	if err == nil {
		return cli.ExitOK
	}
	if cli.IsUsage(err) && cli.Hint(err) == "" {
		err = cli.WithHint(err, "see '%s --help'", sub.CommandPath())
	}
	cli.PrintError(e.stderr, e.tool, err)
	return cli.ExitCode(err)
}

// executeWithStatus is execute for a tool whose run may set an exit status
// of its own (declined, interrupted) besides the error it prints.
func executeWithStatus(e *env, c *cobra.Command, args []string, run func(cmd *cobra.Command, pos []string) (status int, err error)) int {
	var status int
	c.RunE = func(cmd *cobra.Command, pos []string) error {
		var err error
		status, err = run(cmd, pos)
		return err
	}
	if code := execute(e, c, args); status == 0 {
		return code
	}
	return status
}

// readPassphraseFile reads --passphrase-file, warning about what the file
// reveals (its mode, trailing spaces).
func (e *env) readPassphraseFile(path string) ([]byte, error) {
	pass, warnings, err := cli.ReadPassphraseFile(path)
	for _, w := range warnings {
		cli.Warn(e.stderr, e.tool, "%s", w)
	}
	return pass, err
}

// runCommands runs a tool made of commands, the first of which (list)
// also runs when none is named.
func runCommands(e *env, root *cobra.Command, args []string, list *cobra.Command, others ...*cobra.Command) int {
	root.Args = noCommand
	root.RunE = list.RunE
	root.AddCommand(append([]*cobra.Command{list}, others...)...)
	for _, c := range root.Commands() {
		setup(c)
	}
	return execute(e, root, args)
}

// noCommand refuses arguments to a tool made of commands that match
// none of them.
func noCommand(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return cli.Usagef("unknown command %q for %q", args[0], c.CommandPath())
	}
	return nil
}

// nargs checks the number of positional arguments, naming what is missing
// or extra in a usage error.
func nargs(lo, hi int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < lo:
			return cli.Usagef("missing %s", what)
		case hi >= 0 && len(args) > hi:
			return cli.Usagef("too many arguments: %s", strings.Join(args[hi:], " "))
		}
		return nil
	}
}

// domain finds VM name, with a hint when there is none.
func domain(db *host.DB, name string) (*host.Domain, error) {
	d, err := db.Domain(name)
	if errors.Is(err, host.ErrNoSuchVM) {
		return nil, cli.WithHint(err, "qvm-ls lists the VMs")
	}
	return d, err
}

// labelNames lists the host's labels for a hint.
func labelNames(db *host.DB) string {
	var names []string
	for _, l := range db.Labels() {
		names = append(names, l.Name)
	}
	return strings.Join(names, ", ")
}

// checkLabel turns an unknown label into a clear error.
func checkLabel(db *host.DB, label string) error {
	if _, err := db.Label(label); err != nil {
		return cli.WithHint(fmt.Errorf("no such label: %s", label), "the labels are %s", labelNames(db))
	}
	return nil
}

// hasProp reports whether d has property name: one its class knows, or one
// stored in the file.
func hasProp(d *host.Domain, name string) bool {
	return slices.Contains(d.PropNames(), name)
}

func noSuchProp(d *host.Domain, name string) error {
	return cli.WithHint(fmt.Errorf("VM %s has no property %q", d.Name(), name),
		"'qvm-prefs %s' lists its properties", d.Name())
}

// watchSignals makes SIGINT, SIGTERM and SIGHUP end the run with
// ExitInterrupted and a sentence: at once, saying "interrupted; idle",
// while nothing needs undoing, else through the run's context (see
// cli.Signals).
func (e *env) watchSignals(idle string) *cli.Signals {
	return cli.WatchSignals(func(sig os.Signal) {
		cli.PrintError(e.stderr, e.tool, fmt.Errorf("interrupted (%v); %s", sig, idle))
	})
}
