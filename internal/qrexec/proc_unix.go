//go:build unix

package qrexec

import (
	"os"
	"syscall"
)

// abortSignals make a service abort: SIGTERM from the local transport,
// SIGHUP from a lost ssh session, SIGINT from a developer's Ctrl-C.
var abortSignals = []os.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT}

// brokenPipe is caught (not ignored: commands must inherit its default).
var brokenPipe = []os.Signal{syscall.SIGPIPE}

// groupAttr puts the service in a process group of its own, which its
// command joins, so that one kill reaches everything it started.
func groupAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// terminate asks a service to abort.
func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }

// killGroup kills a service and everything in its process group.
func killGroup(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGKILL) }

// becomeGroupLeader gives the service its own process group, should the
// transport not have done so (a session leader already leads one).
func becomeGroupLeader() { syscall.Setpgid(0, 0) }

// killOwnGroup kills the service's command, all it started, and the
// service itself: the abort of a command has nothing else to undo.
func killOwnGroup() { syscall.Kill(0, syscall.SIGKILL) }
