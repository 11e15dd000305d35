// Package admintools implements the PedOS admin command-line tools
// (pedos-host, qvm-ls, qvm-create, ...): options, checks of what the user
// typed and printing, over the host store. Each cmd/<tool> calls one Run
// function here, so tests can run the tools in-process.
package admintools
