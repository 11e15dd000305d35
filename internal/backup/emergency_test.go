package backup

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/testutil"
)

// A backup of the whole demo host, made the way qvm-backup makes it (to a
// directory, gzip), is recovered by the documented procedure with standard
// tools only: every volume (sparse), firewall, notes, the dom0 home and
// qubes.xml.
func TestEmergencyRestore(t *testing.T) {
	for _, tool := range []string{"bash", "tar", "scrypt", "gzip", "sort", "find", "xargs", "sed", "diff"} {
		testutil.RequireTool(t, tool)
	}
	h := demoHost(t)
	dir := t.TempDir()
	opts := testOptions(Destination{Path: dir})
	opts.VMs = slices.Concat(defaultVMs, []string{"disp123"})
	_, res := mustRun(t, h, opts, nil)

	out := t.TempDir()
	if msg, err := testutil.EmergencyRestore(t, res.Location, testPass, out); err != nil {
		t.Fatalf("emergency procedure failed: %v\n%s", err, msg)
	}

	xml, err := os.ReadFile(filepath.Join(out, archive.QubesXMLName))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(res.Location)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := archive.NewReader(f, readOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !bytes.Equal(xml, r.QubesXML()) {
		t.Error("qubes.xml differs")
	}
	db, err := host.ParseDB(xml)
	if err != nil {
		t.Fatal(err)
	}
	checkRecovered(t, h, db, out, opts.VMs)
	manifest, err := os.ReadFile(filepath.Join(out, archive.ManifestName))
	if err != nil || !strings.Contains(string(manifest), res.BackupID) {
		t.Errorf("manifest not recovered: %v", err)
	}
}

// checkRecovered compares what the emergency procedure recovered into out
// with the host's VMs now: every save_on_stop volume (sparse), firewall,
// notes or the empty marker, and the dom0 home, found by the backup-path
// of the recovered qubes.xml (db).
func checkRecovered(t *testing.T, h *host.Host, db *host.DB, out string, vms []string) {
	t.Helper()
	for _, name := range vms {
		d, err := db.Domain(name)
		if err != nil {
			t.Fatal(err)
		}
		path, _ := d.Feature("backup-path")
		if name == "dom0" {
			u, _ := h.Dom0()
			if diff := compareTrees(u.Home, filepath.Join(out, path)); diff != "" {
				t.Errorf("dom0 home differs: %s", diff)
			}
			continue
		}
		found := 0
		for _, v := range d.Volumes() {
			if !v.SaveOnStop {
				continue
			}
			info, err := h.VolumeInfo(name, v.Name)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameSparseFiles(info.Path, filepath.Join(out, path, v.Name+".img")); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			found++
		}
		fw, _ := h.Firewall(name)
		notes, _ := h.Notes(name)
		for file, want := range map[string][]byte{"firewall.xml": fw, "notes.txt": []byte(notes)} {
			got, err := os.ReadFile(filepath.Join(out, path, file))
			if len(want) == 0 {
				if err == nil {
					t.Errorf("%s: unexpected %s", name, file)
				}
				continue
			}
			found++
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %s differs (%v)", name, file, err)
			}
		}
		if found == 0 {
			if fi, err := os.Stat(filepath.Join(out, path, "empty")); err != nil || fi.Size() != 0 {
				t.Errorf("%s: no empty marker (%v)", name, err)
			}
		}
	}
}
