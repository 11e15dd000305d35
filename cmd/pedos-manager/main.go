// Command pedos-manager is the PedOS VM Manager, the desktop face of
// qvm-backup and qvm-backup-restore. See internal/gui, which implements it.
//
//	pedos-manager [--root DIR]           the main window: VMs, Backup, Restore
//	pedos-manager [--root DIR] backup    the Backup wizard alone
//	pedos-manager [--root DIR] restore   the Restore wizard alone
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"fyne.io/fyne/v2/app"

	"pedos.dev/backup/internal/gui"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/qrexec"
)

// appID names the application to Fyne, which keeps its preferences under it.
const appID = "dev.pedos.manager"

func main() {
	qrexec.MaybeServe() // the VM side of a backup to or restore from a VM, when re-executed by the local transport
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run shows the windows args ask for until the user closes them, and
// returns the exit status: 0, or 2 for a usage error.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pedos-manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "", "use the host in `DIR` (default: $PEDOS_ROOT, else /var/lib/pedos)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: pedos-manager [--root DIR] [backup | restore]\n\n"+
			"The PedOS VM Manager: the host's VMs, and the Backup and Restore wizards.\n"+
			"With backup or restore, only that wizard.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	mode := fs.Arg(0)
	bad := fs.Arg(1)
	if mode != "" && mode != "backup" && mode != "restore" {
		bad = mode
	}
	if bad != "" {
		fmt.Fprintf(stderr, "pedos-manager: unexpected argument %q\n", bad)
		fs.Usage()
		return 2
	}
	if *root == "" {
		*root = host.DefaultRoot()
	}

	a := app.NewWithID(appID)
	hooks := gui.Hooks{
		Backup:  func() { gui.ShowBackupWizard(a, *root) },
		Restore: func() { gui.ShowRestoreWizard(a, *root) },
	}
	switch mode {
	case "backup":
		hooks.Backup()
	case "restore":
		hooks.Restore()
	default:
		gui.NewMainWindow(a, *root, hooks).Window.Show()
	}
	a.Run()
	return 0
}
