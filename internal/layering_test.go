package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Lower packages never import higher ones (doc/reference.md, layering): data flows
// one way, and the format packages know nothing of hosts or user interfaces.
// profile sits above the backup engine (a profile is a backup job and
// converts to its options); the engines know nothing of profiles. cmdrun,
// the runner of dom0 command lines that both engines use, knows nothing
// of theirs. objstore, the S3 client side that only the VM-side services
// use, knows nothing of the rest.
func TestLayering(t *testing.T) {
	forbidden := map[string][]string{
		"elide":     {"scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "publish", "progress", "cli", "admintools", "gui", "legacy"},
		"scryptenc": {"sparsetar", "compress", "archive", "host", "backup", "restore", "cli", "admintools", "gui", "legacy"},
		"sparsetar": {"scryptenc", "compress", "archive", "host", "backup", "restore", "cli", "admintools", "gui", "legacy"},
		"compress":  {"scryptenc", "sparsetar", "archive", "host", "backup", "restore", "cli", "admintools", "gui", "legacy"},
		"archive":   {"host", "qrexec", "backup", "restore", "profile", "cli", "admintools", "gui", "legacy"},
		"host":      {"archive", "scryptenc", "compress", "qrexec", "backup", "restore", "profile", "cli", "admintools", "gui", "legacy"},
		"publish":   {"scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "cli", "admintools", "gui", "legacy"},
		"progress":  {"scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "cli", "admintools", "gui", "legacy"},
		"profile":   {"restore", "cli", "admintools", "gui"},
		"restore":   {"backup", "profile", "cli", "admintools", "gui"},
		"legacy":    {"backup", "restore", "profile", "qrexec", "cli", "admintools", "gui"},
		"backup":    {"restore", "profile", "cli", "admintools", "gui"},
		"qrexec":    {"archive", "host", "backup", "restore", "profile", "cli", "admintools", "gui"},
		// objstore is the S3 side of the VM-side services: a leaf.
		"objstore": {"elide", "scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "publish", "progress", "cmdrun", "cli", "admintools", "gui", "legacy"},
		"cancel":   {"elide", "scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "publish", "progress", "cmdrun", "cli", "admintools", "gui", "legacy"},
		"cmdrun":   {"scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "publish", "progress", "cli", "admintools", "gui", "legacy"},
		// reflink, the extent maps of files that share blocks: a leaf.
		"reflink": {"elide", "scryptenc", "sparsetar", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "publish", "progress", "cmdrun", "chain", "cli", "admintools", "gui", "legacy"},
		// chain, the block maps of incremental backups, knows volumes
		// as files only: the engines store and read what it makes.
		"chain": {"scryptenc", "compress", "archive", "host", "qrexec", "backup", "restore", "profile", "publish", "progress", "cmdrun", "cli", "admintools", "gui", "legacy"},
		// The GUI drives the engines as the command-line tools do, never
		// through them (it shares only cli's helpers, such as sizes).
		"cli":        {"admintools", "gui"},
		"admintools": {"gui"},
		"gui":        {"admintools"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if dep == "pedos.dev/backup/internal/"+b {
					t.Errorf("internal/%s imports internal/%s", pkg, b)
				}
			}
			// Only the GUI is Fyne (and so cgo and X libraries); nothing
			// but the command-line tools is cobra.
			if (strings.HasPrefix(dep, "fyne.io/") && pkg != "gui") ||
				(strings.Contains(dep, "cobra") && pkg != "admintools") {
				t.Errorf("internal/%s depends on %s", pkg, dep)
			}
		}
	}
}

// Only pedos-manager is built with Fyne: the command-line tools need no C
// compiler or X libraries.
func TestCommandsWithoutGUI(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "../cmd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		cmd, deps, _ := strings.Cut(line, " ")
		if cmd == "pedos.dev/backup/cmd/pedos-manager" {
			continue
		}
		for _, dep := range strings.Fields(deps) {
			if strings.HasPrefix(dep, "fyne.io/") || dep == "pedos.dev/backup/internal/gui" {
				t.Errorf("%s depends on %s", cmd, dep)
			}
		}
	}
}
