// Command qvm-volume lists, describes, resizes, imports and exports VM volumes.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmVolume(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
