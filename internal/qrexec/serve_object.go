package qrexec

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"pedos.dev/backup/internal/objstore"
)

// The object storage case of the services: the location is an s3:// URL
// and the VM's own S3 configuration (objstore.Open) says where and as whom.
// dom0 sends no endpoint and no credentials, and gets none back.

// openObjectStore parses an s3:// location and connects to the endpoint
// the VM's configuration names.
func openObjectStore(loc string) (objstore.Location, *objstore.Store, error) {
	l, err := objstore.ParseURL(loc)
	if err != nil {
		return l, nil, err
	}
	store, err := objstore.Open()
	return l, store, err
}

// backupToObject streams the backup into a new object under the prefix
// loc names. The object appears only once the stream ended with its end
// marker; anything else aborts the multipart upload.
func backupToObject(h *handler, loc string, in *frames) int {
	l, store, err := openObjectStore(loc)
	if err != nil {
		return h.fail(err)
	}
	ctx := context.Background()
	u, err := store.Create(ctx, l, "qubes-backup-"+time.Now().Format("2006-01-02T150405"))
	if err != nil {
		return h.fail(err)
	}
	h.setUndo(func() {
		if err := u.Abort(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
		}
	})
	name := objstore.Location{Bucket: u.Bucket, Key: u.Key}.String()
	if err := reply("ready %s", name); err != nil {
		return h.fail(err)
	}
	if err := copyFrames(u, in); err != nil {
		if errors.Is(err, errTruncated) {
			h.abort(err.Error())
		}
		return h.fail(err)
	}
	if err := h.commit(u.Commit); err != nil {
		return h.fail(err)
	}
	if err := reply("saved %s", name); err != nil {
		return h.fail(err)
	}
	return 0
}

// restoreFromObject streams the object loc names to stdout, resuming
// after dropped connections (objstore.Reader).
func restoreFromObject(h *handler, loc string) int {
	l, store, err := openObjectStore(loc)
	if err != nil {
		return h.fail(err)
	}
	r, err := store.NewReader(context.Background(), l)
	if err != nil {
		return h.fail(err)
	}
	defer r.Close()
	if _, err := io.Copy(os.Stdout, r); err != nil {
		return h.fail(err)
	}
	return 0
}

// checkObject is the plan-time check of an s3:// destination: the
// configuration is usable, the endpoint answers, accepts the credentials
// and has the bucket.
func checkObject(loc string) (kind, msg string) {
	l, err := objstore.ParseURL(loc)
	if err == nil && !l.IsPrefix() {
		err = &objstore.Error{Kind: objstore.BadLocation, Msg: loc + " must end with / : each backup goes to a new object under that prefix"}
	}
	if err != nil {
		return objstore.BadLocation.String(), err.Error()
	}
	store, err := objstore.Open()
	if err != nil {
		return objstore.NotConfigured.String(), err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.Check(ctx, l.Bucket); err != nil {
		return objstore.KindOf(err).String(), err.Error()
	}
	return "", ""
}
