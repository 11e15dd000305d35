package admintools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/restore"
	"pedos.dev/backup/internal/scryptenc"
)

const restorePassphrasePrompt = "Please enter the passphrase to verify and (if encrypted) decrypt the backup: "

const qvmBackupRestoreLong = `Restore VMs from a backup (Qubes OS backup format 4), verify it, or extract it.

backup_location is one of:
  FILE         a backup file (an absolute path, one starting with ./ or ../, or an
               existing file)
  -            standard input (questions then go to the terminal; without one,
               --yes is required)
  COMMAND      any other text: a command line run by /bin/sh in dom0 whose standard
               output is the archive
With --dest-vm, backup_location is a file in that VM, a command run there, or an
s3://BUCKET/KEY object the VM reads with its own S3 configuration (reads resume
after a dropped connection); the VM must be running.

--list lists the backups (qubes-backup-* files or objects) in a directory, in dom0
or with --dest-vm in a VM, or under an s3://BUCKET/PREFIX/ in a VM: date, size,
format version and whether encrypted, newest first, read from each backup's first
few KiB (no passphrase).

vm restores only these VMs (their names in the backup; dom0 is the dom0 home).

qvm-backup-restore first shows what the backup holds and what will happen to each
VM. When that lists a problem nothing is touched; the message names the options
that would resolve it. Otherwise, unless --yes, it asks whether to proceed (the
reference tool skips that question whenever --passphrase-file is given; here only
--yes does).

The archive is read once, as a stream. Each VM is added to the host only when all
its data has been written and the archive has proved it complete (backups made by
qvm-backup prove that at their end); a VM that fails, or that an error or Ctrl-C
stops, is not added at all. The dom0 home goes to a new directory
home-restore-YYYY-MM-DD-HHMMSS in your home, never over it. The VMs' volumes go to
the host's default pool (the global default_pool, else its first file pool), or to
the file pool --pool names (qvm-pool lists them); free space is checked there.

--verify-only reads and checks everything (decryption, decompression, every file,
completeness) and touches nothing. --extract-to DIR writes qubes.xml, each VM's
files under DIR/<vm>/ and the home under DIR/dom0-home/<user>/, with no host needed.

exit status:
  0    everything selected was restored (verified, extracted)
  1    something failed: the summary or the result says what
  2    the command line is wrong
  3    the answer to "Do you want to proceed?" was no; nothing was changed
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); VMs not yet complete were not added`

type restoreFlags struct {
	verifyOnly, skipBroken, ignoreMissing, skipConflicting, renameConflicting bool
	skipDom0Home, ignoreUsernameMismatch, ignoreSizeLimit, dom0DefaultDispVM  bool
	globalDefaults                                                            bool
	forceKDF, yes, quiet, list                                                bool
	exclude                                                                   []string
	extractTo, filter, destVM, passFile, progress, pool                       string
	maxMemory, maxChunk                                                       string
}

