// Package cli holds the terminal helpers the command-line tools share:
// error and hint printing, usage errors, tables, byte sizes, passphrase
// prompts on /dev/tty, the y/N confirmation and the progress printers.
package cli
