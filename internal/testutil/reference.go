package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// ReferenceBackup builds a format 4 archive the way the reference writer
// does, with standard tools only (reference-backup.sh: tar --sparse,
// FILTER, split, scrypt enc per piece, tar --posix per member), from src:
// qubes.xml, a directory per VM named by its backup-path (vm1/ ...) and
// optionally home/<user>/. filter is gzip, bzip2, xz or none; split is the
// piece size.
func ReferenceBackup(t testing.TB, src string, pass []byte, id, filter string, split int) []byte {
	t.Helper()
	return ReferenceBackupWithout(t, src, pass, id, filter, split)
}

// ReferenceBackupWithout is ReferenceBackup with the named members (such
// as "vm1/private.img.002.enc") left out, as if lost.
func ReferenceBackupWithout(t testing.TB, src string, pass []byte, id, filter string, split int, omit ...string) []byte {
	t.Helper()
	for _, tool := range []string{"bash", "tar", "scrypt", "split", filter} {
		if tool != "none" {
			RequireTool(t, tool)
		}
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "reference-backup.sh")
	out := filepath.Join(t.TempDir(), "backup")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "SRC="+src, "OUT="+out, "PASS="+string(pass),
		"ID="+id, "SPLIT="+strconv.Itoa(split), "FILTER="+filter, "OMIT="+strings.Join(omit, " "))
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference-backup.sh: %v\n%s", err, res)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