// QvmBackupRestore is qvm-backup-restore.
func QvmBackupRestore(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-backup-restore", stdin: stdin, stdout: stdout, stderr: stderr}
	var o restoreFlags
	c := newRoot(e, "[options] backup_location [vm...]", qvmBackupRestoreLong)
	f := c.Flags()
	f.SortFlags = false
	f.BoolVar(&o.verifyOnly, "verify-only", false, "check the backup fully and restore nothing")
	f.BoolVar(&o.list, "list", false, "list the backups in the directory or under the s3:// prefix backup_location (date, size, format, encrypted), newest first")
	f.StringVar(&o.extractTo, "extract-to", "", "write the backup's files to `DIR` (new or empty) instead of restoring; no host needed")
	f.BoolVar(&o.skipBroken, "skip-broken", false, "leave out VMs whose template or netvm is missing")
	f.BoolVar(&o.ignoreMissing, "ignore-missing", false, "give VMs whose template or netvm is missing the host's default")
	f.BoolVar(&o.skipConflicting, "skip-conflicting", false, "leave out VMs whose name exists on the host")
	f.BoolVar(&o.renameConflicting, "rename-conflicting", false, "restore VMs whose name exists on the host as NAME-1, NAME-2, ...")
	f.StringArrayVarP(&o.exclude, "exclude", "x", nil, "do not restore `VM` (its name in the backup; dom0 is the home; repeatable)")
	f.BoolVar(&o.skipDom0Home, "skip-dom0-home", false, "do not restore the dom0 home")
	f.BoolVar(&o.ignoreUsernameMismatch, "ignore-username-mismatch", false, "restore the dom0 home of another user")
	f.BoolVar(&o.ignoreSizeLimit, "ignore-size-limit", false, "do not bound each VM's data by the size its backup declares")
	f.BoolVar(&o.dom0DefaultDispVM, "restore-dom0-default-dispvm", false, "also set this host's dom0 default_dispvm to the backup's")
	f.BoolVar(&o.globalDefaults, "restore-global-defaults", false, "also apply the backup's global VM settings (default_netvm, default_template, ...) that this host leaves unset")
	f.StringVarP(&o.pool, "pool", "P", "", "put the restored VMs' volumes in the file pool `POOL` (default: the host's default pool)")
	f.StringVarP(&o.filter, "compression-filter", "Z", "", "decompress with `PROG` -d instead of the filter the backup names")
	f.StringVarP(&o.destVM, "dest-vm", "d", "", "the backup is in `VM` (a file or command there); the VM must be running")
	f.StringVarP(&o.passFile, "passphrase-file", "p", "", "read the passphrase from the first line of `FILE` (- for standard input)")
	f.BoolVar(&o.forceKDF, "force-kdf", false, "accept scrypt parameters beyond the safety limits (4 GiB of memory)")
	f.BoolVarP(&o.yes, "yes", "y", false, "do not ask whether to proceed")
	f.StringVar(&o.progress, "progress", "auto", "show progress on standard error as `MODE`: auto, bar, lines, json or none")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only warnings, errors and the summary; no progress unless --progress")
	addMaxMemoryFlag(f, &o.maxMemory)
	f.StringVar(&o.maxChunk, "max-chunk-size", "", "accept chunks of up to `SIZE` (each is held in memory whole; default 256MiB)")

	return executeWithStatus(e, c, args, func(cmd *cobra.Command, pos []string) (int, error) {
		r := &restoreRun{env: e, o: &o, flags: cmd.Flags(), args: pos}
		r.sig = e.watchSignals("nothing was changed")
		defer r.sig.Stop()
		err := r.run()
		return r.exit, memoryHint(err)
	})
}

type restoreRun struct {
	*env
	o         *restoreFlags
	maxMemory int64 // --max-memory or PEDOS_MAX_MEMORY; 0: the default
	maxChunk  int   // --max-chunk-size; 0: the default
	flags     *pflag.FlagSet
	args      []string
	exit      int
	tty       *os.File // questions, when stdin carries the archive
	sig       *cli.Signals
	intoHost  bool   // a restore into the host, not --verify-only or --extract-to
	password  []byte // the passphrase, cleared when the run ends
	unwatch   func() // ends the source's signal hook
	// links is the chain of an increment, oldest first, the increment last.
	links []*restore.Backup
	// warned: the warnings printed so far. CheckHost's trial shows a VM's
	// warnings before the question, and the VM's result has them again.
	warned map[string]bool
}

// warn prints a warning once.
func (r *restoreRun) warn(w string) {
	if r.warned[w] {
		return
	}
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	r.warned[w] = true
	cli.Warn(r.stderr, r.tool, "%s", w)
}

// keyCost says, before a derivation runs, what the archive's key
// derivations will cost when that is more than a moment: the cost comes
// from the archive, unauthenticated, so a forged or unusual one shows
// (and Ctrl-C stops it).
func (r *restoreRun) keyCost(p scryptenc.Params) {
	if r.o.quiet {
		return
	}
	if d := scryptenc.Estimate(p); d >= time.Second {
		fmt.Fprintf(r.stderr, "Deriving keys at scrypt cost %s: about %s and %s of memory each (Ctrl-C stops)...\n",
			p, d.Round(time.Second), progress.FormatSize(int64(min(p.Memory(), 1<<62))))
	}
}

