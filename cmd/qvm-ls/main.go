// Command qvm-ls lists the VMs of a PedOS host.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmLs(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
