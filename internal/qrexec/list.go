package qrexec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"pedos.dev/backup/internal/objstore"
)

// ListHeadSize is how much of each backup a listing reads: the outer
// tar's first members (backup-header and its .hmac) are well within it.
const ListHeadSize = 8 << 10

const (
	// maxListEntries bounds a listing, against a hostile VM.
	maxListEntries = 10000
	listNamePrefix = "qubes-backup-"
)

// CheckProblem is what a VM side found wrong with a destination at plan
// time (see CheckDestination).
type CheckProblem struct {
	// Kind is objstore.Kind's name: "no-bucket", "refused",
	// "unreachable", "bad-location", "not-configured", ...
	Kind    string
	Message string
}

func (p *CheckProblem) Error() string { return p.Message }

// CheckDestination asks vm whether location can take a backup, reading no
// backup data: for an s3:// location, the VM's S3 configuration is usable,
// the endpoint answers, the bucket exists and accepts the credentials. It
// returns nil, a *CheckProblem, or the call's own failure.
func CheckDestination(ctx context.Context, t Transport, vm, location string) error {
	conn, err := call(ctx, t, vm, ServiceCheck, location, "calling")
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(io.LimitReader(conn, replyLimit), replyLimit)
	line, rerr := r.ReadString('\n')
	io.Copy(io.Discard, r)
	if err := conn.Wait(); err != nil {
		return serviceFailed("checking the destination in", vm, err)
	}
	if rerr != nil {
		return fmt.Errorf("checking the destination in VM %s: no answer", vm)
	}
	line = sanitize(strings.TrimSuffix(line, "\n"))
	if line == "ok" {
		return nil
	}
	if rest, ok := strings.CutPrefix(line, "problem "); ok {
		kind, msg, _ := strings.Cut(rest, " ")
		return &CheckProblem{Kind: kind, Message: msg}
	}
	return fmt.Errorf("checking the destination in VM %s: unexpected answer %q", vm, line)
}

// ListEntry is a backup a listing found.
type ListEntry struct {
	// Name is the location to restore it from (a path in the VM, or an
	// s3:// URL), sanitised.
	Name string
	Size int64
	Time time.Time
	// Head is the start of the backup, at most ListHeadSize bytes:
	// untrusted, for the archive package to parse.
	Head []byte
}

// List asks vm for the backups in the directory or under the s3:// prefix
// location.
func List(ctx context.Context, t Transport, vm, location string) ([]ListEntry, error) {
	conn, err := call(ctx, t, vm, ServiceList, location, "calling")
	if err != nil {
		return nil, err
	}
	entries, perr := readList(bufio.NewReaderSize(conn, replyLimit))
	if perr != nil {
		conn.Abort()
	}
	if err := conn.Wait(); err != nil {
		return nil, serviceFailed("listing backups in", vm, err)
	}
	if perr != nil {
		return nil, fmt.Errorf("listing backups in VM %s: %w", vm, perr)
	}
	return entries, nil
}

func readList(r *bufio.Reader) ([]ListEntry, error) {
	var entries []ListEntry
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, errors.New("the listing ended early")
		}
		s := strings.TrimSuffix(string(line), "\n")
		if s == "end" {
			return entries, nil
		}
		f := strings.SplitN(s, " ", 5)
		if len(f) != 5 || f[0] != "entry" || len(entries) >= maxListEntries {
			return nil, fmt.Errorf("unexpected line %q", sanitize(s))
		}
		size, err1 := strconv.ParseInt(f[1], 10, 64)
		unix, err2 := strconv.ParseInt(f[2], 10, 64)
		n, err3 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || err3 != nil || n < 0 || n > ListHeadSize {
			return nil, fmt.Errorf("unexpected line %q", sanitize(s))
		}
		e := ListEntry{Name: sanitize(f[4]), Size: size, Time: time.Unix(unix, 0), Head: make([]byte, n)}
		if _, err := io.ReadFull(r, e.Head); err != nil {
			return nil, errors.New("the listing ended early")
		}
		entries = append(entries, e)
	}
}

// call starts service in vm and sends it the location line; a failure is
// worded as "<doing> <vm>".
func call(ctx context.Context, t Transport, vm, service, location, doing string) (Conn, error) {
	loc, err := cleanLocation(location)
	if err != nil {
		return nil, err
	}
	conn, err := t.Open(ctx, vm, service)
	if err != nil {
		return nil, err
	}
	_, err = io.WriteString(conn, loc+"\n")
	if err == nil {
		err = conn.CloseWrite()
	}
	if err != nil {
		if werr := conn.Wait(); werr != nil {
			err = werr
		}
		// It ended before reading its location; why is in its outcome.
		return nil, serviceFailed(doing, vm, err)
	}
	return conn, nil
}

// IsObjectStorage reports whether a location is an s3:// URL, which the
// VM-side services serve from object storage.
func IsObjectStorage(location string) bool { return objstore.IsURL(location) }
