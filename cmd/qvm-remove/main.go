// Command qvm-remove removes VMs and their files.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmRemove(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
