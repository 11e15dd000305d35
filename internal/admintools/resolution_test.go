package admintools

import (
	"strings"
	"testing"

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
