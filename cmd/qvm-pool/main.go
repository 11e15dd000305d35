// Command qvm-pool lists, describes, adds and removes storage pools.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmPool(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
