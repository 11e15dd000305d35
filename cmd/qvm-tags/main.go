// Command qvm-tags lists, adds and removes VM tags.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmTags(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
