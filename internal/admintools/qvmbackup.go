package admintools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/profile"
	"pedos.dev/backup/internal/progress"
)

// Exit statuses of qvm-backup beyond cli's 0, 1 and 2.
const (
	// ExitDeclined: the user answered no at the "proceed?" question
	// (the reference exits 0 then: doc/reference.md E.18).
	ExitDeclined = 3
	// ExitInterrupted: SIGINT, SIGTERM or SIGHUP stopped the run, as a
	// shell reports a program ended by Ctrl-C (128+2).
	ExitInterrupted = cli.ExitInterrupted
)

// Prompts, as the reference words them.
const (
	proceedQuestion  = "Do you want to proceed?"
	passphrasePrompt = "Please enter the passphrase that will be used to encrypt and verify the backup: "
)

const qvmBackupLong = `Back up VMs into an encrypted archive (Qubes OS backup format 4).

backup_location is one of:
  DIR          an existing directory: a new file qubes-backup-YYYY-MM-DDTHHMMSS is made in it
  FILE         a new file (an absolute path, or one starting with ./ or ../); never overwritten
  -            standard output (the summary and questions then go to standard error
               and the terminal; without a terminal, --yes is required)
  COMMAND      any other text: a command line run by /bin/sh in dom0 with the archive
               on its standard input
With --dest-vm, backup_location is a directory in that VM (it gets a new
qubes-backup-... file), a command run there, or s3://BUCKET/PREFIX/: a new object
PREFIX/qubes-backup-... that the VM uploads with its own S3 configuration
(doc/object-storage.md); the VM must be running. A missing bucket, refused
credentials or an unreachable endpoint show in the summary, before any data is read.

vm selects what to back up: VM names, @tag:NAME, @type:CLASS; dom0 is the dom0
user's home. Without any, every VM whose include_in_backups is True.

The archive's qubes.xml holds the settings of every VM of the host, as the
reference tool writes it: a backup of one VM tells the names and settings of
all. --selected-metadata-only keeps those of the backed-up VMs and of the VMs
they or the global settings name (templates, netvms, device backends, ...).

qvm-backup first shows what will be stored and where. When that lists a
problem nothing is written. Otherwise, unless --yes, it asks whether to proceed
(on standard input, or on the terminal when the archive goes to standard
output), then asks for the passphrase twice on the terminal, unless
--passphrase-file or the profile gives it. A failed or interrupted backup
leaves nothing that looks like a backup (except on standard output, which
cannot be taken back). --profile NAME runs a job saved with --save-profile NAME.

exit status:
  0    the backup was written
  1    the backup could not be made (a problem in the summary, a failure while
       writing, a passphrase mismatch, a bad profile)
  2    the command line is wrong
  3    the answer to "Do you want to proceed?" was no; nothing was written
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); what was written was removed
       (except on standard output)`

// backupFlags are qvm-backup's options.
type backupFlags struct {
	profile, saveProfile string
	savePassphrase       bool
	exclude              []string
	destVM               string
	encrypt              bool
	passFile             string
	compress, noCompress bool
	filter               string
	logN                 int
	yes, quiet           bool
	selectedMetadata     bool
	progress             string
	verify               bool
	maxMemory            string
	incremental          bool
	rebuildRecord        bool
	base                 string
	fullEvery            int
}

