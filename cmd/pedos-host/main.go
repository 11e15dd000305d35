// Command pedos-host creates a PedOS host (empty, or the demo) and describes it.
// See internal/admintools, which implements it.
package main

import (
	"os"

	"pedos.dev/backup/internal/admintools"
)

func main() {
	os.Exit(admintools.PedosHost(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
