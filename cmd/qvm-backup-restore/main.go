// Command qvm-backup-restore restores VMs from a backup, verifies it or
// extracts it. See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
	"pedos.dev/backup/internal/qrexec"
)

func main() {
	qrexec.MaybeServe() // the VM side of --dest-vm, when re-executed by the local transport
	os.Exit(admintools.QvmBackupRestore(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