func (r *restoreRun) checkFlags() error {
	o := r.o
	switch {
	case len(r.args) == 0:
		return cli.Usagef("missing backup_location")
	case o.verifyOnly && o.extractTo != "":
		return cli.Usagef("--verify-only and --extract-to exclude each other")
	case r.flags.Changed("compression-filter") && o.filter == "":
		return cli.Usagef("-Z/--compression-filter needs a program name")
	case o.list && (len(r.args) > 1 || o.verifyOnly || o.extractTo != "" || r.args[0] == "-"):
		return cli.Usagef("--list takes one directory or s3:// prefix, and no VM names, --verify-only or --extract-to")
	case r.args[0] == "-" && o.passFile == "-":
		return cli.Usagef("the archive and the passphrase cannot both come from standard input")
	}
	var err error
	if r.maxMemory, err = memoryBudget(o.maxMemory); err != nil {
		return err
	}
	if o.maxChunk != "" {
		n, err := cli.ParseSize(o.maxChunk)
		if err != nil || n < 1<<20 || n > 1<<40 {
			return cli.Usagef("--max-chunk-size: want a size from 1MiB to 1TiB, not %q", o.maxChunk)
		}
		r.maxChunk = int(n)
	}
	for _, n := range []string{"skip-conflicting", "rename-conflicting", "ignore-username-mismatch", "restore-dom0-default-dispvm", "restore-global-defaults", "pool"} {
		if (o.verifyOnly || o.extractTo != "") && r.flags.Changed(n) {
			return cli.Usagef("--%s applies to a restore into the host, not to --verify-only or --extract-to", n)
		}
	}
	for _, m := range cli.ProgressModes {
		if m == o.progress {
			return nil
		}
	}
	return cli.Usagef("unknown progress mode %q (valid: %s)", o.progress, strings.Join(cli.ProgressModes, ", "))
}

func (r *restoreRun) run() error {
	if err := r.checkFlags(); err != nil {
		return err
	}
	if r.o.list {
		return r.list()
	}
	r.intoHost = !r.o.verifyOnly && r.o.extractTo == ""
	h, err := r.prepare()
	if r.tty != nil {
		defer r.tty.Close()
	}
	if err != nil {
		return err
	}
	defer func() { clear(r.password) }()
	src, b, err := r.open(h)
	if err != nil {
		return err
	}
	defer r.unwatch()
	defer src.Close()
	defer b.Close()
	plan, err := r.plan(h, b)
	if err != nil || plan == nil {
		return err
	}
	if b.Chain != nil {
		links, closeLinks, err := r.openChain(h, b)
		if err != nil {
			return err
		}
		defer closeLinks()
		r.links = links
	}
	if ok, err := r.checkAndConfirm(h, plan); !ok || err != nil {
		return err
	}
	return r.dataPass(h, src, b, plan)
}

// openChain finds and opens the older archives of the chain of b, an
// increment, and returns the whole chain (b last) and what closes them.
func (r *restoreRun) openChain(h *host.Host, b *restore.Backup) ([]*restore.Backup, func(), error) {
	if !r.o.quiet {
		fmt.Fprintln(r.stderr, "This backup is an increment: opening the archives of its chain...")
	}
	limits := scryptenc.DefaultLimits
	limits.Force = r.o.forceKDF
	c, err := restore.OpenChain(context.Background(), b, r.location(),
		restore.SourceOptions{Stdin: r.stdin, Stderr: r.stderr, Host: h},
		restore.OpenOptions{Passphrase: r.password, Limits: limits, ForceFilter: r.o.filter,
			MaxMemory: r.maxMemory, MaxChunkSize: r.maxChunk, KeyCost: r.keyCost})
	if err != nil {
		return nil, nil, openError(err)
	}
	if !r.o.quiet {
		fmt.Fprintf(r.stderr, "It is increment %d of a chain of %d archives.\n", len(c.Links)-1, len(c.Links))
	}
	return c.Links, c.Close, nil
}

// prepare opens the host when the run needs one and checks, before the
// passphrase is asked for, what can be checked: the pool, and a terminal
// for the question when the archive comes on stdin.
func (r *restoreRun) prepare() (*host.Host, error) {
	var h *host.Host
	if r.intoHost || r.location().InVM() {
		var err error
		if h, err = r.host(); err != nil {
			return nil, err
		}
	}
	if r.intoHost && r.o.pool != "" {
		db, err := h.Load()
		if err == nil {
			err = poolFlag(db, r.o.pool)
		}
		if err != nil {
			return nil, err
		}
	}
	if r.args[0] == "-" && !r.o.yes && r.intoHost {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			return nil, cli.WithHint(cli.Usagef("no terminal to ask whether to proceed on, and the backup comes on standard input"), "add --yes to restore without asking")
		}
		r.tty = tty
	}
	return h, nil
}

