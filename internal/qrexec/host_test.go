package qrexec_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/qrexec"
)

// The services against a real PedOS host: its VMs' filesystems are
// $PEDOS_ROOT/vm-fs/NAME, and only running VMs answer.
func TestWithPedOSHost(t *testing.T) {
	root := t.TempDir()
	h, err := host.Demo(root, host.InitOptions{User: "alice", Home: filepath.Join(t.TempDir(), "alice")})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.FS("work")
	if err != nil {
		t.Fatal(err)
	}
	if fs != filepath.Join(root, "vm-fs", "work") {
		t.Fatalf("work's filesystem is %s", fs)
	}
	if err := os.MkdirAll(filepath.Join(fs, "home", "user", "backups"), 0o755); err != nil {
		t.Fatal(err)
	}
	local := qrexec.NewLocal(h)
	ctx := context.Background()

	if _, err := qrexec.OpenBackupSink(ctx, local, "work", "/home/user/backups"); !errors.Is(err, qrexec.ErrNotRunning) {
		t.Fatalf("halted VM: %v", err)
	}
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	sink, err := qrexec.OpenBackupSink(ctx, local, "work", "/home/user/backups")
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("backup bytes "), 100000)
	if _, err := sink.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	name := sink.Name()
	if !strings.HasPrefix(name, "/home/user/backups/qubes-backup-") {
		t.Fatalf("backup named %q", name)
	}
	got, err := os.ReadFile(filepath.Join(fs, name))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("stored backup: %v, equal %v", err, bytes.Equal(got, payload))
	}

	src, err := qrexec.OpenRestoreSource(ctx, local, "work", name)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(src)
	if err != nil || !bytes.Equal(back, payload) {
		t.Fatalf("restore source: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown("work"); err != nil {
		t.Fatal(err)
	}
	if _, err := qrexec.OpenRestoreSource(ctx, local, "work", name); !errors.Is(err, qrexec.ErrNotRunning) {
		t.Fatalf("after shutdown: %v", err)
	}
}
