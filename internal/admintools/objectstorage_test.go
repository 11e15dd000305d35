package admintools_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"pedos.dev/backup/internal/admintools"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// tool runs an admin tool in-process and returns its exit status and
// output.
func tool(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := admintools.Tools[name](args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func mustTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s %s: %s", name, args[len(args)-1], time.Since(start).Round(time.Millisecond)) }()
	code, out, errOut := tool(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %q: exit %d\n%s%s", name, args, code, out, errOut)
	}
	return out + errOut
}

// Backup of a demo host to a bucket through a VM, listing, verify-only,
// and restore onto another host, byte for byte; a wrong secret, a
// missing bucket and an untrusted TLS certificate stop the backup in its
// plan; with the certificate's authority, a backup over TLS verifies.
func TestObjectStorageRoundTrip(t *testing.T) {
	sw, dir, a, b, pass := objectStorageHosts(t)

	out := mustTool(t, "qvm-backup", "--root", a, "-y", "--scrypt-logn", "10", "-p", pass, "--progress", "none",
		"-d", "work", "s3://backups/laptop/", "personal", "vault", "dom0")
	name := regexp.MustCompile(`s3://backups/laptop/qubes-backup-[0-9T-]+`).FindString(out)
	if name == "" {
		t.Fatalf("no object named in:\n%s", out)
	}
	// A second one, never over the first.
	out = mustTool(t, "qvm-backup", "--root", a, "-y", "--progress", "none", "--scrypt-logn", "10", "-p", pass, "--no-compress", "-d", "work", "s3://backups/laptop/", "personal")
	name2 := regexp.MustCompile(`s3://backups/laptop/qubes-backup-[0-9T-]+`).FindString(out)
	if name2 == "" || name2 == name {
		t.Fatalf("second backup %q, first %q", name2, name)
	}

	list := mustTool(t, "qvm-backup-restore", "--root", b, "-d", "work", "--list", "s3://backups/laptop/")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "BACKUP") || !regexp.MustCompile(` 4 +yes +full$`).MatchString(lines[1]) {
		t.Fatalf("listing:\n%s", list)
	}
	if !strings.Contains(list, name) || !strings.Contains(list, name2) {
		t.Fatalf("listing lacks a backup:\n%s", list)
	}

	mustTool(t, "qvm-backup-restore", "--root", b, "-y", "-q", "-p", pass, "-d", "work", "--verify-only", name)
	mustTool(t, "qvm-backup-restore", "--root", b, "-y", "-q", "-p", pass, "-d", "work", "--rename-conflicting", "--progress", "none", name)
	for _, img := range []string{"personal/private.img", "vault/private.img", "vault/root.img"} {
		vm, file, _ := strings.Cut(img, "/")
		sameSparse(t, filepath.Join(a, "appvms", vm, file), filepath.Join(b, "appvms", vm+"-1", file))
	}
	homes, _ := filepath.Glob(filepath.Join(dir, "alice-b", "home-restore-*"))
	if len(homes) != 1 {
		t.Fatalf("restored homes: %v", homes)
	}
	sameTree(t, filepath.Join(a, "home", "alice"), homes[0])

	// The emergency procedure on the object as any S3 client downloads it.
	testutil.RequireTool(t, "scrypt")
	bash := testutil.RequireTool(t, "bash")
	key := strings.TrimPrefix(name, "s3://backups/")
	file := filepath.Join(dir, "downloaded")
	if err := sw.Client.FGetObject(context.Background(), "backups", key, file, minio.GetObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	recovered := filepath.Join(dir, "recovered")
	if out, err := exec.Command(bash, filepath.Join("..", "..", "scripts", "emergency-restore.sh"), file, pass, recovered).CombinedOutput(); err != nil {
		t.Fatalf("emergency restore: %v\n%s", err, out)
	}
	sameTree(t, filepath.Join(a, "home", "alice"), filepath.Join(recovered, "dom0-home", "alice"))

	// The plan's problems, before any data is read.
	code, _, errOut := tool(t, "qvm-backup", "--root", a, "-y", "--scrypt-logn", "10", "-p", pass, "-d", "work", "s3://missing/laptop/", "personal")
	if code != 1 || !strings.Contains(errOut, "bucket missing does not exist") {
		t.Fatalf("missing bucket: exit %d\n%s", code, errOut)
	}
	sw.WriteAWSFiles(filepath.Join(a, "vm-fs", "work", "home", "user"), "wrong-secret")
	code, _, errOut = tool(t, "qvm-backup", "--root", a, "-y", "--scrypt-logn", "10", "-p", pass, "-d", "work", "s3://backups/laptop/", "personal")
	if code != 1 || !strings.Contains(errOut, "refused the credentials") || strings.Contains(errOut, "wrong-secret") {
		t.Fatalf("wrong secret: exit %d\n%s", code, errOut)
	}

	// Over TLS to a gateway with a certificate of its own: a plan problem
	// naming the fix until the VM is given its authority, then a backup
	// that verifies.
	vmHome := filepath.Join(a, "vm-fs", "work", "home", "user")
	sw.WriteAWSFiles(vmHome, "")
	sw.UseHTTPS(vmHome, false)
	code, _, errOut = tool(t, "qvm-backup", "--root", a, "-y", "--scrypt-logn", "10", "-p", pass, "-d", "work", "s3://backups/tls/", "personal")
	if code != 1 || !strings.Contains(errOut, "does not trust") || !strings.Contains(errOut, "ca_bundle") {
		t.Fatalf("untrusted certificate: exit %d\n%s", code, errOut)
	}
	sw.UseHTTPS(vmHome, true)
	out = mustTool(t, "qvm-backup", "--root", a, "-y", "--scrypt-logn", "10", "-p", pass, "--progress", "none", "-d", "work", "s3://backups/tls/", "personal")
	name3 := regexp.MustCompile(`s3://backups/tls/qubes-backup-[0-9T-]+`).FindString(out)
	if name3 == "" {
		t.Fatalf("no object named in:\n%s", out)
	}
	mustTool(t, "qvm-backup-restore", "--root", a, "-y", "-q", "-p", pass, "-d", "work", "--verify-only", name3)
	if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
		t.Fatalf("uploads left: %v", ups)
	}
}

