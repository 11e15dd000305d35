// Command qvm-features lists, prints, sets and unsets VM features.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmFeatures(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
