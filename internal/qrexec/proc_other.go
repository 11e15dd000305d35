//go:build !unix

package qrexec

import (
	"os"
	"syscall"
)

// Without process groups an abort reaches the service alone; PedOS hosts
// are Linux, this only keeps the package building elsewhere.

var abortSignals = []os.Signal{os.Interrupt}
var brokenPipe []os.Signal

func groupAttr() *syscall.SysProcAttr { return nil }
func terminate(p *os.Process)         { p.Kill() }
func killGroup(p *os.Process)         { p.Kill() }
func becomeGroupLeader()              {}
func killOwnGroup()                   { os.Exit(1) }
