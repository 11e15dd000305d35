package gui

import (
	"os"
	"testing"

	"pedos.dev/backup/internal/qrexec"
)

// TestMain lets the local qrexec transport re-execute the test binary as
// the VM side of a backup to a VM, as pedos-manager's main does.
func TestMain(m *testing.M) {
	qrexec.MaybeServe()
	os.Exit(m.Run())
}
