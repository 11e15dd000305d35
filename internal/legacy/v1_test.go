package legacy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/testutil"
)

// makeV1 copies the fixture into a format 1 backup directory as the R1
// writer did (testutil.LegacyV1Dir), with an R1 qubes.xml (no dom0 entry)
// and an icon that is a symlink into the host.
func makeV1(t *testing.T, fx *fixture) string {
	t.Helper()
	xml := regexp.MustCompile(`(?m)^  <QubesAdminVm .*\n`).ReplaceAllString(core2XML(readableLayout()), "")
	dir := testutil.LegacyV1Dir(t, fx.root, xml)
	if err := os.Symlink("/usr/share/qubes/icons/blue.png", filepath.Join(dir, "appvms/work/icon-link.png")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFormat1(t *testing.T) {
	testutil.RequireTool(t, "cp")
	fx := newFixture(t)
	dir := makeV1(t, fx)
	if !IsV1Dir(dir) || IsV1Dir(t.TempDir()) {
		t.Fatal("IsV1Dir does not tell a format 1 backup")
	}
	b, err := OpenV1(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	sizes := map[string]int64{}
	out := t.TempDir()
	for _, f := range b.Files() {
		names = append(names, f.Name)
		rc := f.Open()
		cr := &countingReader{r: rc}
		if err := extract(cr, f.Name, out, f.Dir); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		rc.Close()
		if cr.n != f.Size {
			t.Errorf("%s: Open gave %d bytes, Size says %d", f.Name, cr.n, f.Size)
		}
		sizes[filepath.Dir(f.Name)] += f.Size
	}
	want := []string{
		"vm-templates/fedora-23/apps.templates", "vm-templates/fedora-23/private.img",
		"vm-templates/fedora-23/root.img", "vm-templates/fedora-23/volatile.img",
		"appvms/work/firewall.xml", "appvms/work/icon.png", "appvms/work/private.img",
		"dom0-home/user",
	}
	if !slices.Equal(names, want) {
		t.Errorf("Files() = %q, want %q", names, want)
	}
	checkRecovered(t, fx, readableLayout(), out, 1)
	if string(b.OriginalXML()) == string(b.QubesXML()) {
		t.Error("QubesXML was not converted")
	}

	checkPaths(t, b.QubesXML(), map[string]string{"work": "appvms/work/", "fedora-23": "vm-templates/fedora-23/", "dom0": "dom0-home/user"})
	db, err := host.ParseDB(b.QubesXML())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range db.Domains() {
		p, _ := d.Feature("backup-path")
		size, _ := d.Feature("backup-size")
		dirName := filepath.Dir(p + "x") // the VM directory, or dom0-home
		if p == "" {
			continue
		}
		if n, _ := strconv.ParseInt(size, 10, 64); n != sizes[dirName] {
			t.Errorf("%s: backup-size %s, want the %d bytes its files stream", d.Name(), size, sizes[dirName])
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A VM directory (or dom0-home) that is a symlink would make the restore
// read this machine's files as the backup's: refused.
func TestFormat1SymlinkedDirectory(t *testing.T) {
	testutil.RequireTool(t, "cp")
	for _, rel := range []string{"appvms/work", "dom0-home"} {
		t.Run(rel, func(t *testing.T) {
			dir := makeV1(t, newFixture(t))
			elsewhere := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.Rename(filepath.Join(dir, rel), elsewhere); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, filepath.Join(dir, rel)); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenV1(dir); !errors.Is(err, ErrUnexpectedMember) {
				t.Fatalf("OpenV1: %v", err)
			}
		})
	}
}
