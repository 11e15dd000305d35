// Package testutil holds helpers shared by the project's tests.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of an external program a test depends on.
// When the program is missing the test fails under CI (CI is set), because a
// skipped interop test proves nothing there; on a developer machine it skips
// with a message naming the missing tool.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("required tool %q is not installed (scripts/test.sh installs it)", name)
	}
	t.Skipf("required tool %q is not installed; run scripts/test.sh to install it", name)
	return ""
}