// QvmBackup is qvm-backup: back up VMs into an encrypted archive, after
// showing what will be stored and (unless --yes) asking to proceed.
func QvmBackup(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-backup", stdin: stdin, stdout: stdout, stderr: stderr}
	var o backupFlags
	c := newRoot(e, "[options] [backup_location] [vm...]", qvmBackupLong)
	f := c.Flags()
	f.SortFlags = false
	f.StringVar(&o.profile, "profile", "", "run the saved backup profile `NAME` (made with --save-profile)")
	f.StringVar(&o.saveProfile, "save-profile", "", "save these settings as the backup profile `NAME` before the backup runs")
	f.BoolVar(&o.savePassphrase, "save-passphrase", false, "store the passphrase in the saved profile too (plain text, mode 0600)")
	f.StringArrayVarP(&o.exclude, "exclude", "x", nil, "leave `VM` out (a name, @tag:NAME or @type:CLASS; repeatable)")
	f.StringVarP(&o.destVM, "dest-vm", "d", "", "send the backup to `VM`, which must be running (default: dom0)")
	f.BoolVarP(&o.encrypt, "encrypt", "e", false, "accepted for compatibility: backups are always encrypted")
	f.StringVarP(&o.passFile, "passphrase-file", "p", "", "read the passphrase from the first line of `FILE` (- for standard input)")
	f.BoolVarP(&o.compress, "compress", "z", false, "compress the backup (the default, with gzip)")
	f.BoolVar(&o.noCompress, "no-compress", false, "do not compress the backup")
	f.StringVarP(&o.filter, "compress-filter", "Z", "", "compress with `PROG` (gzip, zstd, bzip2, xz, ...) instead of gzip")
	f.IntVar(&o.logN, "scrypt-logn", 0, "scrypt cost `N` of each key: 2^N, 10-40 (default 18; lower is faster and weaker)")
	f.BoolVar(&o.selectedMetadata, "selected-metadata-only", false, "store the settings of the backed-up VMs and of the VMs they name, not of every VM of the host")
	f.BoolVar(&o.incremental, "incremental", false, "store only what changed since the last backup to this destination (a full backup when there is none, or after --full-every increments)")
	f.StringVar(&o.base, "base", "last", "with --incremental, what the increment is based on: `last` (the last backup) or full (the chain's full backup: a differential)")
	f.IntVar(&o.fullEvery, "full-every", backup.DefaultFullEvery, "with --incremental, make a full backup after `N` increments")
	f.BoolVar(&o.rebuildRecord, "rebuild-record", false, "with --incremental, first rebuild dom0's record of the destination's last backup from the newest backup there (read and verified whole), so that this backup goes on with its chain")
	f.BoolVarP(&o.yes, "yes", "y", false, "do not ask whether to proceed")
	f.BoolVar(&o.verify, "verify", false, "read the written backup file back in full (decrypt, decompress, check every file and the manifest) and report per VM")
	f.StringVar(&o.progress, "progress", "auto", "show progress on standard error as `MODE`: auto (a bar on a terminal, else lines), bar, lines, json or none")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only warnings and errors (and, without --yes, the summary and question); no progress unless --progress")
	addMaxMemoryFlag(f, &o.maxMemory)

	return executeWithStatus(e, c, args, func(cmd *cobra.Command, pos []string) (int, error) {
		r := &backupRun{env: e, o: &o, flags: cmd.Flags(), args: pos}
		r.sig = e.watchSignals("nothing was written")
		defer r.sig.Stop()
		err := r.run()
		return r.exit, memoryHint(err)
	})
}

// backupRun is one invocation of qvm-backup.
type backupRun struct {
	*env
	o     *backupFlags
	flags *pflag.FlagSet
	args  []string
	// exit, when set, is the exit status (the error, if any, is printed
	// first).
	exit int
	// info receives the summary and the outcome: stdout, or stderr when
	// the archive goes to stdout.
	info io.Writer
	// tty asks the question when the archive goes to stdout.
	tty *os.File
	sig *cli.Signals
	// out is stdout, counted, when the archive goes there.
	out *countingWriter
}