// A chain in a bucket: a full backup and an increment after a change,
// listed with their kinds; the increment verified and restored onto
// another host with its chain, found under the same prefix, byte for
// byte.
func TestObjectStorageChain(t *testing.T) {
	_, _, a, b, pass := objectStorageHosts(t)
	backupArgs := []string{"--root", a, "-y", "--scrypt-logn", "10", "-p", pass, "--progress", "none", "--incremental",
		"-d", "work", "s3://backups/chain/", "personal", "vault"}
	out := mustTool(t, "qvm-backup", backupArgs...)
	if !strings.Contains(out, "Kind: full backup, starting a chain") {
		t.Fatalf("first backup:\n%s", out)
	}
	img := filepath.Join(a, "appvms", "personal", "private.img")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(randomData(200<<10), 5<<20+123)
	f.Close()
	out = mustTool(t, "qvm-backup", backupArgs...)
	name := regexp.MustCompile(`s3://backups/chain/qubes-backup-[0-9T-]+`).FindString(out)
	if name == "" || !strings.Contains(out, "It is increment 1 on ") {
		t.Fatalf("second backup:\n%s", out)
	}

	list := mustTool(t, "qvm-backup-restore", "--root", b, "-d", "work", "--list", "s3://backups/chain/")
	if !regexp.MustCompile(`(?m) full$`).MatchString(list) || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+` .* increment 1$`).MatchString(list) {
		t.Fatalf("listing:\n%s", list)
	}
	mustTool(t, "qvm-backup-restore", "--root", b, "-q", "-p", pass, "-d", "work", "--verify-only", name)
	mustTool(t, "qvm-backup-restore", "--root", b, "-y", "-q", "-p", pass, "-d", "work", "--rename-conflicting", "--progress", "none", name)
	sameSparse(t, img, filepath.Join(b, "appvms", "personal-1", "private.img"))
	sameSparse(t, filepath.Join(a, "appvms", "vault", "root.img"), filepath.Join(b, "appvms", "vault-1", "root.img"))
}