// location is backup_location with --dest-vm.
func (r *restoreRun) location() restore.Location {
	return restore.Location{Path: r.args[0], VM: r.o.destVM}
}

// open asks for the passphrase (a format 1 directory has none), opens the
// source and reads the backup's header and qubes.xml.
func (r *restoreRun) open(h *host.Host) (*restore.Source, *restore.Backup, error) {
	loc := r.location()
	var pass []byte
	if loc.Kind() != restore.FromDir {
		var err error
		if pass, err = r.passphrase(); err != nil {
			return nil, nil, err
		}
		// The archive reader derives the chunks' keys with it as it reads:
		// it is cleared when the run ends.
		r.password = pass
	}
	if !r.o.quiet {
		fmt.Fprintln(r.stderr, "Checking backup content...")
	}
	// Until the data pass, a signal simply ends the program (see
	// watchSignals): nothing has been changed. A command that waits (a
	// network, a prompt) would outlive that exit, so the signal stops it
	// first; closing the source stops it too.
	src, err := restore.OpenSource(context.Background(), loc, restore.SourceOptions{Stdin: r.stdin, Stderr: r.stderr, Host: h})
	if err != nil {
		if loc.InVM() {
			err = cli.WithHint(err, "the VM must be running (qvm-start %s)", loc.VM)
		}
		return nil, nil, err
	}
	unwatch := r.sig.AtSignal(src.Stop)
	limits := scryptenc.DefaultLimits
	limits.Force = r.o.forceKDF
	b, err := src.Open(context.Background(), restore.OpenOptions{Passphrase: pass, Limits: limits, ForceFilter: r.o.filter,
		MaxMemory: r.maxMemory, MaxChunkSize: r.maxChunk, KeyCost: r.keyCost})
	if err != nil {
		unwatch()
		// A source that failed by itself (a command's exit status, a VM
		// service's error) is the cause of whatever reading found.
		var se *restore.SourceError
		if errors.As(err, &se) {
			return nil, nil, fmt.Errorf("the backup source failed: %w (%v)", se.Err, openError(se.Read))
		}
		return nil, nil, openError(err)
	}
	r.unwatch = unwatch
	if v := b.Header.Version; v < 4 && !r.o.quiet {
		fmt.Fprintf(r.stderr, "This backup is in the format %d of older systems; its VMs are converted to today's settings.\n", v)
	}
	return src, b, nil
}

// plan makes the restore plan and prints the summary. A plan with
// problems is printed with them and returned as nil, with the exit
// status set.
func (r *restoreRun) plan(h *host.Host, b *restore.Backup) (*restore.Plan, error) {
	var planHost *host.Host
	if r.intoHost {
		planHost = h
	}
	plan, err := restore.NewPlan(planHost, b, restore.PlanOptions{
		VMs: r.args[1:], Exclude: r.o.exclude, VerifyOnly: !r.intoHost,
		SkipBroken: r.o.skipBroken, IgnoreMissing: r.o.ignoreMissing,
		SkipConflicting: r.o.skipConflicting, RenameConflicting: r.o.renameConflicting,
		SkipDom0Home: r.o.skipDom0Home, IgnoreUsernameMismatch: r.o.ignoreUsernameMismatch,
		IgnoreSizeLimit: r.o.ignoreSizeLimit,
	})
	if err != nil {
		if errors.Is(err, restore.ErrUnknownVM) {
			return nil, cli.WithHint(err, "name VMs as the summary of the backup lists them")
		}
		return nil, err
	}
	r.printSummary(plan, r.intoHost)
	for _, w := range plan.Warnings {
		r.warn(w)
	}
	if perr := plan.Err(); perr != nil {
		var pe *restore.ProblemsError
		errors.As(perr, &pe)
		for _, p := range pe.Problems {
			cli.PrintError(r.stderr, r.tool, cli.WithHint(p, "%s", restoreHint(p)))
		}
		fmt.Fprintln(r.stderr, "Nothing was changed.")
		r.exit = cli.ExitError
		return nil, nil
	}
	if len(plan.Restored()) == 0 {
		if len(b.VMs) == 0 && b.Dom0 == nil {
			return nil, errors.New("nothing to restore: the backup's qubes.xml lists no VM whose data the backup holds")
		}
		return nil, errors.New("nothing to restore: every VM of the backup is left out")
	}
	return plan, nil
}

