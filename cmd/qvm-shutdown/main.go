// Command qvm-shutdown shuts VMs down.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmShutdown(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
