package restore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/testutil"
)

func verify(t *testing.T, data []byte, opts PlanOptions) (*VerifyReport, error) {
	t.Helper()
	b := openBackup(t, data)
	p, err := NewPlan(nil, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return VerifyOnly(t.Context(), b, p, nil)
}

func TestVerifyOnlyGood(t *testing.T) {
	data, _ := goodArchive(t)
	var events int
	b := openBackup(t, data)
	p, err := NewPlan(nil, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyOnly(t.Context(), b, p, progress.Func(func(progress.Event) { events++ }))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.VMs) != 8 || events == 0 {
		t.Fatalf("%d VMs, %d events", len(rep.VMs), events)
	}
	for _, v := range rep.VMs {
		if !v.OK() || v.Files == 0 {
			t.Errorf("%+v", v)
		}
	}
	if _, err := VerifyOnly(t.Context(), b, p, nil); !errors.Is(err, ErrUsed) {
		t.Errorf("second pass: %v", err)
	}
	// A selection decrypts only its files.
	rep, err = verify(t, data, PlanOptions{VMs: []string{"work"}})
	if err != nil || len(rep.VMs) != 1 || rep.VMs[0].Name != "work" || !rep.VMs[0].OK() {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestVerifyOnlyTampered(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	work := b.VM("work").Path
	ms := splitArchive(t, data)

	// All chunks of work's files dropped.
	dropped := rebuild(ms, func(name string) bool { return !strings.HasPrefix(name, work) })
	rep, err := verify(t, dropped, PlanOptions{VMs: []string{"vault", "work", "dom0"}})
	wantErr(t, err, archive.ErrIncomplete, "work")
	for _, v := range rep.VMs {
		if v.Name == "work" && (v.OK() || !strings.Contains(v.Err.Error(), "work")) {
			t.Errorf("work reported %+v", v)
		}
	}

	// A flipped byte in a chunk of a volume.
	var flipped []byte
	for _, m := range ms {
		c := bytes.Clone(m.data)
		if strings.HasPrefix(m.name, work+"private.img.000") {
			c[512+len(m.body)/2] ^= 0x40
		}
		flipped = append(flipped, c...)
	}
	rep, err = verify(t, flipped, PlanOptions{VMs: []string{"work", "dom0"}})
	wantErr(t, err, archive.ErrCorrupt)
	for _, v := range rep.VMs {
		if v.Name == "work" && v.OK() {
			t.Error("work reported good")
		}
		if v.Name == "dom0" && !errors.Is(v.Err, ErrNotReached) {
			t.Errorf("dom0, after work, reported %v", v.Err)
		}
	}

	// A VM whose files exceed its backup-size.
	b = openBackup(t, data)
	p, err := NewPlan(nil, b, PlanOptions{VMs: []string{"work"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func(s int64) { sizeSlack = s }(sizeSlack)
	sizeSlack = 0
	b.VM("work").Size = 1000
	_, err = VerifyOnly(t.Context(), b, p, nil)
	wantErr(t, err, archive.ErrTooLarge, "work")
	wantErr(t, err, ErrSizeLimit)
}

func TestExtractTo(t *testing.T) {
	data, src := goodArchive(t)
	b := openBackup(t, data)
	p, err := NewPlan(nil, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := ExtractTo(t.Context(), b, p, dir, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "qubes.xml")); !bytes.Equal(got, b.QubesXML) {
		t.Error("qubes.xml differs")
	}
	for _, v := range b.VMs {
		vols, err := src.Volumes(v.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, vol := range vols {
			if !vol.SaveOnStop {
				continue
			}
			out := filepath.Join(dir, v.Name, vol.Name+".img")
			sameFile(t, vol.Path, out)
			var st syscall.Stat_t
			if err := syscall.Stat(out, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 >= st.Size/2 {
				t.Errorf("%s is not sparse: %d of %d bytes", out, st.Blocks*512, st.Size)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "work", "firewall.xml")); err != nil {
		t.Error(err)
	}
	d0, err := src.Dom0()
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, d0.Home, filepath.Join(dir, "dom0-home", "user"))

	// A non-empty directory is refused and left alone.
	b2 := openBackup(t, data)
	p2, _ := NewPlan(nil, b2, PlanOptions{})
	if err := ExtractTo(t.Context(), b2, p2, dir, nil); err == nil {
		t.Error("extracted into a non-empty directory")
	}
	if _, err := os.Stat(filepath.Join(dir, "qubes.xml")); err != nil {
		t.Error("the non-empty directory was touched")
	}
}

func TestExtractToCleansUp(t *testing.T) {
	data, _ := goodArchive(t)
	ms := splitArchive(t, data)
	b := openBackup(t, data)
	vault := b.VM("vault").Path
	var flipped []byte
	for _, m := range ms {
		c := bytes.Clone(m.data)
		if strings.HasPrefix(m.name, vault) && strings.HasSuffix(m.name, ".000.enc") {
			c[512+len(m.body)/2] ^= 0x40
		}
		flipped = append(flipped, c...)
	}
	b = openBackup(t, flipped)
	p, _ := NewPlan(nil, b, PlanOptions{})
	parent := t.TempDir()
	err := ExtractTo(t.Context(), b, p, filepath.Join(parent, "out"), nil)
	wantErr(t, err, archive.ErrCorrupt)
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("left %v behind", entries)
	}
}

// sameFile fails the test unless the files are equal (sparse-aware).
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	if err := testutil.SameSparse(a, b); err != nil {
		t.Fatal(err)
	}
}

// sameTree compares two directory trees: names, types, file contents and
// symlink targets.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	var n int
	err := filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		q := filepath.Join(b, rel)
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("missing %s", rel)
			return nil
		}
		if gi.Mode().Type() != fi.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, gi.Mode().Type(), fi.Mode().Type())
		}
		switch {
		case fi.Mode().IsRegular():
			sameFile(t, p, q)
			n++
		case fi.Mode()&os.ModeSymlink != 0:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: link %q, want %q", rel, y, x)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("the home holds no files")
	}
}