// resolutionFlags spells the engine's resolutions as the options that set
// them.
var resolutionFlags = map[restore.Resolution]string{
	restore.SkipConflicting:          "--skip-conflicting",
	restore.RenameConflicting:        "--rename-conflicting",
	restore.SkipBroken:               "--skip-broken",
	restore.IgnoreMissing:            "--ignore-missing",
	restore.ExcludeVM:                "--exclude",
	restore.SkipDom0Home:             "--skip-dom0-home",
	restore.IgnoreUsernameMismatch:   "--ignore-username-mismatch",
	restore.IgnoreSizeLimit:          "--ignore-size-limit",
	restore.RestoreGlobalDefaults:    "--restore-global-defaults",
	restore.RestoreDom0DefaultDispVM: "--restore-dom0-default-dispvm",
}

// flagsOf spells resolutions as options, "A or B".
func flagsOf(rs []restore.Resolution) string {
	flags := make([]string, len(rs))
	for i, r := range rs {
		flags[i] = resolutionFlags[r]
	}
	return strings.Join(flags, " or ")
}

// restoreHint says how to resolve a problem of the plan.
func restoreHint(p restore.Problem) string {
	if len(p.Resolve) == 0 {
		return "leave it out with -x/--exclude"
	}
	return "to go on, use " + flagsOf(p.Resolve)
}

// checkAndConfirm tries a restore into the host on a copy of its database
// (CheckHost), shows its warnings and asks whether to proceed. ok is false
// when the run is to end here.
func (r *restoreRun) checkAndConfirm(h *host.Host, plan *restore.Plan) (ok bool, err error) {
	if !r.intoHost {
		return true, nil
	}
	warns, err := restore.CheckHost(context.Background(), h, plan, r.restoreOptions())
	for _, w := range warns {
		if len(w.Resolve) > 0 {
			r.warn(w.Message + " (use " + flagsOf(w.Resolve) + ")")
		} else {
			r.warn(w.Message)
		}
	}
	if err != nil {
		fmt.Fprintln(r.stderr, "Nothing was changed.")
		if errors.Is(err, host.ErrPoolDriver) || errors.Is(err, host.ErrNoSuchPool) {
			err = cli.WithHint(err, "choose a file pool with --pool (qvm-pool lists the pools)")
		}
		return false, err
	}
	if !r.o.quiet {
		fmt.Fprintln(r.stdout, "\nThe above VMs will be copied and added to your system. Existing VMs will NOT be removed.")
		if r.o.pool != "" {
			fmt.Fprintf(r.stdout, "Their volumes go to the pool %s.\n", r.o.pool)
		}
	}
	if r.o.yes {
		return true, nil
	}
	ok, err = r.env.confirm(r.tty)
	if err != nil {
		return false, err
	}
	if !ok {
		fmt.Fprintln(r.stdout, "Restore not started; nothing was changed (--yes restores without asking).")
		r.exit = ExitDeclined
	}
	return ok, nil
}

// dataPass runs the chosen data pass, then reads the source to its end
// for its own outcome, and words an interruption.
func (r *restoreRun) dataPass(h *host.Host, src *restore.Source, b *restore.Backup, plan *restore.Plan) error {
	rep, err := backupProgress(r.progressMode(), r.stderr)
	if err != nil {
		return err
	}
	// From here on a signal stops the pass, which then removes what it
	// staged, instead of ending the program.
	defer r.sig.Busy()()
	ctx := r.sig.Context()
	err = r.pass(ctx, h, b, plan, rep)
	if bar, ok := rep.(*cli.ProgressBar); ok && err != nil {
		bar.Clear()
	}
	if err == nil {
		err = src.Finish()
	} else {
		src.Close()
	}
	if err != nil && r.sig.Interrupted() {
		r.exit = ExitInterrupted
		switch {
		case r.o.verifyOnly:
			return errors.New("interrupted; the verification did not finish")
		case r.o.extractTo != "":
			return fmt.Errorf("interrupted; what was extracted was removed from %s", r.o.extractTo)
		}
		return errors.New("interrupted; VMs that were not complete were not added")
	}
	return err
}

