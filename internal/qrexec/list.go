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
	var entries []ListEntry
	err := listing(ctx, t, vm, ServiceList, location, "calling", "listing backups in", func(r *bufio.Reader) (err error) {
		entries, err = readList(r)
		return err
	})
	return entries, err
}

func readList(r *bufio.Reader) ([]ListEntry, error) {
	var entries []ListEntry
	err := readLines(r, func(line string) error {
		f := strings.SplitN(line, " ", 5)
		if len(f) != 5 || f[0] != "entry" || len(entries) >= maxListEntries {
			return fmt.Errorf("unexpected line %q", sanitize(line))
		}
		size, err1 := strconv.ParseInt(f[1], 10, 64)
		unix, err2 := strconv.ParseInt(f[2], 10, 64)
		n, err3 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || err3 != nil || n < 0 || n > ListHeadSize {
			return fmt.Errorf("unexpected line %q", sanitize(line))
		}
		e := ListEntry{Name: sanitize(f[4]), Size: size, Time: time.Unix(unix, 0), Head: make([]byte, n)}
		if _, err := io.ReadFull(r, e.Head); err != nil {
			return errEarlyEnd
		}
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

var errEarlyEnd = errors.New("the listing ended early")

// listing calls a service whose reply parse reads, and waits for the
// service's outcome. doing words a failure to start it ("calling VM x"),
// what the call in other errors ("listing backups in VM x").
func listing(ctx context.Context, t Transport, vm, service, location, doing, what string, parse func(r *bufio.Reader) error) error {
	conn, err := call(ctx, t, vm, service, location, doing)
	if err != nil {
		return err
	}
	perr := parse(bufio.NewReaderSize(conn, replyLimit))
	if perr != nil {
		conn.Abort()
	}
	if err := conn.Wait(); err != nil {
		return serviceFailed(what, vm, err)
	}
	if perr != nil {
		return fmt.Errorf("%s VM %s: %w", what, vm, perr)
	}
	return nil
}

// readLines hands each line of r (without its newline) to line, up to
// "end"; a reply that stops before "end" is an error.
func readLines(r *bufio.Reader, line func(string) error) error {
	for {
		b, err := r.ReadSlice('\n')
		if err != nil {
			return errEarlyEnd
		}
		s := strings.TrimSuffix(string(b), "\n")
		if s == "end" {
			return nil
		}
		if err := line(s); err != nil {
			return err
		}
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
