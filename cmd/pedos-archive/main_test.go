package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The developer tool end to end, as the demo and bench scripts use it:
// create, verify, extract, and a wrong passphrase failing with exit code 1
// and no partial output.
func TestCreateVerifyExtract(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pedos-archive")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	img := filepath.Join(dir, "disk.img")
	if out, err := run("", "sample", "-o", img, "--size", "16M", "--data", "2M"); err != nil {
		t.Fatalf("sample: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "home")
	os.MkdirAll(filepath.Join(home, "docs"), 0o755)
	os.WriteFile(filepath.Join(home, "docs", "a b.txt"), []byte("note\n"), 0o644)
	os.Symlink("docs/a b.txt", filepath.Join(home, "link"))

	backup := filepath.Join(dir, "backup")
	if out, err := run("secret words\n", "create", "-o", backup, "-p", "-", "--scrypt-logn", "10",
		"vm1/private.img="+img, "dom0-home/user="+home); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	out, err := run("secret words\n", "verify", "-i", backup, "-p", "-")
	if err != nil || out != "vm1/private.img\ndom0-home/user\n" {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	restored := filepath.Join(dir, "out")
	os.Mkdir(restored, 0o755)
	if out, err := run("secret words\n", "extract", "-i", backup, "-p", "-", "-C", restored); err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	want, _ := os.ReadFile(img)
	got, _ := os.ReadFile(filepath.Join(restored, "vm1", "private.img"))
	if !bytes.Equal(got, want) {
		t.Fatal("extracted image differs")
	}
	if target, err := os.Readlink(filepath.Join(restored, "dom0-home", "user", "link")); err != nil || target != "docs/a b.txt" {
		t.Fatalf("symlink: %q %v", target, err)
	}

	out, err = run("wrong words\n", "verify", "-i", backup, "-p", "-")
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v\n%s", err, out)
	}
	// A failed create leaves no file behind.
	failed := filepath.Join(dir, "failed")
	if _, err := run("secret words\n", "create", "-o", failed, "-p", "-", "--scrypt-logn", "10", "vm1/x.img="+filepath.Join(dir, "missing")); err == nil {
		t.Fatal("create with a missing source succeeded")
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*failed*")); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".pedos-archive-*")); len(entries) != 0 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

// A passphrase file without a line end (/dev/zero is endless) is refused
// after 64 KiB instead of read until memory runs out.
func TestReadPassphraseBounded(t *testing.T) {
	if _, err := readPassphrase("/dev/zero"); err == nil || err.Error() != "passphrase file /dev/zero: no line end in its first 64 KiB" {
		t.Fatalf("/dev/zero: %v", err)
	}
}