func (r *restoreRun) progressMode() string {
	if r.o.quiet && !r.flags.Changed("progress") {
		return "none"
	}
	return r.o.progress
}

// pass runs the chosen data pass and prints its result.
func (r *restoreRun) pass(ctx context.Context, h *host.Host, b *restore.Backup, plan *restore.Plan, rep progress.Reporter) error {
	switch {
	case r.o.verifyOnly:
		var vr *restore.VerifyReport
		var err error
		if r.links != nil {
			vr, err = restore.VerifyChain(ctx, r.links, plan, rep)
		} else {
			vr, err = restore.VerifyOnly(ctx, b, plan, rep)
		}
		if vr != nil {
			t := cli.NewTable("VM", "RESULT")
			for _, v := range vr.VMs {
				t.Row(v.Name, verdict(v, "OK"))
			}
			t.WriteTo(r.stdout)
		}
		if err != nil {
			return cli.WithHint(fmt.Errorf("verification failed: %w", sizeLimitFlag(err)), "the backup is damaged or incomplete: do not rely on it")
		}
		fmt.Fprintln(r.stdout, "The backup is complete and intact.")
		return nil
	case r.o.extractTo != "":
		var err error
		if r.links != nil {
			err = restore.ExtractChain(ctx, r.links, plan, r.o.extractTo, rep)
		} else {
			err = restore.ExtractTo(ctx, b, plan, r.o.extractTo, rep)
		}
		if err != nil {
			if errors.Is(err, restore.ErrExtractDir) {
				return cli.WithHint(err, "--extract-to takes a new or empty directory")
			}
			return fmt.Errorf("extraction failed; what it had written to %s was removed: %w", r.o.extractTo, sizeLimitFlag(err))
		}
		fmt.Fprintf(r.stdout, "Extracted to %s\n", r.o.extractTo)
		return nil
	}
	var res *restore.Result
	var err error
	if r.links != nil {
		res, err = restore.RestoreChain(ctx, h, r.links, plan, r.restoreOptions(), rep)
	} else {
		res, err = restore.Restore(ctx, h, b, plan, r.restoreOptions(), rep)
	}
	if res != nil {
		for _, f := range res.Removed {
			fmt.Fprintf(r.stderr, "%s: removed %s, left by a restore that did not finish\n", r.tool, f)
		}
		t := cli.NewTable("VM", "RESTORED AS", "RESULT")
		for _, v := range res.VMs {
			t.Row(v.Name, v.Target, verdict(v.VMReport, string(v.Outcome)))
			for _, w := range v.Warnings {
				r.warn(w)
			}
		}
		t.WriteTo(r.stdout)
		for _, w := range res.Warnings {
			r.warn(w)
		}
	}
	if err != nil {
		return err
	}
	if !r.o.quiet {
		fmt.Fprintln(r.stdout, "Done. Please install updates for all the restored templates.")
	}
	return nil
}

func (r *restoreRun) restoreOptions() restore.Options {
	return restore.Options{Dom0DefaultDispVM: r.o.dom0DefaultDispVM, GlobalDefaults: r.o.globalDefaults, Pool: r.o.pool}
}

// sizeLimitFlag names the option that reads a VM's data beyond its
// backup-size, when that is what stopped it.
func sizeLimitFlag(err error) error {
	if errors.Is(err, restore.ErrSizeLimit) {
		return fmt.Errorf("%w (use %s)", err, resolutionFlags[restore.IgnoreSizeLimit])
	}
	return err
}

// verdict is a VM's result cell.
func verdict(v restore.VMReport, ok string) string {
	if v.Err != nil {
		return "FAILED: " + sizeLimitFlag(v.Err).Error()
	}
	return fmt.Sprintf("%s (%d file(s), %s)", ok, v.Files, cli.FormatSize(v.Bytes))
}

