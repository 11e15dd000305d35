// Package gui is the PedOS VM Manager, the desktop face of the backup and
// restore engines: the main window (the host's VMs, as qvm-ls lists them)
// and the Wizard its Backup and Restore wizards are built from. It is Fyne
// over cgo; no engine package may import it or Fyne, so the command-line
// tools build without a C compiler or X libraries.
package gui
