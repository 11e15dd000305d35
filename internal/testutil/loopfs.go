package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MountLoopFS makes a small filesystem of type fstype (btrfs or xfs) in a
// sparse file, mounts it with the mount options opts (may be empty) on a
// loop device, and unmounts it when the test ends. It returns the mount
// point. Mounting needs root: under CI (which runs as root) a failure
// fails the test; elsewhere it skips with the reason.
func MountLoopFS(t testing.TB, fstype, opts string) string {
	t.Helper()
	mkfs := RequireTool(t, "mkfs."+fstype)
	base := t.TempDir()
	img, dir := filepath.Join(base, fstype+".img"), filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// 512 MiB: the smallest size every mkfs.xfs accepts is 300 MB.
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 512<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mkfs, err, out)
	}
	args := []string{"-o", "loop", img, dir}
	if opts != "" {
		args = []string{"-o", "loop," + opts, img, dir}
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot mount a %s loop device under CI (it runs as root): %v %s", fstype, err, out)
		}
		t.Skipf("cannot mount a %s loop device (needs root): %v %s", fstype, err, out)
	}
	t.Cleanup(func() {
		// A just-closed file can keep the mount busy for a moment.
		var out []byte
		var err error
		for range 50 {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("umount %s: %v %s", dir, err, out)
	})
	return dir
}
