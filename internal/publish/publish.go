// Package publish writes a file under a hidden temporary name and gives it
// its final name only once it is complete, never replacing an existing
// file: a failed or interrupted write leaves nothing that looks finished.
// Backups in dom0 and the VM side of qubes.Backup both publish this way.
package publish

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// maxSuffix bounds the names tried: base, base-2, ..., base-1000.
const maxSuffix = 1000

// Suffixed is the i-th candidate name: base, base-2, base-3, ...
func Suffixed(base string, i int) string {
	if i == 1 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i)
}

// CreateTemp creates a hidden ".<base>.<random>.part" file in dir, next to
// where the finished file will be, so publishing is a link within one
// directory. The mode is 0600: a backup is nobody else's business, even
// encrypted. It returns the file and its path within root.
func CreateTemp(root *os.Root, dir, base string) (*os.File, string, error) {
	for range 10 {
		name := path.Join(dir, "."+base+"."+rand.Text()[:10]+".part")
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("cannot create a temporary file in %s", dir)
}

// FreeName is the name Publish would give now, if nothing takes it first.
func FreeName(root *os.Root, dir, base string) string {
	for i := 1; i < maxSuffix; i++ {
		if _, err := root.Lstat(path.Join(dir, Suffixed(base, i))); errors.Is(err, fs.ErrNotExist) {
			return Suffixed(base, i)
		}
	}
	return Suffixed(base, maxSuffix)
}

// Publish gives the finished file tmp the first free name among base,
// base-2, ... in dir and returns it. A hard link cannot replace an existing
// file, so nothing is ever overwritten, not even a file created a moment
// ago. Where there are no hard links (FAT, some FUSE file systems) it
// renames after a check, which only a race can defeat. Call SyncDir after.
func Publish(root *os.Root, dir, tmp, base string) (string, error) {
	for i := 1; i <= maxSuffix; i++ {
		name := Suffixed(base, i)
		final := path.Join(dir, name)
		err := root.Link(tmp, final)
		if err == nil {
			// Left behind, the temporary name would be a second link to a
			// good file: harmless, hence not an error.
			root.Remove(tmp)
			return name, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if _, lerr := root.Lstat(final); lerr == nil {
			continue
		} else if !errors.Is(lerr, fs.ErrNotExist) {
			return "", lerr
		}
		return name, root.Rename(tmp, final)
	}
	return "", fmt.Errorf("no free name for %s in %s", base, dir)
}

// SyncDir makes a directory's entries durable.
func SyncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
