package qrexec

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"pedos.dev/backup/internal/objstore"
)

// serveCheck is the VM side of ServiceCheck: it replies "ok", or
// "problem KIND MESSAGE" (KIND as objstore.Kind names it), and exits 0
// either way: the problem is the answer, not a failure of the call.
func serveCheck(loc string) int {
	if !objstore.IsURL(loc) {
		reply("ok") // a directory or a command is checked when the backup opens it
		return 0
	}
	kind, msg := checkObject(loc)
	if kind == "" {
		reply("ok")
	} else {
		reply("problem %s %s", kind, strings.ReplaceAll(msg, "\n", " "))
	}
	return 0
}

// serveList is the VM side of ServiceList: for each backup file in the
// directory (or object under the prefix) loc names, whose name starts
// with "qubes-backup-", a line "entry SIZE UNIXTIME N NAME" and the first N
// bytes (at most ListHeadSize) of it; then "end".
func serveList(h *handler, root *os.Root, loc string) int {
	var entries []listEntry
	var err error
	if objstore.IsURL(loc) {
		entries, err = listObjects(loc)
	} else {
		entries, err = listDir(root, loc)
	}
	if err != nil {
		return h.fail(err)
	}
	if len(entries) > maxListEntries {
		entries = entries[:maxListEntries]
	}
	for _, e := range entries {
		if _, err := fmt.Fprintf(os.Stdout, "entry %d %d %d %s\n", e.size, e.time.Unix(), len(e.head), e.name); err != nil {
			return h.fail(err)
		}
		if _, err := os.Stdout.Write(e.head); err != nil {
			return h.fail(err)
		}
	}
	if err := reply("end"); err != nil {
		return h.fail(err)
	}
	return 0
}

type listEntry struct {
	name string
	size int64
	time time.Time
	head []byte
}

func listDir(root *os.Root, loc string) ([]listEntry, error) {
	dir := inVM(loc)
	f, err := root.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	var entries []listEntry
	for _, n := range names {
		if !strings.HasPrefix(n, listNamePrefix) {
			continue
		}
		p := path.Join(dir, n)
		fi, err := root.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		head, err := readHead(root, p)
		if err != nil {
			continue
		}
		entries = append(entries, listEntry{name: path.Join(loc, n), size: fi.Size(), time: fi.ModTime(), head: head})
	}
	return entries, nil
}

func readHead(root *os.Root, p string) ([]byte, error) {
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, ListHeadSize))
}

func listObjects(loc string) ([]listEntry, error) {
	l, store, err := openObjectStore(loc)
	if err != nil {
		return nil, err
	}
	if l.Key != "" && !l.IsPrefix() {
		l.Key += "/" // a prefix was meant
	}
	ctx := context.Background()
	objs, err := store.List(ctx, l, listNamePrefix)
	if err != nil {
		return nil, err
	}
	var entries []listEntry
	for _, o := range objs {
		ol := objstore.Location{Bucket: l.Bucket, Key: o.Key}
		head, err := store.Head(ctx, ol, ListHeadSize)
		if err != nil {
			return nil, err
		}
		entries = append(entries, listEntry{name: ol.String(), size: o.Size, time: o.Modified, head: head})
	}
	return entries, nil
}
