package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// EmergencyRestore runs scripts/emergency-restore.sh, which runs the format
// 4 procedure exactly as doc/emergency-restore.md gives it (GNU tar, scrypt,
// the decompressor), recovering backup into dir with passphrase pass. It
// returns the procedure's combined output and its error.
func EmergencyRestore(t testing.TB, backup string, pass []byte, dir string) ([]byte, error) {
	t.Helper()
	for _, tool := range []string{"bash", "tar", "scrypt", "gzip", "sed", "sort", "find", "xargs"} {
		RequireTool(t, tool)
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "scripts", "emergency-restore.sh")
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, append(pass, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return exec.Command("bash", script, backup, passFile, dir).CombinedOutput()
}
