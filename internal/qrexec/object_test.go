package qrexec_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/qrexec"
	"pedos.dev/backup/internal/testutil"
)

// The services with s3:// locations, against a real SeaweedFS. The VM's
// S3 configuration is its own ~/.aws files; nothing comes from dom0.
func TestObjectStorage(t *testing.T) {
	sw := testutil.StartSeaweed(t)
	sw.MakeBucket("backups")
	tr, fsdir := newHost(t)
	home := filepath.Join(fsdir, "home", "user")
	sw.WriteAWSFiles(home, "")
	ctx := context.Background()
	data := randomBytes(20<<20+3, 7)

	if err := qrexec.CheckDestination(ctx, tr, "work", "s3://backups/laptop/"); err != nil {
		t.Fatalf("check: %v", err)
	}
	name, err := backup(t, tr, "s3://backups/laptop/", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "s3://backups/laptop/qubes-backup-") {
		t.Fatalf("backup named %q", name)
	}
	src, err := qrexec.OpenRestoreSource(ctx, tr, "work", name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(src)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore: %v, equal %v", err, bytes.Equal(got, data))
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	// The server restarts mid-restore: the VM side resumes where it was.
	src, err = qrexec.OpenRestoreSource(ctx, tr, "work", name)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(src, first); err != nil {
		t.Fatal(err)
	}
	sw.Kill()
	restarted := make(chan struct{})
	go func() { sw.Start(); close(restarted) }()
	rest, err := io.ReadAll(src)
	<-restarted
	if err != nil || !bytes.Equal(append(first, rest...), data) {
		t.Fatalf("restore across a restart: %v", err)
	}
	src.Close()

	entries, err := qrexec.List(ctx, tr, "work", "s3://backups/laptop/")
	if err != nil || len(entries) != 1 {
		t.Fatalf("list: %v, %v", entries, err)
	}
	if e := entries[0]; e.Name != name || e.Size != int64(len(data)) || !bytes.Equal(e.Head, data[:qrexec.ListHeadSize]) {
		t.Fatalf("entry %s %d", e.Name, e.Size)
	}

	// dom0 aborts mid-stream: no object, no upload left.
	sink, err := qrexec.OpenBackupSink(ctx, tr, "work", "s3://backups/aborted/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatal(err)
	}
	sink.Abort(errors.New("test"))
	if entries, err := qrexec.List(ctx, tr, "work", "s3://backups/aborted/"); err != nil || len(entries) != 0 {
		t.Fatalf("after abort: %v, %v", entries, err)
	}
	if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
		t.Fatalf("uploads left: %v", ups)
	}

	// Problems, each named for the plan.
	for loc, kind := range map[string]string{
		"s3://missing/laptop/": "no-bucket",
		"s3://backups/laptop":  "bad-location",
	} {
		var cp *qrexec.CheckProblem
		if err := qrexec.CheckDestination(ctx, tr, "work", loc); !errors.As(err, &cp) || cp.Kind != kind {
			t.Errorf("check %s: %v", loc, err)
		}
	}
	if _, err := qrexec.OpenRestoreSource(ctx, tr, "work", "s3://backups/laptop/none"); err == nil {
		// The failure shows when reading.
	}
	sw.WriteAWSFiles(home, "wrong-secret")
	var cp *qrexec.CheckProblem
	if err := qrexec.CheckDestination(ctx, tr, "work", "s3://backups/laptop/"); !errors.As(err, &cp) || cp.Kind != "refused" {
		t.Errorf("wrong secret: %v", err)
	} else if strings.Contains(cp.Message, "wrong-secret") {
		t.Errorf("the secret shows: %s", cp.Message)
	}
	if _, err := backup(t, tr, "s3://backups/laptop/", data[:100]); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("backup with a wrong secret: %v", err)
	}
}

// A directory in the VM lists the same way.
func TestListDirectory(t *testing.T) {
	tr, _ := newHost(t)
	data := randomBytes(100<<10, 3)
	name, err := backup(t, tr, "/home/user/backups", data)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := qrexec.List(context.Background(), tr, "work", "/home/user/backups")
	if err != nil || len(entries) != 1 || entries[0].Name != name || !bytes.Equal(entries[0].Head, data[:qrexec.ListHeadSize]) {
		t.Fatalf("list: %v, %v", entries, err)
	}
}
