// Package host is the PedOS host store: the VM database pedos.xml (the Qubes
// R4 qubes.xml schema), its lock and atomic saves, the VMs' volume images
// and files, their run state and the dom0 user's home.
package host