// objectStorageHosts starts a server with a bucket "backups" and makes two
// demo hosts a and b (user alice; b's home in dir/alice-b) whose running
// VM work is set up for it, and a passphrase file.
func objectStorageHosts(t *testing.T) (sw *testutil.Seaweed, dir, a, b, pass string) {
	t.Helper()
	sw = testutil.StartSeaweed(t)
	sw.MakeBucket("backups")
	dir = t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	pass = filepath.Join(dir, "pass.txt")
	if err := os.WriteFile(pass, []byte("object storage passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustTool(t, "pedos-host", "--root", a, "demo", "--user", "alice")
	mustTool(t, "pedos-host", "--root", b, "demo", "--user", "alice", "--home", filepath.Join(dir, "alice-b"))
	for _, root := range []string{a, b} {
		mustTool(t, "qvm-start", "--root", root, "work")
		sw.WriteAWSFiles(filepath.Join(root, "vm-fs", "work", "home", "user"), "")
	}
	return sw, dir, a, b, pass
}

// sameSparse checks that two volume images hold the same bytes, reading
// only where either holds data (elsewhere both read as zeros), and that
// the restored one is no less sparse than the original.
func sameSparse(t *testing.T, orig, restored string) {
	t.Helper()
	var files [2]*os.File
	var sizes, data [2]int64
	var regions [2][]sparsetar.Region
	for i, p := range []string{orig, restored} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		files[i], sizes[i] = f, fi.Size()
		if regions[i], err = sparsetar.DataRegions(f, fi.Size()); err != nil {
			t.Fatal(err)
		}
		for _, r := range regions[i] {
			data[i] += r.Length
		}
	}
	if sizes[0] != sizes[1] {
		t.Fatalf("%s is %d bytes, the original %d", restored, sizes[1], sizes[0])
	}
	if data[1] > data[0]+1<<20 {
		t.Fatalf("%s holds %d bytes of data, the original %d", restored, data[1], data[0])
	}
	x, y := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, rs := range regions {
		for _, r := range rs {
			for off := r.Offset; off < r.Offset+r.Length; {
				n := int(min(int64(len(x)), r.Offset+r.Length-off))
				if _, err := files[0].ReadAt(x[:n], off); err != nil {
					t.Fatal(err)
				}
				if _, err := files[1].ReadAt(y[:n], off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(x[:n], y[:n]) {
					t.Fatalf("%s differs from %s at bytes %d-%d", restored, orig, off, off+int64(n))
				}
				off += int64(n)
			}
		}
	}
}

// sameTree checks that two directory trees hold the same files.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: restored copy differs (%v)", rel, err)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walking %s: %v, %d files", a, err, n)
	}
}

// toolEnv makes this test binary run the tool it names (TestMain).
const toolEnv = "PEDOS_TEST_TOOL"

// toolProcess is tool name with args as a process of its own.
func toolProcess(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), toolEnv+"="+name)
	return cmd
}

