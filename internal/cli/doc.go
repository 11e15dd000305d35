// Package cli holds the terminal helpers the command-line tools share:
// error and hint printing, usage errors, tables and byte sizes.
package cli
