package backup

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"pedos.dev/backup/internal/host"
)

// A host whose database was written elsewhere: no dom0 user stored (the
// running user's home is backed up, and the summary says so) and a VM in
// a second file pool, whose images are read from there.
func TestBackupNoDom0UserSecondPool(t *testing.T) {
	h := demoHost(t)
	if err := os.Remove(filepath.Join(h.Root(), "dom0.json")); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "runner")
	os.MkdirAll(filepath.Join(home, "Documents"), 0o755)
	os.WriteFile(filepath.Join(home, "Documents", "todo.txt"), []byte("migrate\n"), 0o644)
	t.Setenv("HOME", home)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	disk2 := filepath.Join(t.TempDir(), "disk2")
	if err := h.AddPool("disk2", "file", map[string]string{"dir_path": disk2}); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateVM("extra", host.AppVM, host.VMOptions{Label: "red", Template: "debian-12", Pool: "disk2"}); err != nil {
		t.Fatal(err)
	}
	data := append(make([]byte, 1<<20), []byte("in the second pool")...)
	if _, err := h.ImportVolume("extra", "private", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}

	opts := testOptions(Destination{Path: "-"})
	opts.VMs = []string{"dom0", "extra", "work"}
	var buf bytes.Buffer
	p, _ := mustRun(t, h, opts, &buf)
	note := fmt.Sprintf(NoDom0UserNote, u.Username, home)
	if p.VMs[0].Name != "dom0" || p.VMs[0].Note != note || p.VMs[0].Path != "dom0-home/runner" {
		t.Errorf("dom0 planned as %+v", p.VMs[0])
	}
	if row := p.Summary().Rows[0]; row.Note != note {
		t.Errorf("summary row %+v", row)
	}
	if p.VMs[1].Note != "" {
		t.Errorf("a note on %s: %q", p.VMs[1].Name, p.VMs[1].Note)
	}
	c := checkArchive(t, h, &buf, opts.VMs, readOpts(0))
	want := []string{"vm9/private.img", "vm5/private.img", "vm5/firewall.xml", "dom0-home/runner"}
	if fmt.Sprint(c.files) != fmt.Sprint(want) {
		t.Errorf("files %v, want %v", c.files, want)
	}
}