func (r *backupRun) run() error {
	if err := r.checkFlags(); err != nil {
		return err
	}
	h, err := r.host()
	if err != nil {
		return err
	}
	opts, prof, err := r.options(h)
	if err != nil {
		return err
	}
	// Memory is this machine's, not the job's: a profile does not keep it.
	if opts.MaxMemory, err = memoryBudget(r.o.maxMemory); err != nil {
		return err
	}
	var save *profile.Profile
	if r.o.saveProfile != "" {
		if save, err = r.profileToSave(opts); err != nil {
			return err
		}
	}
	toStdout := opts.Destination.Path == "-" && isDom0(opts.Destination.VM)
	r.info = r.stdout
	if toStdout {
		r.info = r.stderr
		if f, ok := r.stdout.(*os.File); ok {
			if err := cli.CheckDataOutput(f); err != nil {
				return cli.WithHint(cli.Usagef("refusing to write the backup to standard output: %v", err),
					"redirect standard output to a file or a pipe: qvm-backup ... - > FILE")
			}
		}
		r.out = &countingWriter{w: r.stdout}
		if !r.o.yes {
			// The archive takes stdout, and stdin may carry the
			// passphrase: the question goes to the terminal.
			tty, err := os.OpenFile("/dev/tty", os.O_RDWR|syscall.O_NOCTTY, 0)
			if err != nil {
				return cli.WithHint(cli.Usagef("no terminal to ask whether to proceed on, and the backup goes to standard output"),
					"add --yes to write it without asking")
			}
			defer tty.Close()
			r.tty = tty
		}
	}

	var pass []byte
	defer func() { clear(pass) }()
	if r.o.rebuildRecord {
		// The record is read back with the passphrase, before the plan
		// that uses it.
		if pass, err = r.passphrase(prof); err != nil {
			return err
		}
		if err := r.rebuildRecord(context.Background(), h, opts, pass); err != nil {
			return err
		}
	}
	p, err := backup.NewPlan(context.Background(), h, opts)
	if err != nil {
		return err
	}
	if !r.o.quiet || !r.o.yes {
		if err := r.printSummary(p); err != nil {
			return err
		}
	}
	for _, w := range p.Warnings {
		cli.Warn(r.stderr, r.tool, "%s", w)
	}
	if len(p.Problems) > 0 {
		for _, pr := range p.Problems {
			err := error(pr)
			if hint := backupHint(pr); hint != "" {
				err = cli.WithHint(err, "%s", hint)
			}
			cli.PrintError(r.stderr, r.tool, err)
		}
		r.exit = cli.ExitError
		return nil
	}

	if !r.o.yes {
		ok, err := r.env.confirm(r.tty)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(r.info, "Backup not started; nothing was written.")
			r.exit = ExitDeclined
			return nil
		}
	}

	if pass == nil {
		if pass, err = r.passphrase(prof); err != nil {
			return err
		}
	}
	if err := p.SetPassphrase(pass); err != nil {
		return err
	}
	// From here on a signal must not end the program at once: the profile
	// and the backup are written with temporary files to remove.
	defer r.sig.Busy()()
	if save != nil {
		if r.o.savePassphrase {
			save.Passphrase = pass
		}
		if err := r.saveProfile(h, *save); err != nil {
			return err
		}
		if r.sig.Interrupted() {
			r.exit = ExitInterrupted
			return errors.New("interrupted; the profile was saved, the backup not started")
		}
	}
	return r.backup(p)
}

// backupHint says how to resolve a problem of the plan in the tool's own
// terms: its options and the qvm-* tools, where the engine's hint has
// none to name.
func backupHint(p backup.Problem) string {
	switch p.Code {
	case backup.UnreadableSource:
		if p.Subject == "dom0" {
			return "leave the dom0 home out with -x dom0"
		}
		return "leave it out with -x " + p.Subject
	case backup.EmptySelection:
		return "name the VMs to back up, or set include_in_backups (qvm-prefs VM include_in_backups True)"
	case backup.NotEnoughMemory:
		return "raise the budget with --max-memory or " + maxMemoryEnv + ", or lower the scrypt cost"
	case backup.UnknownVM, backup.DestVMUnknown:
		return "check the name with qvm-ls"
	case backup.NoMatch:
		return "check it with qvm-ls --tags / qvm-ls"
	case backup.DestVMNotRunning:
		return "start it first: qvm-start " + p.Subject
	case backup.CredentialsRefused, backup.EndpointUnreachable, backup.BucketMissing, backup.StorageProblem:
		return p.Hint + "; or choose another destination"
	case backup.DestinationInHome:
		return "choose a destination outside " + p.Subject + ", or leave the home out with -x dom0"
	}
	return p.Hint
}

// checkFlags finds the contradictions in the command line.
func (r *backupRun) checkFlags() error {
	o := r.o
	if !slices.Contains(cli.ProgressModes, o.progress) {
		return cli.Usagef("unknown progress mode %q (valid: %s)", o.progress, strings.Join(cli.ProgressModes, ", "))
	}
	if r.flags.Changed("scrypt-logn") && (o.logN < 10 || o.logN > 40) {
		return cli.Usagef("--scrypt-logn %d is out of range (10-40)", o.logN)
	}
	if o.noCompress && r.flags.Changed("compress") {
		return cli.Usagef("-z/--compress and --no-compress contradict each other")
	}
	if o.noCompress && r.flags.Changed("compress-filter") {
		return cli.Usagef("-Z/--compress-filter and --no-compress contradict each other")
	}
	if r.flags.Changed("compress-filter") && o.filter == "" {
		return cli.Usagef("-Z/--compress-filter needs a program name")
	}
	if o.savePassphrase && o.saveProfile == "" {
		return cli.Usagef("--save-passphrase needs --save-profile NAME")
	}
	if o.saveProfile != "" {
		if err := profile.ValidateName(o.saveProfile); err != nil {
			return cli.AsUsage(fmt.Errorf("--save-profile: %w", err))
		}
	}
	if r.flags.Changed("profile") {
		if err := profile.ValidateName(o.profile); err != nil {
			return cli.AsUsage(fmt.Errorf("--profile: %w", err))
		}
		return r.checkProfileFlags()
	}
	if len(r.args) == 0 {
		return cli.Usagef("missing backup_location (or --profile NAME)")
	}
	return nil
}

