package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/qrexec"
)

// Listed is a backup that List found.
type Listed struct {
	// Location restores it.
	Location Location
	// Time is when it was stored (the file's modification time, the
	// object's last-modified time).
	Time time.Time
	Size int64
	// Version is its format version (2, 3, 4); Encrypted says whether it
	// is. Both come from its backup-header, unauthenticated: a listing
	// derives no key.
	Version   int
	Encrypted bool
	// ID is its backup-id, and Base the backup it is an increment of
	// ("" for a full backup); format 4 only, unauthenticated too.
	ID, Base string
	// Err says why its start is not a backup's header; then Version and
	// Encrypted are unknown.
	Err error
}

// listPrefix starts the names that List considers: those of backups made
// in a directory (by qvm-backup, or by the VM-side service).
const listPrefix = "qubes-backup-"

// List finds the backups in a directory (in dom0, or in a VM with
// loc.VM) or under an s3:// prefix in a VM, newest first. It reads the
// first few KiB of each, never a whole backup.
func List(ctx context.Context, loc Location, opts SourceOptions) ([]Listed, error) {
	var found []Listed
	if loc.InVM() {
		t := opts.Transport
		if t == nil {
			if opts.Host == nil {
				return nil, errors.New("restore: no host to reach VM " + loc.VM + " through")
			}
			t = qrexec.NewLocal(opts.Host)
		}
		entries, err := qrexec.List(ctx, t, loc.VM, loc.Path)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			found = append(found, listed(Location{Path: e.Name, VM: loc.VM}, e.Time, e.Size, e.Head))
		}
	} else {
		var err error
		if found, err = listDir(loc.Path); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(found, func(a, b Listed) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Location.Path, a.Location.Path)
	})
	return found, nil
}

func listDir(dir string) ([]Listed, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var found []Listed
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), listPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		head, err := io.ReadAll(io.LimitReader(f, qrexec.ListHeadSize))
		f.Close()
		if err != nil {
			continue
		}
		found = append(found, listed(Location{Path: p}, fi.ModTime(), fi.Size(), head))
	}
	return found, nil
}

// listed reads what a backup's first bytes say about it.
func listed(loc Location, t time.Time, size int64, head []byte) Listed {
	l := Listed{Location: loc, Time: t, Size: size}
	o := archive.NewOuterReader(bytes.NewReader(head))
	name, n, err := o.Next()
	switch {
	case err != nil:
		l.Err = fmt.Errorf("not a backup: %w", err)
	case name != "backup-header" || n > archive.MaxHeaderSize:
		l.Err = errors.New("not a backup: it does not start with a backup-header")
	default:
		data, err := io.ReadAll(o)
		var h archive.Header
		if err == nil {
			h, err = archive.ParseHeader(data)
		}
		if err != nil {
			l.Err = err
			break
		}
		l.Version, l.Encrypted = max(h.Version, 2), h.Encrypted
		l.ID, l.Base = h.BackupID, h.Base
	}
	return l
}

// ChainOf finds the older archives of the chain of an increment at loc,
// whose header names base: beside it (the same directory in dom0 or in a
// VM, or the same s3:// prefix), following each archive's base back to a
// full backup. It returns their locations oldest first. It reads only
// headers, unauthenticated: RestoreChain checks the chain again from the
// headers each archive proves when it is opened.
func ChainOf(ctx context.Context, loc Location, base string, opts SourceOptions) ([]Location, error) {
	dir := loc
	switch {
	case loc.InVM():
		dir.Path = loc.Path[:strings.LastIndex(loc.Path, "/")+1]
	default:
		dir.Path = filepath.Dir(loc.Path)
	}
	if dir.Path == "" || loc.Kind() == FromStdin || loc.Kind() == FromCommand {
		return nil, fmt.Errorf("%w: the archives before this increment are found beside it, in a directory or under a bucket prefix; %s is neither", ErrBrokenChain, loc.Path)
	}
	found, err := List(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("looking for the chain's archives: %w", err)
	}
	byID := map[string]Listed{}
	for _, l := range found {
		if l.ID != "" {
			byID[l.ID] = l
		}
	}
	var chain []Location
	for id := base; id != ""; {
		l, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("%w: backup %s, which the chain needs, is not in %s", ErrBrokenChain, id, dir.Path)
		}
		if len(chain) > 10000 {
			return nil, fmt.Errorf("%w: the chain goes round in a circle", ErrBrokenChain)
		}
		chain = append(chain, l.Location)
		id = l.Base
	}
	slices.Reverse(chain)
	return chain, nil
}