// Faults, seen from the command line, against a real server: two hosts
// backing up into one prefix at once, each in its own process, get two
// backups; the server killed mid-upload fails the backup (exit 1) and
// leaves no object and, once the server is back, no upload; the server
// killed mid-restore, staying away, fails the restore (exit 1) and leaves
// the host as it was.
func TestObjectStorageFaults(t *testing.T) {
	sw, dir, a, b, pass := objectStorageHosts(t)
	// A VM with 256 MiB of incompressible data: its upload takes a while,
	// and its restore writes the first of its three chunks while the
	// others are still to come.
	img := filepath.Join(dir, "big.img")
	if err := os.WriteFile(img, randomData(256<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	mustTool(t, "qvm-create", "--root", a, "--class", "AppVM", "-t", "debian-12", "-l", "red", "big")
	mustTool(t, "qvm-volume", "--root", a, "import", "big:private", img)
	backupArgs := func(root, prefix string, vms ...string) []string {
		return append([]string{"--root", root, "-y", "--scrypt-logn", "10", "-p", pass, "--progress", "none", "-d", "work", prefix}, vms...)
	}

	t.Run("TwoHostsAtOnce", func(t *testing.T) {
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for _, root := range []string{a, b} {
			cmd := toolProcess(t, "qvm-backup", backupArgs(root, "s3://backups/shared/", "personal")...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmds, outs = append(cmds, cmd), append(outs, &out)
		}
		for _, cmd := range cmds {
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("host %d: %v\n%s", i, err, outs[i])
			}
		}
		keys := sw.Objects("backups", "shared/")
		if len(keys) != 2 {
			t.Fatalf("two backups at once made %q", keys)
		}
		for _, k := range keys {
			mustTool(t, "qvm-backup-restore", "--root", b, "-q", "-p", pass, "-d", "work", "--verify-only", "s3://backups/"+k)
		}
	})

	t.Run("ServerKilledMidUpload", func(t *testing.T) {
		type result struct {
			code   int
			stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, _, errOut := tool(t, "qvm-backup", backupArgs(a, "s3://backups/killed/", "big")...)
			done <- result{code, errOut}
		}()
		for len(sw.MultipartUploads("backups")) == 0 {
			select {
			case r := <-done:
				t.Fatalf("the backup ended (exit %d) before its upload was seen:\n%s", r.code, r.stderr)
			case <-time.After(20 * time.Millisecond):
			}
		}
		sw.Kill()
		// Back while the failed upload is being aborted.
		sw.Start()
		r := <-done
		if r.code != 1 || !strings.Contains(r.stderr, "backup") {
			t.Fatalf("backup with the server killed: exit %d\n%s", r.code, r.stderr)
		}
		t.Logf("the backup failed as it should:\n%s", r.stderr)
		if keys := sw.Objects("backups", "killed/"); len(keys) != 0 {
			t.Fatalf("objects after a failed upload: %q", keys)
		}
		if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
			t.Fatalf("uploads left: %v", ups)
		}
	})

	t.Run("ServerKilledMidRestore", func(t *testing.T) {
		out := mustTool(t, "qvm-backup", backupArgs(a, "s3://backups/restore/", "big")...)
		name := regexp.MustCompile(`s3://backups/restore/qubes-backup-[0-9T-]+`).FindString(out)
		if name == "" {
			t.Fatalf("no object named in:\n%s", out)
		}
		// The VM gives up after two failed requests in a row.
		cfg := filepath.Join(b, "vm-fs", "work", "home", "user", ".aws", "config")
		f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("max_attempts = 2\n")
		f.Close()
		before := hostState(t, b)
		type result struct {
			code   int
			stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, _, errOut := tool(t, "qvm-backup-restore", "--root", b, "-y", "-q", "-p", pass, "-d", "work", "--progress", "none", name)
			done <- result{code, errOut}
		}()
		for {
			if staged, _ := filepath.Glob(filepath.Join(b, "appvms", ".restoring-*", "*")); len(staged) > 0 {
				break
			}
			select {
			case r := <-done:
				t.Fatalf("the restore ended (exit %d) before it wrote:\n%s", r.code, r.stderr)
			case <-time.After(10 * time.Millisecond):
			}
		}
		sw.Kill()
		defer sw.Start()
		r := <-done
		if r.code != 1 || !strings.Contains(r.stderr, "max_attempts") {
			t.Fatalf("restore with the server gone: exit %d\n%s", r.code, r.stderr)
		}
		t.Logf("the restore failed as it should:\n%s", r.stderr)
		if after := hostState(t, b); after != before {
			t.Fatalf("the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// hostState is what a failed restore must leave as it was: the VM list
// and every file under the host's root (names and sizes).
func hostState(t *testing.T, root string) string {
	t.Helper()
	var s strings.Builder
	s.WriteString(mustTool(t, "qvm-ls", "--root", root, "--raw-list"))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(rel, "vm-fs") {
			return nil // the VMs' own files (the source VM's ~/.aws)
		}
		if d.Type().IsRegular() {
			fi, _ := d.Info()
			fmt.Fprintf(&s, "%s %d\n", rel, fi.Size())
		} else {
			fmt.Fprintf(&s, "%s/\n", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s.String()
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}
