package qrexec

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
)

// serveBrowse is the VM side of ServiceBrowse: for each entry of the
// directory loc names in the VM's filesystem, a line "dir - NAME" or
// "file SIZE NAME" (directories first, then by name; at most
// maxBrowseEntries; hidden entries and names a line cannot carry are left
// out), then "end". Symbolic links are followed only when they stay
// inside the VM's filesystem (os.Root); others are left out.
func serveBrowse(h *handler, root *os.Root, loc string) int {
	dir := inVM(loc)
	f, err := root.Open(dir)
	if err != nil {
		return h.fail(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return h.fail(err)
	}
	type entry struct {
		dir  bool
		size int64
		name string
	}
	var entries []entry
	for _, n := range names {
		if strings.HasPrefix(n, ".") || strings.ContainsAny(n, "\n\r") {
			continue
		}
		fi, err := root.Stat(path.Join(dir, n))
		switch {
		case err != nil:
		case fi.IsDir():
			entries = append(entries, entry{dir: true, name: n})
		case fi.Mode().IsRegular():
			entries = append(entries, entry{size: fi.Size(), name: n})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if a.dir != b.dir {
			if a.dir {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	if len(entries) > maxBrowseEntries {
		entries = entries[:maxBrowseEntries]
	}
	for _, e := range entries {
		var err error
		if e.dir {
			_, err = fmt.Fprintf(os.Stdout, "dir - %s\n", e.name)
		} else {
			_, err = fmt.Fprintf(os.Stdout, "file %d %s\n", e.size, e.name)
		}
		if err != nil {
			return h.fail(err)
		}
	}
	if err := reply("end"); err != nil {
		return h.fail(err)
	}
	return 0
}
