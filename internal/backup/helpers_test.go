package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/qrexec"
	"pedos.dev/backup/internal/sparsetar"
)

// The VM side of qubes.Backup runs in this test binary, re-executed by the
// local transport.
func TestMain(m *testing.M) {
	qrexec.MaybeServe()
	os.Exit(m.Run())
}

var (
	testPass = []byte("correct horse battery staple")
	testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
)

// demoHost makes a demo host in a temporary directory; the dom0 home is
// $ROOT/home/user.
func demoHost(t *testing.T) *host.Host {
	t.Helper()
	h, err := host.Demo(filepath.Join(t.TempDir(), "root"), host.InitOptions{User: "user"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testOptions back up to dest with cheap keys.
func testOptions(dest Destination) Options {
	return Options{
		ScryptLogN:  10,
		Passphrase:  testPass,
		Destination: dest,
		Now:         func() time.Time { return testTime },
	}
}

// mustPlan makes a plan that must have no problems.
func mustPlan(t *testing.T, h *host.Host, opts Options) *Plan {
	t.Helper()
	p, err := NewPlan(t.Context(), h, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustRun plans and runs a backup that must succeed.
func mustRun(t *testing.T, h *host.Host, opts Options, out io.Writer) (*Plan, *Result) {
	t.Helper()
	p := mustPlan(t, h, opts)
	res, err := Run(context.Background(), p, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, res
}

// problemCodes lists a plan's problem codes.
func problemCodes(p *Plan) []ProblemCode {
	var codes []ProblemCode
	for _, pr := range p.Problems {
		codes = append(codes, pr.Code)
	}
	return codes
}

func wantProblem(t *testing.T, p *Plan, code ProblemCode) Problem {
	t.Helper()
	for _, pr := range p.Problems {
		if pr.Code == code {
			if pr.Message == "" {
				t.Errorf("problem %s has no message", code)
			}
			return pr
		}
	}
	t.Fatalf("plan problems %v, want %s", problemCodes(p), code)
	return Problem{}
}

// dirNames lists a directory, hidden files included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func timestamps(t *testing.T, h *host.Host) map[string]string {
	t.Helper()
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, d := range db.Domains() {
		v, _ := d.Prop("backup_timestamp")
		m[d.Name()] = v
	}
	return m
}

// expectedFiles lists, independently of the engine, the stored files of
// the VMs in archive order (by name, the dom0 home last).
func expectedFiles(t *testing.T, h *host.Host, vms []string) []string {
	t.Helper()
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	vms = slices.Clone(vms)
	slices.Sort(vms)
	var files []string
	home := false
	for _, name := range vms {
		if name == "dom0" {
			home = true
			continue
		}
		d, err := db.Domain(name)
		if err != nil {
			t.Fatal(err)
		}
		dir := fmt.Sprintf("vm%d/", d.Qid())
		n := len(files)
		for _, v := range d.Volumes() {
			if v.SaveOnStop {
				files = append(files, dir+v.Name+".img")
			}
		}
		if fw, _ := h.Firewall(name); fw != nil {
			files = append(files, dir+"firewall.xml")
		}
		if notes, _ := h.Notes(name); notes != "" {
			files = append(files, dir+"notes.txt")
		}
		if len(files) == n {
			files = append(files, dir+"empty")
		}
	}
	if home {
		u, err := h.Dom0()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, "dom0-home/"+filepath.Base(u.Home))
	}
	return files
}

// readOpts are the reader options for archives the tests write.
func readOpts(chunk int) archive.ReaderOptions {
	return archive.ReaderOptions{Passphrase: testPass}
}

// contents is what checkArchive found.
type contents struct {
	header archive.Header
	db     *host.DB
	files  []string
	seen   []archive.ManifestFile
	enc    map[string]int64 // bytes of each VM's .enc members
}

// checkArchive reads a whole archive back and checks it against the host:
// the file list, every volume byte for byte, firewall, notes, the dom0
// home tree, and the backup features of qubes.xml, with backup-size at
// least what each VM's .enc members hold.
func checkArchive(t *testing.T, h *host.Host, in io.Reader, vms []string, ropts archive.ReaderOptions) contents {
	t.Helper()
	r, err := archive.NewReader(in, ropts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	db, err := host.ParseDB(r.QubesXML())
	if err != nil {
		t.Fatal(err)
	}
	live, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := contents{header: r.Header(), db: db}
	subdirs := map[string]string{} // stored-file prefix -> VM
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.files = append(c.files, f.Name)
		vm, rest := vmOfFile(t, live, h, f.Name)
		subdirs[strings.TrimSuffix(f.Name, rest)] = vm
		checkFile(t, h, f, vm, rest)
	}
	if want := expectedFiles(t, h, vms); !slices.Equal(c.files, want) {
		t.Fatalf("archive files\n%q\nwant\n%q", c.files, want)
	}
	c.seen = r.Seen()

	// The features: on every domain, and a true bound on each VM's chunks.
	enc := map[string]int64{}
	c.enc = enc
	for _, mf := range c.seen {
		for prefix, vm := range subdirs {
			if strings.HasPrefix(mf.Name, prefix) {
				for _, ch := range mf.Chunks {
					enc[vm] += ch.Size
				}
			}
		}
	}
	if got := len(db.Domains()); got != len(live.Domains()) {
		t.Errorf("archived qubes.xml has %d domains, the host %d", got, len(live.Domains()))
	}
	for _, d := range db.Domains() {
		content, _ := d.Feature("backup-content")
		included := slices.Contains(vms, d.Name())
		if (content == "1") != included || (!included && content != "") {
			t.Errorf("%s: backup-content %q, included %v", d.Name(), content, included)
		}
		if !included {
			continue
		}
		path, _ := d.Feature("backup-path")
		want := fmt.Sprintf("vm%d/", d.Qid())
		if d.Name() == "dom0" {
			u, _ := h.Dom0()
			want = "dom0-home/" + filepath.Base(u.Home)
		}
		if path != want {
			t.Errorf("%s: backup-path %q, want %q", d.Name(), path, want)
		}
		sizeText, _ := d.Feature("backup-size")
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil || size < enc[d.Name()] || enc[d.Name()] == 0 {
			t.Errorf("%s: backup-size %q, but its .enc members hold %d bytes", d.Name(), sizeText, enc[d.Name()])
		}
	}
	return c
}

// vmOfFile finds the VM a stored file belongs to, and the file's name
// within the VM's directory.
func vmOfFile(t *testing.T, db *host.DB, h *host.Host, name string) (vm, rest string) {
	t.Helper()
	if strings.HasPrefix(name, "dom0-home/") {
		return "dom0", ""
	}
	dir, rest, ok := strings.Cut(name, "/")
	qid, err := strconv.Atoi(strings.TrimPrefix(dir, "vm"))
	if !ok || err != nil {
		t.Fatalf("unexpected stored file %q", name)
	}
	for _, d := range db.Domains() {
		if d.Qid() == qid {
			return d.Name(), rest
		}
	}
	t.Fatalf("stored file %q: no VM with qid %d", name, qid)
	return "", ""
}

// checkFile compares one stored file with its source on the host.
func checkFile(t *testing.T, h *host.Host, f *archive.File, vm, rest string) {
	t.Helper()
	switch {
	case vm == "dom0":
		u, _ := h.Dom0()
		out := filepath.Join(t.TempDir(), "home")
		if err := sparsetar.ExtractTree(f, f.Name, out, 1<<30); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if diff := compareTrees(u.Home, out); diff != "" {
			t.Errorf("dom0 home differs: %s", diff)
		}
	case strings.HasSuffix(rest, ".img"):
		info, err := h.VolumeInfo(vm, strings.TrimSuffix(rest, ".img"))
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.Open(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		cmp := &sameAs{f: src}
		n, err := sparsetar.ExtractFile(f, f.Name, cmp, 1<<40)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if n != info.Nominal {
			t.Errorf("%s: %d bytes, image has %d", f.Name, n, info.Nominal)
		}
	default:
		var buf bytes.Buffer
		if _, err := sparsetar.ExtractFile(f, f.Name, &buf, 1<<30); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		var want []byte
		switch rest {
		case "firewall.xml":
			want, _ = h.Firewall(vm)
		case "notes.txt":
			notes, _ := h.Notes(vm)
			want = []byte(notes)
		case "empty":
		default:
			t.Fatalf("unexpected stored file %q", f.Name)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s differs from the host's", f.Name)
		}
	}
}

// sameAs is a Writer that checks that what is written equals f from
// offset 0. Zeros over a hole of f are accepted without reading it, so
// checking a 2 GiB image with a few MiB of data is quick.
type sameAs struct {
	f   *os.File
	off int64
}

var zeros = make([]byte, 1<<20)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func (s *sameAs) Write(b []byte) (int, error) {
	end := s.off + int64(len(b))
	if isZero(b) {
		data, err := s.f.Seek(s.off, 3) // SEEK_DATA
		if errors.Is(err, syscall.ENXIO) || (err == nil && data >= end) {
			s.off = end
			return len(b), nil
		}
	}
	want := make([]byte, len(b))
	if _, err := s.f.ReadAt(want, s.off); err != nil {
		return 0, fmt.Errorf("reading the source at %d: %w", s.off, err)
	}
	if !bytes.Equal(b, want) {
		return 0, fmt.Errorf("content differs from the source in [%d, %d)", s.off, end)
	}
	s.off = end
	return len(b), nil
}

// sameSparseFiles compares two (sparse) files by their data regions.
func sameSparseFiles(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	sa, _ := fa.Stat()
	sb, _ := fb.Stat()
	if sa.Size() != sb.Size() {
		return fmt.Errorf("%s has %d bytes, %s %d", a, sa.Size(), b, sb.Size())
	}
	for _, pair := range [][2]*os.File{{fa, fb}, {fb, fa}} {
		regions, err := sparsetar.DataRegions(pair[0], sa.Size())
		if err != nil {
			return err
		}
		for _, r := range regions {
			x, y := make([]byte, r.Length), make([]byte, r.Length)
			if _, err := pair[0].ReadAt(x, r.Offset); err != nil {
				return err
			}
			if _, err := pair[1].ReadAt(y, r.Offset); err != nil {
				return err
			}
			if !bytes.Equal(x, y) {
				return fmt.Errorf("%s and %s differ in [%d, %d)", a, b, r.Offset, r.Offset+r.Length)
			}
		}
	}
	return nil
}

// compareTrees describes the first difference between two directory
// trees: names, types, modes, file contents and symlink targets.
func compareTrees(a, b string) string {
	list := func(root string) (map[string]string, error) {
		m := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			desc := fi.Mode().String()
			switch fi.Mode().Type() {
			case fs.ModeSymlink:
				target, _ := os.Readlink(p)
				desc += " -> " + target
			case 0:
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				desc += " " + string(data)
			}
			m[rel] = desc
			return nil
		})
		return m, err
	}
	ma, err := list(a)
	if err != nil {
		return err.Error()
	}
	mb, err := list(b)
	if err != nil {
		return err.Error()
	}
	for k, v := range ma {
		if mb[k] != v {
			return fmt.Sprintf("%s: %.60q vs %.60q", k, v, mb[k])
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			return k + " is extra"
		}
	}
	return ""
}

// recorder keeps the progress events.
type recorder struct{ events []progress.Event }

func (r *recorder) Report(e progress.Event) { r.events = append(r.events, e) }

// defaultVMs is the demo host's default selection.
var defaultVMs = []string{"dom0", "debian-12", "debian-12-dvm", "personal", "sys-firewall", "sys-net", "vault", "work"}
