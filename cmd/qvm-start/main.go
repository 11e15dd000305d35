// Command qvm-start starts VMs.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmStart(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
