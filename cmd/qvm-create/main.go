// Command qvm-create creates a VM.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmCreate(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
