package admintools

import (
	"strings"
	"testing"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/restore"
)

// Every resolution the restore engine offers has the option that sets it.
func TestRestoreResolutionFlags(t *testing.T) {
	for r := restore.SkipConflicting; r <= restore.RestoreDom0DefaultDispVM; r++ {
		if f := resolutionFlags[r]; !strings.HasPrefix(f, "--") {
			t.Errorf("%v: no option (%q)", r, f)
		}
	}
	p := restore.Problem{Resolve: []restore.Resolution{restore.SkipConflicting, restore.ExcludeVM}}
	if h := restoreHint(p); h != "to go on, use --skip-conflicting or --exclude" {
		t.Errorf("hint %q", h)
	}
}

// qvm-backup spells the engine's advice with its options and tools.
func TestBackupHints(t *testing.T) {
	for _, c := range []struct {
		p    backup.Problem
		want string
	}{
		{backup.Problem{Code: backup.UnreadableSource, Subject: "dom0"}, "leave the dom0 home out with -x dom0"},
		{backup.Problem{Code: backup.UnreadableSource, Subject: "work"}, "leave it out with -x work"},
		{backup.Problem{Code: backup.DestVMNotRunning, Subject: "work"}, "start it first: qvm-start work"},
		{backup.Problem{Code: backup.NotEnoughMemory}, "raise the budget with --max-memory or PEDOS_MAX_MEMORY, or lower the scrypt cost"},
		{backup.Problem{Code: backup.BadPassphrase, Hint: "choose another passphrase"}, "choose another passphrase"},
	} {
		if got := backupHint(c.p); got != c.want {
			t.Errorf("%s: hint %q, want %q", c.p.Code, got, c.want)
		}
	}
}
