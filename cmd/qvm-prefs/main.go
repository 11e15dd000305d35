// Command qvm-prefs lists, prints, sets and resets VM properties.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.QvmPrefs(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