// checkProfileFlags refuses, naming them, the options that a profile
// decides (doc/reference.md E.10: the reference names options that do not
// exist and ignores some of them).
func (r *backupRun) checkProfileFlags() error {
	var bad []string
	if len(r.args) > 0 {
		bad = append(bad, fmt.Sprintf("backup_location (%s)", r.args[0]))
	}
	if len(r.args) > 1 {
		bad = append(bad, fmt.Sprintf("vm names (%s)", strings.Join(r.args[1:], " ")))
	}
	for _, f := range []struct{ name, shown string }{
		{"exclude", "-x/--exclude"},
		{"dest-vm", "-d/--dest-vm"},
		{"compress", "-z/--compress"},
		{"no-compress", "--no-compress"},
		{"compress-filter", "-Z/--compress-filter"},
		{"scrypt-logn", "--scrypt-logn"},
		{"save-profile", "--save-profile"},
		{"save-passphrase", "--save-passphrase"},
		{"selected-metadata-only", "--selected-metadata-only"},
	} {
		if r.flags.Changed(f.name) {
			bad = append(bad, f.shown)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	list := bad[0]
	if len(bad) > 1 {
		list = strings.Join(bad[:len(bad)-1], ", ") + " and " + bad[len(bad)-1]
	}
	return cli.WithHint(cli.Usagef("--profile cannot be combined with %s", list),
		"the profile says what to back up, where to and how; change it with --save-profile, or leave --profile out")
}

// options turns the command line, or the profile, into the engine's
// options. prof is the loaded profile, if any.
func (r *backupRun) options(h *host.Host) (backup.Options, *profile.Profile, error) {
	o := r.o
	if r.flags.Changed("profile") {
		prof, err := profile.Load(h.Root(), o.profile)
		if err != nil {
			var pe *profile.Error
			if errors.As(err, &pe) && pe.Hint != "" {
				err = cli.WithHint(err, "%s", pe.Hint)
			}
			return backup.Options{}, nil, err
		}
		opts, err := prof.Options()
		if errors.Is(err, profile.ErrNoSelection) {
			return backup.Options{}, nil, fmt.Errorf("backup profile %s selects no VM (include: [])", o.profile)
		}
		if err == nil {
			err = r.chainOptions(&opts)
		}
		return opts, &prof, err
	}
	opts := backup.Options{
		VMs:                  r.args[1:],
		Exclude:              o.exclude,
		Compression:          "gzip",
		ScryptLogN:           uint8(o.logN),
		Destination:          backup.Destination{Path: r.args[0], VM: o.destVM},
		SelectedMetadataOnly: o.selectedMetadata,
	}
	if err := r.chainOptions(&opts); err != nil {
		return opts, nil, err
	}
	switch {
	case o.noCompress:
		opts.Compression = "none"
	case o.filter != "":
		opts.Compression = o.filter
	}
	return opts, nil, nil
}

// chainOptions applies --incremental, --base and --full-every, over what
// a profile says (opts).
func (r *backupRun) chainOptions(opts *backup.Options) error {
	o := r.o
	if o.base != "last" && o.base != "full" {
		return cli.Usagef("--base is last or full, not %q", o.base)
	}
	if o.fullEvery < 1 {
		return cli.Usagef("--full-every needs at least 1 increment, not %d", o.fullEvery)
	}
	if r.flags.Changed("incremental") {
		opts.Incremental = o.incremental
	}
	if (r.flags.Changed("base") || r.flags.Changed("full-every") || o.rebuildRecord) && !opts.Incremental {
		return cli.Usagef("--base, --full-every and --rebuild-record go with --incremental")
	}
	if r.flags.Changed("base") {
		opts.FromFull = o.base == "full"
	}
	if r.flags.Changed("full-every") {
		opts.FullEvery = o.fullEvery
	}
	if !opts.Incremental {
		opts.FromFull, opts.FullEvery = false, 0
	}
	return nil
}

// isDom0 reports whether a destination VM means dom0.
func isDom0(vm string) bool { return vm == "" || vm == profile.Dom0 }

// profileToSave is what --save-profile stores, checked before anything
// happens: a profile can hold a dom0 path or a VM's location, not
// standard output or a command.
func (r *backupRun) profileToSave(opts backup.Options) (*profile.Profile, error) {
	p, err := profile.FromOptions(opts)
	if errors.Is(err, profile.ErrDestination) {
		return nil, cli.WithHint(cli.AsUsage(fmt.Errorf("--save-profile: %w", err)),
			"a profile's dom0 destination is a directory or file path; a command is possible in a VM (--dest-vm)")
	}
	if err != nil {
		return nil, cli.AsUsage(fmt.Errorf("--save-profile: %w", err))
	}
	return &p, nil
}

// printSummary shows the reference summary table and our additions:
// where the archive goes, its compression and the estimates.
func (r *backupRun) printSummary(p *backup.Plan) error {
	if err := writeSummaryTable(r.info, p.Summary()); err != nil {
		return err
	}
	if p.Target.Kind == 0 {
		return nil // no destination: the problems say why
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nDestination: %s\n", p.Target)
	fmt.Fprintf(&b, "Compression: %s\n", p.Compression)
	if p.Chain != nil {
		fmt.Fprintf(&b, "Kind: %s\n", p.Chain.Describe())
	}
	if p.Chain != nil && p.Chain.Increment {
		fmt.Fprintf(&b, "Estimated archive size: at most %s (as a full backup: the changed blocks are found when it starts)\n", summarySize(p.EstimatedArchiveSize))
	} else {
		fmt.Fprintf(&b, "Estimated archive size: at most %s\n", summarySize(p.EstimatedArchiveSize))
	}
	fmt.Fprintf(&b, "Estimated time: %s\n", estimatedTime(p.EstimatedDuration))
	_, err := io.WriteString(r.info, b.String())
	return err
}

// estimatedTime words the engine's rough guess.
func estimatedTime(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	return "about " + cli.FormatDuration(d)
}

// confirm asks "Do you want to proceed?" on tty if there is one (the
// archive takes stdin or stdout), else on stdin and stdout.
func (e *env) confirm(tty *os.File) (bool, error) {
	if tty != nil {
		return cli.Confirm(tty, tty, proceedQuestion)
	}
	in := &readCounter{r: e.stdin}
	ok, err := cli.Confirm(in, e.stdout, proceedQuestion)
	if in.n > 0 && !isTerminal(e.stdin) {
		fmt.Fprintln(e.stdout) // a terminal echoes the answer's newline; a pipe does not
	}
	return ok, err
}

// readCounter counts the bytes read through it.
type readCounter struct {
	r io.Reader
	n int64
}

func (c *readCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// passphrase comes from --passphrase-file, else the profile, else the
// terminal (twice).
func (r *backupRun) passphrase(prof *profile.Profile) ([]byte, error) {
	if r.o.passFile != "" {
		return r.readPassphraseFile(r.o.passFile)
	}
	if prof != nil && prof.HasPassphrase() {
		return prof.Passphrase, nil
	}
	pass, err := cli.ReadPassphrase(passphrasePrompt, true)
	if errors.Is(err, cli.ErrNoTerminal) && prof != nil {
		err = cli.WithHint(err, "the profile holds no passphrase: use --passphrase-file FILE, or save the profile with --save-passphrase")
	}
	return pass, err
}

// saveProfile writes the --save-profile profile, warning when it holds the
// passphrase.
func (r *backupRun) saveProfile(h *host.Host, p profile.Profile) error {
	name := r.o.saveProfile
	if err := profile.Save(h.Root(), name, p); err != nil {
		return err
	}
	path, _ := profile.Path(h.Root(), name)
	if p.HasPassphrase() {
		cli.Warn(r.stderr, r.tool, "the passphrase is stored in plain text in %s (mode 0600: only its owner and root can read it)", path)
	}
	if !r.o.quiet {
		fmt.Fprintf(r.info, "Backup profile saved to %s (run it again with: %s --profile %s)\n", path, r.tool, name)
	}
	return nil
}

// backup runs the plan with the chosen progress printer until it is done,
// fails, or SIGINT or SIGTERM cancels it.
func (r *backupRun) backup(p *backup.Plan) error {
	mode := r.o.progress
	if r.o.quiet && !r.flags.Changed("progress") {
		mode = "none"
	}
	rep, err := backupProgress(mode, r.stderr)
	if err != nil {
		return err
	}
	// A backup killed here before (SIGKILL, a crash) left its hidden
	// temporary file, up to the size of a backup.
	// (An unreadable destination fails the backup itself, with its own
	// message.)
	removed, _ := p.RemoveStale()
	for _, f := range removed {
		fmt.Fprintf(r.stderr, "%s: removed %s, left by a backup that did not finish\n", r.tool, f)
	}
	ctx := r.sig.Context()
	var out io.Writer = r.stdout
	if r.out != nil {
		out = r.out
	}
	res, err := backup.Run(ctx, p, out, rep)
	if bar, ok := rep.(*cli.ProgressBar); ok && err != nil {
		bar.Clear()
	}
	if err != nil {
		if errors.Is(err, backup.ErrCancelled) || ctx.Err() != nil {
			r.exit = ExitInterrupted
			err = errors.New("backup cancelled")
			if p.Target.Kind == backup.ToStdout {
				err = cli.WithHint(err, "what was written to standard output is an incomplete backup; discard it")
			}
			return err
		}
		if r.out != nil && errors.Is(err, syscall.EPIPE) {
			return cli.WithHint(fmt.Errorf("the destination closed the stream after %d bytes: the backup is incomplete", r.out.n),
				"what was written to standard output is not a usable backup; discard it")
		}
		if errors.Is(err, syscall.ENOSPC) {
			err = cli.WithHint(err, "free some space or choose another destination; the partial backup was removed")
		}
		return err
	}
	for _, w := range res.Warnings {
		cli.Warn(r.stderr, r.tool, "%s", w)
	}
	if !r.o.quiet {
		fmt.Fprintf(r.info, "Backup written to %s\n", resultLocation(res))
		if c := p.Chain; c != nil && c.Increment {
			fmt.Fprintf(r.info, "It is increment %d on %s: %s stored\n", c.Depth, c.Base, summarySize(res.Bytes))
			if res.Detection != nil {
				fmt.Fprintln(r.info, res.Detection)
			}
		}
	}
	if r.o.verify {
		return r.verify(ctx, p, res, mode)
	}
	return nil
}

// verify reads the written file back and reports per VM; a failure means
// the backup on disk cannot be trusted.
func (r *backupRun) verify(ctx context.Context, p *backup.Plan, res *backup.Result, mode string) error {
	if res.Location == "" || res.Target.VM != "" {
		cli.Warn(r.stderr, r.tool, "--verify reads back a backup file in dom0 only; this one went to %s", resultLocation(res))
		return nil
	}
	rep, err := backupProgress(mode, r.stderr)
	if err != nil {
		return err
	}
	checks, err := backup.Verify(ctx, p, res, rep)
	if err != nil && r.sig.Interrupted() {
		r.exit = ExitInterrupted
		return fmt.Errorf("interrupted: the backup was written to %s, but not verified", res.Location)
	}
	if err != nil {
		return cli.WithHint(fmt.Errorf("verification failed: %w", err), "the backup file is damaged or incomplete: do not rely on it")
	}
	if !r.o.quiet {
		fmt.Fprintf(r.info, "Verified %s:\n", res.Location)
		for _, c := range checks {
			fmt.Fprintf(r.info, "  %-16s OK  %d file(s), %s of content\n", c.Name, c.Files, cli.FormatSize(c.Data))
		}
	}
	return nil
}

// resultLocation says where a finished backup is.
func resultLocation(res *backup.Result) string {
	t := res.Target
	switch t.Kind {
	case backup.ToStdout:
		return "standard output"
	case backup.ToCommand:
		return "command: " + t.Path
	case backup.ToVM:
		if res.Location != "" {
			return res.Location + " in VM " + t.VM
		}
		return "command in VM " + t.VM + ": " + t.Path
	}
	return res.Location
}

// backupProgress is cli.ChooseProgress for any writer: one that is not a
// file is no terminal.
func backupProgress(mode string, w io.Writer) (progress.Reporter, error) {
	if f, ok := w.(*os.File); ok {
		return cli.ChooseProgress(mode, f)
	}
	switch mode {
	case "auto", "lines":
		return cli.NewProgressLines(w, cli.LinesInterval), nil
	case "bar":
		return cli.NewProgressBar(w, nil), nil
	case "json":
		return cli.NewProgressJSON(w), nil
	case "none":
		return progress.Discard, nil
	}
	return nil, cli.Usagef("unknown progress mode %q (valid: %s)", mode, strings.Join(cli.ProgressModes, ", "))
}

// countingWriter counts the bytes written through it: what a closed pipe
// received before it closed.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
