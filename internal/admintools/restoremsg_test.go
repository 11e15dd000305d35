package admintools_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/admintools"
	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/scryptenc"
)

// A backup whose qubes.xml lists no VM with data is "nothing to restore"
// for that reason, not because "every VM ... is left out".
func TestRestoreBackupWithoutVMs(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	w, err := archive.NewWriter(&out, archive.WriterOptions{Passphrase: []byte("pass phrase"), Compression: "gzip",
		Params: scryptenc.Params{LogN: 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddBytes(archive.QubesXMLName, []byte("<qubes><domains/></qubes>")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	backup, pass := filepath.Join(dir, "empty.bin"), filepath.Join(dir, "pass")
	os.WriteFile(backup, out.Bytes(), 0o600)
	os.WriteFile(pass, []byte("pass phrase\n"), 0o600)
	var stdout, stderr bytes.Buffer
	code := admintools.QvmBackupRestore([]string{"--verify-only", "-q", "-p", pass, backup}, strings.NewReader(""), &stdout, &stderr)
	want := "qvm-backup-restore: error: nothing to restore: the backup's qubes.xml lists no VM whose data the backup holds\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("status %d, stderr %q; want 1, %q", code, stderr.String(), want)
	}
}
