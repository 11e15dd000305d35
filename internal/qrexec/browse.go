package qrexec

import (
	"bufio"
	"context"
	"errors"
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
	conn, err := call(ctx, t, vm, ServiceBrowse, dir, "browsing")
	if err != nil {
		return nil, err
	}
	entries, perr := readBrowse(bufio.NewReaderSize(conn, replyLimit))
	if perr != nil {
		conn.Abort()
	}
	if err := conn.Wait(); err != nil {
		return nil, serviceFailed("browsing "+sanitize(dir)+" in", vm, err)
	}
	if perr != nil {
		return nil, fmt.Errorf("browsing %s in VM %s: %w", sanitize(dir), vm, perr)
	}
	return entries, nil
}

func readBrowse(r *bufio.Reader) ([]BrowseEntry, error) {
	var entries []BrowseEntry
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, errors.New("the listing ended early")
		}
		s := strings.TrimSuffix(string(line), "\n")
		if s == "end" {
			return entries, nil
		}
		f := strings.SplitN(s, " ", 3)
		if len(f) != 3 || len(entries) >= maxBrowseEntries || !plainName(f[2]) {
			return nil, fmt.Errorf("unexpected line %q", sanitize(s))
		}
		e := BrowseEntry{Name: f[2]}
		switch {
		case f[0] == "dir" && f[1] == "-":
			e.Dir = true
		case f[0] == "file":
			if e.Size, err = strconv.ParseInt(f[1], 10, 64); err != nil || e.Size < 0 {
				return nil, fmt.Errorf("unexpected line %q", sanitize(s))
			}
		default:
			return nil, fmt.Errorf("unexpected line %q", sanitize(s))
		}
		entries = append(entries, e)
	}
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
