package qrexec

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxBrowseEntries bounds a directory listing, each way.
const maxBrowseEntries = 5000

// BrowseEntry is one entry of a directory in a VM.
type BrowseEntry struct {
	Name string // one path element: no "/", no control characters
	Dir  bool
	Size int64 // of a regular file
}

// Browse asks vm for the entries of the directory dir in its filesystem
// (hidden ones left out), so that a dialog in dom0 can offer the VM's
// directories and files, as the reference system's select-directory and
// select-file services do with a dialog inside the VM. The reply is
// untrusted: it is read up to maxBrowseEntries lines of bounded length,
// and an entry whose name is not a plain path element fails the call.
func Browse(ctx context.Context, t Transport, vm, dir string) ([]BrowseEntry, error) {
	var entries []BrowseEntry
	err := listing(ctx, t, vm, ServiceBrowse, dir, "browsing", "browsing "+sanitize(dir)+" in", func(r *bufio.Reader) (err error) {
		entries, err = readBrowse(r)
		return err
	})
	return entries, err
}

func readBrowse(r *bufio.Reader) ([]BrowseEntry, error) {
	var entries []BrowseEntry
	err := readLines(r, func(line string) error {
		e, ok := browseEntry(line)
		if !ok || len(entries) >= maxBrowseEntries {
			return fmt.Errorf("unexpected line %q", sanitize(line))
		}
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

// browseEntry parses "dir - NAME" or "file SIZE NAME".
func browseEntry(line string) (BrowseEntry, bool) {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 || !plainName(f[2]) {
		return BrowseEntry{}, false
	}
	e := BrowseEntry{Name: f[2]}
	switch {
	case f[0] == "dir" && f[1] == "-":
		e.Dir = true
	case f[0] == "file":
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return BrowseEntry{}, false
		}
		e.Size = size
	default:
		return BrowseEntry{}, false
	}
	return e, true
}

// plainName reports whether name is one printable path element.
func plainName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '/' || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