// printSummary prints the reference table (doc/reference.md B.5).
func (r *restoreRun) printSummary(plan *restore.Plan, intoHost bool) {
	var b strings.Builder
	b.WriteString("The following VMs are included in the backup:\n\n")
	rows := plan.Rows()
	head := []string{"name", "type", "template", "netvm", "label"}
	cells := make([][]string, len(rows))
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = len(h) + 1
	}
	for i, row := range rows {
		cells[i] = []string{row.Name, row.Type, row.Template, row.NetVM, row.Label}
		for j, c := range cells[i] {
			width[j] = max(width[j], len(c)+1)
		}
	}
	line := func(vals []string) string {
		var s strings.Builder
		for j, v := range vals {
			fmt.Fprintf(&s, "%*s |", width[j], v)
		}
		return s.String()
	}
	var sep strings.Builder
	for _, w := range width {
		sep.WriteString(strings.Repeat("-", w+1) + "+")
	}
	b.WriteString(sep.String() + "\n" + line(head) + "\n" + sep.String() + "\n")
	for i, row := range rows {
		b.WriteString(line(cells[i]))
		switch {
		case row.Problem != "":
			b.WriteString(" <-- " + row.Problem)
		case len(row.Info) > 0:
			b.WriteString(" <-- " + strings.Join(row.Info, " <-- "))
		}
		b.WriteString("\n")
	}
	if intoHost {
		if pv := plan.VM("dom0"); pv != nil && pv.Restored() {
			b.WriteString("\nNOTE: the dom0 home will be restored into a new directory home-restore-<time> in your\nhome; move the files you want out of it yourself.\n")
		}
	}
	io.WriteString(r.stdout, b.String())
}

func (r *restoreRun) passphrase() ([]byte, error) {
	if r.o.passFile != "" {
		return r.readPassphraseFile(r.o.passFile)
	}
	return cli.ReadPassphrase(restorePassphrasePrompt, false)
}

// openError words the errors of reading the header and qubes.xml.
func openError(err error) error {
	switch {
	case errors.Is(err, archive.ErrBadPassphrase):
		return cli.WithHint(fmt.Errorf("the backup header's authentication failed: %w", err), "check the passphrase; nothing was changed")
	case errors.Is(err, scryptenc.ErrTooExpensive):
		return cli.WithHint(err, "a backup made elsewhere may need more; if you trust it, add --force-kdf")
	}
	return fmt.Errorf("reading the backup: %w", err)
}

// list prints the backups in a directory or under an s3:// prefix, read
// from their headers only: no passphrase, no key derivation.
func (r *restoreRun) list() error {
	loc := r.location()
	opts := restore.SourceOptions{}
	if loc.InVM() {
		h, err := r.host()
		if err != nil {
			return err
		}
		opts.Host = h
	}
	found, err := restore.List(context.Background(), loc, opts)
	if err != nil {
		if loc.InVM() {
			err = cli.WithHint(err, "the VM must be running (qvm-start %s)", loc.VM)
		}
		return err
	}
	if len(found) == 0 {
		fmt.Fprintf(r.stderr, "No backups (%s...) found in %s\n", "qubes-backup-", loc.Path)
		return nil
	}
	t := cli.NewTable("BACKUP", "DATE", "SIZE", "FORMAT", "ENCRYPTED", "KIND")
	for _, l := range found {
		format, enc := strconv.Itoa(l.Version), "no"
		if l.Encrypted {
			enc = "yes"
		}
		if l.Err != nil {
			format, enc = "?", "? ("+l.Err.Error()+")"
		}
		t.Row(l.Location.Path, l.Time.Local().Format("2006-01-02 15:04:05"), progress.FormatSize(l.Size), format, enc, kindOf(l, found))
	}
	_, err = t.WriteTo(r.stdout)
	return err
}

// kindOf says what a listed backup is: full, or an increment and how far
// down its chain, found by following the bases among those listed.
func kindOf(l restore.Listed, found []restore.Listed) string {
	switch {
	case l.Err != nil || l.Version < 4:
		return "-"
	case l.Base == "":
		return "full"
	}
	byID := map[string]restore.Listed{}
	for _, f := range found {
		if f.ID != "" {
			byID[f.ID] = f
		}
	}
	depth := 0
	for at := l; at.Base != ""; depth++ {
		base, ok := byID[at.Base]
		if !ok || depth > len(found) {
			return fmt.Sprintf("increment of %s (not here: the chain is broken)", at.Base)
		}
		at = base
	}
	return fmt.Sprintf("increment %d", depth)
}
