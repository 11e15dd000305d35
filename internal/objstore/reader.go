package objstore

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"
)

// Resumption policy of a Reader: after a failed request it tries again
// from where it stopped, waiting retryFirst, then twice as long each time
// up to retryMax, and gives up once retryWindow has passed without a byte
// (or after the Store's maxAttempts requests in a row, when set).
var (
	retryFirst  = 500 * time.Millisecond
	retryMax    = 5 * time.Second
	retryWindow = 90 * time.Second
)

// Reader streams one object with ranged GETs. A dropped connection or a
// server restart costs nothing but time: it resumes at the offset reached,
// only from the same version of the object (If-Match on its ETag).
type Reader struct {
	s           *Store
	Bucket, Key string
	Size        int64
	etag        string
	ctx         context.Context
	off         int64
	body        io.ReadCloser
	failedSince time.Time // zero while reading goes well
	failures    int       // requests failed in a row
	delay       time.Duration
}

// NewReader opens the object loc names (its size and version are fixed
// now). ctx covers every read.
func (s *Store) NewReader(ctx context.Context, loc Location) (*Reader, error) {
	if loc.IsPrefix() {
		return nil, &Error{BadLocation, fmt.Sprintf("%s names a prefix, not a backup", loc)}
	}
	info, err := s.core.StatObject(ctx, loc.Bucket, loc.Key, minio.StatObjectOptions{})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NotFound" || code == "NoSuchKey" {
			return nil, &Error{NoSuchKey, fmt.Sprintf("%s does not exist", loc)}
		}
		return nil, s.classify(err, loc.Bucket, loc.Key)
	}
	return &Reader{s: s, Bucket: loc.Bucket, Key: loc.Key, Size: info.Size, etag: info.ETag, ctx: ctx}, nil
}

func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.off >= r.Size {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.request(); err != nil {
				if err := r.retry(err); err != nil {
					return 0, err
				}
				continue
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failedSince = time.Time{}
			r.failures = 0
			r.delay = 0
		}
		if err == io.EOF && r.off < r.Size {
			err = io.ErrUnexpectedEOF // the connection dropped
		}
		if err != nil && err != io.EOF {
			r.body.Close()
			r.body = nil
			if n > 0 {
				return n, nil // the next Read resumes
			}
			if err := r.retry(err); err != nil {
				return 0, err
			}
			continue
		}
		if n > 0 || err == io.EOF {
			return n, nil
		}
	}
}

// request starts a GET of the rest of the object.
func (r *Reader) request() error {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(r.off, r.Size-1); err != nil {
		return err
	}
	opts.SetMatchETag(r.etag)
	body, _, _, err := r.s.core.GetObject(r.ctx, r.Bucket, r.Key, opts)
	if err != nil {
		return err
	}
	r.body = body
	return nil
}

// retry waits before the next attempt after err, or returns the error that
// ends the stream: a cancel, a changed or removed object, or a server that
// stayed away for retryWindow.
func (r *Reader) retry(err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	switch minio.ToErrorResponse(err).Code {
	case "PreconditionFailed", "NoSuchKey", "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("reading %s at byte %d: %w", Location{r.Bucket, r.Key}, r.off, r.s.classify(err, r.Bucket, r.Key))
	}
	now := time.Now()
	if r.failedSince.IsZero() {
		r.failedSince = now
	}
	r.failures++
	if now.Sub(r.failedSince) >= retryWindow {
		return fmt.Errorf("reading %s: gave up at byte %d of %d after %s of failures: %w",
			Location{r.Bucket, r.Key}, r.off, r.Size, retryWindow, r.s.classify(err, r.Bucket, r.Key))
	}
	if r.s.maxAttempts > 0 && r.failures >= r.s.maxAttempts {
		return fmt.Errorf("reading %s: gave up at byte %d of %d after %d failed attempts (max_attempts): %w",
			Location{r.Bucket, r.Key}, r.off, r.Size, r.failures, r.s.classify(err, r.Bucket, r.Key))
	}
	r.delay = min(max(2*r.delay, retryFirst), retryMax)
	select {
	case <-time.After(r.delay):
		return nil
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
}

// Close ends the stream.
func (r *Reader) Close() error {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	return nil
}

// Head returns up to n bytes from the start of the object at loc: enough
// for a listing to read a backup's header.
func (s *Store) Head(ctx context.Context, loc Location, n int64) ([]byte, error) {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(0, n-1); err != nil {
		return nil, err
	}
	body, _, _, err := s.core.GetObject(ctx, loc.Bucket, loc.Key, opts)
	if err != nil {
		return nil, s.classify(err, loc.Bucket, loc.Key)
	}
	defer body.Close()
	return io.ReadAll(io.LimitReader(body, n))
}

// Object is an object a listing found.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// List returns the objects directly under the prefix loc.Key whose name
// starts with namePrefix.
func (s *Store) List(ctx context.Context, loc Location, namePrefix string) ([]Object, error) {
	if !loc.IsPrefix() {
		return nil, &Error{BadLocation, fmt.Sprintf("%s must end with / to list the backups under it", loc)}
	}
	var objs []Object
	for info := range s.core.Client.ListObjects(ctx, loc.Bucket, minio.ListObjectsOptions{Prefix: loc.Key + namePrefix}) {
		if info.Err != nil {
			return nil, s.classify(info.Err, loc.Bucket, "")
		}
		objs = append(objs, Object{Key: info.Key, Size: info.Size, Modified: info.LastModified})
	}
	return objs, nil
}
