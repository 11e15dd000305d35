// Package publish writes a file under a hidden temporary name and gives it
// its final name only once it is complete, never replacing an existing
// file: a failed or interrupted write leaves nothing that looks finished.
// Backups in dom0 and the VM side of qubes.Backup both publish this way.
package publish

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"
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
//
// The file is locked (flock) for as long as it is open, which tells
// RemoveStale that its writer lives: close it only after Publish. It is
// created as ".<base>.<random>.new" and renamed once locked, so that no
// ".part" file is ever unlocked while its writer lives.
func CreateTemp(root *os.Root, dir, base string) (*os.File, string, error) {
	for range 10 {
		stem := path.Join(dir, "."+base+"."+rand.Text()[:10])
		f, err := root.OpenFile(stem+newSuffix, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			err = root.Rename(stem+newSuffix, stem+partSuffix)
		}
		if err != nil {
			f.Close()
			root.Remove(stem + newSuffix)
			return nil, "", err
		}
		return f, stem + partSuffix, nil
	}
	return nil, "", fmt.Errorf("cannot create a temporary file in %s", dir)
}

const (
	newSuffix  = ".new"
	partSuffix = ".part"
	// staleNew is how old a ".new" file must be to be taken for one whose
	// writer died between creating and locking it.
	staleNew = time.Hour
)

// tempName matches what CreateTemp makes: "." base "." 10 base32 letters
// and digits, then ".new" or ".part".
var tempName = regexp.MustCompile(`^\..+\.[A-Z2-7]{10}\.(new|part)$`)

// RemoveStale removes from dir the temporary files of writers that died
// (SIGKILL, a crash, a power cut): ".part" files whose lock is free and
// that hold the start of a backup archive or nothing, and ".new" files an
// hour old. A live writer's file is locked and never touched. It returns
// the paths within root it removed.
func RemoveStale(root *os.Root, dir string) ([]string, error) {
	entries, err := fs.ReadDir(root.FS(), dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !tempName.MatchString(name) {
			continue
		}
		p := path.Join(dir, name)
		if strings.HasSuffix(name, newSuffix) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleNew && root.Remove(p) == nil {
				removed = append(removed, p)
			}
			continue
		}
		if removeIfStale(root, p) {
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// archiveStart is how a backup archive begins: the tar header of its
// first member, backup-header.
var archiveStart = []byte("backup-header\x00")

// removeIfStale removes the ".part" file p if no one holds its lock and
// it is one of ours (empty, or the start of an archive).
func removeIfStale(root *os.Root, p string) bool {
	f, err := root.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // its writer lives
	}
	head := make([]byte, len(archiveStart))
	n, _ := io.ReadFull(f, head)
	if !bytes.Equal(head[:n], archiveStart[:n]) {
		return false // not a backup: someone else's file
	}
	return root.Remove(p) == nil
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
