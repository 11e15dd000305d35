package legacy

import (
	"archive/tar"
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// The archives these tests read are made as the reference writers made
// them (spec §5.1, §5.2), with the same programs: GNU tar with --sparse,
// gzip, `openssl enc` with MD5 key derivation (OpenSSL 1.0's default),
// split, `openssl dgst -hmac`, and `tar -cO --posix` per outer member.

const testPass = "correct horse battery"

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range append([]string{"bash", "tar", "openssl", "gzip", "split"}, tools...) {
		testutil.RequireTool(t, tool)
	}
}

// fixture is the data the test backups hold: an AppVM's directory, a
// template's and a dom0 home, as below /var/lib/qubes and /home.
type fixture struct {
	root string // holds var/lib/qubes/... and home/user
	work string // appvms/work: private.img (sparse), firewall.xml, icon.png
	tpl  string // vm-templates/fedora-23: root.img, private.img, volatile.img, apps.templates/
	home string
}

func (fx *fixture) qubesDir() string { return filepath.Join(fx.root, "var/lib/qubes") }

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root := t.TempDir()
	fx := &fixture{root: root}
	fx.work = filepath.Join(fx.qubesDir(), "appvms/work")
	fx.tpl = filepath.Join(fx.qubesDir(), "vm-templates/fedora-23")
	fx.home = filepath.Join(root, "home/user")
	rng := rand.New(rand.NewPCG(1, 2))
	writeSparse(t, filepath.Join(fx.work, "private.img"), 1<<20, rng, [2]int64{100 << 10, 200 << 10}, [2]int64{700 << 10, 50 << 10})
	writeFile(t, filepath.Join(fx.work, "firewall.xml"), `<QubesFirewallRules policy="allow" dns="allow" icmp="allow" yumProxy="allow"/>`+"\n")
	writeFile(t, filepath.Join(fx.work, "icon.png"), "\x89PNG\r\n\x1a\n fake icon")
	writeSparse(t, filepath.Join(fx.tpl, "root.img"), 2<<20, rng, [2]int64{0, 150 << 10}, [2]int64{1 << 20, 4096})
	writeSparse(t, filepath.Join(fx.tpl, "private.img"), 1<<20, rng, [2]int64{512 << 10, 10 << 10})
	writeSparse(t, filepath.Join(fx.tpl, "volatile.img"), 1<<20, rng)
	writeFile(t, filepath.Join(fx.tpl, "apps.templates/firefox.desktop"), "[Desktop Entry]\nName=Firefox\n")
	writeFile(t, filepath.Join(fx.home, ".bashrc"), "alias ll='ls -l'\n")
	writeFile(t, filepath.Join(fx.home, "Documents/note.txt"), "remember the milk\n")
	if err := os.Symlink("Documents/note.txt", filepath.Join(fx.home, "note")); err != nil {
		t.Fatal(err)
	}
	return fx
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSparse makes a file of size with random (incompressible) data at
// the given offset/length runs and holes elsewhere.
func writeSparse(t testing.TB, path string, size int64, rng *rand.Rand, runs ...[2]int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		b := make([]byte, r[1])
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if _, err := f.WriteAt(b, r[0]); err != nil {
			t.Fatal(err)
		}
	}
}

// layout names the VM directories in the backup: hidden ("vm5") when
// encrypted, readable ("appvms/work") otherwise, as the writers did.
type layout struct{ work, tpl string }

func hiddenLayout() layout   { return layout{"vm5", "vm7"} }
func readableLayout() layout { return layout{"appvms/work", "vm-templates/fedora-23"} }

// core2XML is an R3.2-style qubes.xml of the fixture's host, with the
// backup bookkeeping for work, the template and dom0.
func core2XML(l layout) string {
	return fmt.Sprintf(`<QubesVmCollection updatevm="2" default_kernel="4.4.14-11" default_netvm="2" default_fw_netvm="1" default_template="7" clockvm="1">
  <QubesAdminVm qid="0" name="dom0" label="black" backup_content="True" backup_path="dom0-home/user" backup_size="8192" dir_path="/var/lib/qubes/dom0"/>
  <QubesNetVm qid="1" name="sys-net" label="red" template_qid="7" netid="1" uses_default_netvm="False" netvm_qid="none" pcidevs="['00:19.0']" pci_strictreset="False" memory="300" services="{'ntpd': True}" dir_path="/var/lib/qubes/servicevms/sys-net" backup_content="False"/>
  <QubesProxyVm qid="2" name="sys-firewall" label="green" template_qid="7" netid="2" uses_default_netvm="False" netvm_qid="1" dir_path="/var/lib/qubes/servicevms/sys-firewall" backup_content="False"/>
  <QubesTemplateVm qid="7" name="fedora-23" label="black" template_qid="none" installed_by_rpm="False" uses_default_netvm="False" netvm_qid="none" maxmem="4000" vcpus="2" dir_path="/var/lib/qubes/vm-templates/fedora-23" backup_content="True" backup_path="%s" backup_size="4194304"/>
  <QubesAppVm qid="5" name="work" label="blue" template_qid="7" uses_default_netvm="True" netvm_qid="2" memory="800" maxmem="4000" vcpus="2" kernel="4.4.14-11" uses_default_kernel="True" kernelopts="" uses_default_kernelopts="True" services="{'meminfo-writer': True, 'cups': False}" pcidevs="[]" dir_path="/var/lib/qubes/appvms/work" backup_content="True" backup_path="%s" backup_size="1048576" include_in_backups="True"/>
  <QubesDisposableVm qid="15" name="disp15" label="red" template_qid="7" dispid="15" netvm_qid="2"/>
</QubesVmCollection>
`, l.tpl, l.work)
}

// span is where a member's archive lies in the outer stream.
type span struct {
	name       string
	start, end int64
}

// builder writes a format 2 or 3 archive member by member.
type builder struct {
	t        testing.TB
	version  int
	encrypt  bool
	compress bool
	zlib     bool   // format 2: zlib inside the encryption (openssl enc -z)
	filter   string // format 3 compression program
	digest   string // `openssl dgst` algorithm
	chunk    int    // format 3: bytes per chunk; format 2: KiB per volume
	stage    string
	path     string
	out      *os.File
	spans    []span
}

func newBuilder(t testing.TB, version int) *builder {
	t.Helper()
	b := &builder{t: t, version: version, filter: "gzip", digest: "sha512", chunk: 64 << 10, stage: t.TempDir()}
	if version == 2 {
		b.digest, b.chunk = "sha1", 40
	}
	b.path = filepath.Join(t.TempDir(), "qubes-backup")
	var err error
	if b.out, err = os.Create(b.path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.out.Close() })
	return b
}

func (b *builder) run(env []string, script string) {
	b.t.Helper()
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
	cmd.Dir = b.stage
	cmd.Env = append(os.Environ(), append(env, "PASS="+testPass)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("%v\n%s\n%s", err, script, out)
	}
}

// member appends stage/name to the archive as its own tar archive, as
// the reference writers' `tar -cO --posix` per file did.
func (b *builder) member(name string) {
	b.t.Helper()
	start, _ := b.out.Seek(0, io.SeekCurrent)
	var stderr bytes.Buffer
	cmd := exec.Command("tar", "-cO", "--posix", "-C", b.stage, name)
	cmd.Stdout, cmd.Stderr = b.out, &stderr
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("tar %s: %v\n%s", name, err, stderr.Bytes())
	}
	end, _ := b.out.Seek(0, io.SeekCurrent)
	b.spans = append(b.spans, span{name, start, end})
}

// authenticated appends stage/name and its .hmac.
func (b *builder) authenticated(name string) {
	b.run([]string{"F=" + name, "ALGO=" + b.digest}, `openssl dgst "-$ALGO" -hmac "$PASS" < "$F" > "$F.hmac"`)
	b.member(name)
	b.member(name + ".hmac")
}

func (b *builder) header(text string) {
	writeFile(b.t, filepath.Join(b.stage, headerName), text)
	b.authenticated(headerName)
}

// v3Header is the header R3.2 wrote.
func (b *builder) v3Header() {
	h := "version=3\nhmac-algorithm=SHA512\ncrypto-algorithm=aes-256-cbc\n"
	h += fmt.Sprintf("encrypted=%s\ncompressed=%s\n", pyBool(b.encrypt), pyBool(b.compress))
	if b.compress {
		h += "compression-filter=" + b.filter + "\n"
	}
	b.header(h)
}

// v2Header is the header written from January to September 2014.
func (b *builder) v2Header() {
	b.header(fmt.Sprintf("hmac-algorithm=%s\ncrypto-algorithm=aes-256-cbc\nencrypted=%s\ncompressed=%s\n", strings.ToUpper(b.digest), pyBool(b.encrypt), pyBool(b.compress)))
}

func pyBool(v bool) string {
	if v {
		return "True"
	}
	return "False"
}

// qubesXML stores text as qubes.xml, the first file.
func (b *builder) qubesXML(text string) {
	dir := b.t.TempDir()
	writeFile(b.t, filepath.Join(dir, "qubes.xml"), text)
	b.file(filepath.Join(dir, "qubes.xml"), "")
}

// file stores src (a file, or "<dir>/." for a template's whole directory)
// under subdir ("vm5/", "" for qubes.xml) and returns its chunk names.
func (b *builder) file(src, subdir string) []string {
	b.t.Helper()
	base := filepath.Base(src)
	if strings.HasSuffix(src, "/.") {
		base = "."
	}
	dest := subdir + base
	env := []string{"SRC_DIR=" + filepath.Dir(src), "BASE=" + base, "SUBDIR=" + subdir, "DEST=" + dest,
		fmt.Sprintf("CHUNK=%d", b.chunk)}
	if b.version == 3 {
		b.v3File(env, subdir)
	} else {
		b.v2File(env)
	}
	// Not filepath.Join: it would clean "vm7/." away.
	chunks, err := filepath.Glob(b.stage + "/" + dest + ".[0-9][0-9][0-9]")
	if err != nil || len(chunks) == 0 {
		b.t.Fatalf("no chunks for %s", dest)
	}
	sort.Strings(chunks)
	var names []string
	for _, c := range chunks {
		name, _ := filepath.Rel(b.stage, c)
		b.authenticated(name)
		names = append(names, name)
	}
	return names
}

// v3File: one inner tar, compressed, encrypted as one stream, then cut.
func (b *builder) v3File(env []string, subdir string) {
	compress, encrypt, deref := "cat", "cat", "--dereference"
	if b.compress {
		compress = b.filter
	}
	if b.encrypt {
		encrypt = "openssl enc -e -aes-256-cbc -md md5 -pass env:PASS"
	}
	if subdir == "dom0-home/" {
		deref = "" // the home's symlinks stay symlinks
	}
	env = append(env, "COMPRESS="+compress, "ENCRYPT="+encrypt, "DEREF="+deref)
	b.run(env, `mkdir -p "$(dirname "$DEST")"
tar -Pc --sparse $DEREF -C "$SRC_DIR" --xform "s:^$BASE:$SUBDIR\0:" "$BASE" | $COMPRESS | $ENCRYPT | split -b "$CHUNK" -d -a 3 - "$DEST."`)
}

// v2File: a GNU multi-volume tar whose volumes become chunks one by one
// (the writer sent the volumes through a fifo; here they are files).
func (b *builder) v2File(env []string) {
	vols := b.t.TempDir()
	b.run(append(env, "VOL="+vols+"/vol"), `mkdir -p "$(dirname "$DEST")"
tar -Pc --sparse -M -L "$CHUNK" -F 'mv "$TAR_ARCHIVE" "$TAR_ARCHIVE.$(printf %03d $((TAR_VOLUME - 2)))"' \
	-f "$VOL" -C "$SRC_DIR" --xform "s:^[^/]:$SUBDIR\0:" "$BASE"
mv "$VOL" "$VOL.$(printf %03d $(ls "$VOL".* 2>/dev/null | wc -l))"`)
	names, _ := filepath.Glob(vols + "/vol.*")
	sort.Strings(names)
	for i, vol := range names {
		// Not filepath.Join: it would clean "vm7/." away.
		chunk := fmt.Sprintf("%s/%s.%03d", b.stage, envValue(env, "DEST"), i)
		switch {
		case b.encrypt && b.zlib:
			// Debian's OpenSSL has no -z, so the zlib layer it added
			// inside the encryption is made here.
			data, err := os.ReadFile(vol)
			if err != nil {
				b.t.Fatal(err)
			}
			var z bytes.Buffer
			zw := zlib.NewWriter(&z)
			zw.Write(data)
			zw.Close()
			writeFile(b.t, vol, z.String())
			b.run([]string{"IN=" + vol, "OUT=" + chunk}, `openssl enc -e -aes-256-cbc -md md5 -pass env:PASS < "$IN" > "$OUT"`)
		case b.encrypt:
			b.run([]string{"IN=" + vol, "OUT=" + chunk}, `openssl enc -e -aes-256-cbc -md md5 -pass env:PASS < "$IN" > "$OUT"`)
		case b.compress:
			b.run([]string{"IN=" + vol, "OUT=" + chunk}, `gzip -c < "$IN" > "$OUT"`)
		default:
			b.run([]string{"IN=" + vol, "OUT=" + chunk}, `cp "$IN" "$OUT"`)
		}
	}
}

func envValue(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}

// backup stores the fixture as the reference writers did: qubes.xml,
// the AppVM's files, the template's directory, the dom0 home.
func (b *builder) backup(fx *fixture, l layout) []byte {
	b.qubesXML(core2XML(l))
	for _, f := range []string{"private.img", "icon.png", "firewall.xml"} {
		b.file(filepath.Join(fx.work, f), l.work+"/")
	}
	b.file(fx.tpl+"/.", l.tpl+"/")
	b.file(fx.home, "dom0-home/")
	return b.bytes()
}

func (b *builder) bytes() []byte {
	data, err := os.ReadFile(b.path)
	if err != nil {
		b.t.Fatal(err)
	}
	return data
}

// find returns the span of the named member.
func (b *builder) find(name string) span {
	for _, s := range b.spans {
		if s.name == name {
			return s
		}
	}
	b.t.Fatalf("no member %s", name)
	return span{}
}

// dataOffset is where a member's data starts in the archive.
func dataOffset(t testing.TB, archive []byte, s span) int64 {
	t.Helper()
	o := &outerReader{r: bytes.NewReader(archive[s.start:s.end])}
	if _, _, err := o.next(); err != nil {
		t.Fatal(err)
	}
	return s.start + o.offset
}

// readAll reads every file of an archive and extracts it as the restore
// engine would: single files with sparsetar.ExtractFile, a template's
// directory with ExtractDotTree, the dom0 home with ExtractTree, into
// out/<name>. It returns the reader and the first error.
func readAll(t testing.TB, archive []byte, opts Options, out string) (*Reader, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(archive), opts)
	if err != nil {
		return nil, err
	}
	for {
		f, err := r.Next()
		if err == io.EOF {
			return r, nil
		}
		if err != nil {
			return r, err
		}
		if err := extract(f, f.Name, out, strings.HasPrefix(f.Name, "dom0-home/")); err != nil {
			return r, err
		}
	}
}

// extract writes a stored file's inner tar stream to out/<name>: a
// template's "vmN/." and other trees as directories, anything else as one
// file.
func extract(r io.Reader, name, out string, tree bool) error {
	const limit = 1 << 30
	dst := filepath.Join(out, filepath.FromSlash(strings.TrimSuffix(name, "/.")))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case strings.HasSuffix(name, "/."):
		return sparsetar.ExtractDotTree(r, name, dst, limit)
	case tree:
		return sparsetar.ExtractTree(r, name, dst, limit)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = sparsetar.ExtractFile(r, name, f, limit)
	return err
}

// treeDigest describes a directory tree: each entry's path, type and
// content hash, or link target.
func treeDigest(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lines = append(lines, rel+" -> "+target)
		case d.IsDir():
			lines = append(lines, rel+"/")
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(data)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// checkRecovered compares what readAll (or a shell procedure) wrote to
// out with the fixture, as written by a writer of the given format.
func checkRecovered(t testing.TB, fx *fixture, l layout, out string, version int) {
	t.Helper()
	for _, f := range []string{"private.img", "icon.png", "firewall.xml"} {
		if got, want := treeDigest(t, filepath.Join(out, l.work, f)), treeDigest(t, filepath.Join(fx.work, f)); got != want {
			t.Errorf("%s/%s differs: %s, want %s", l.work, f, got, want)
		}
	}
	if got, want := treeDigest(t, filepath.Join(out, l.tpl)), treeDigest(t, fx.tpl); got != want {
		t.Errorf("template directory differs:\n%s\nwant\n%s", got, want)
	}
	want := treeDigest(t, fx.home)
	if version == 2 {
		// The format 2 writer's --xform s:^[^/]:dom0-home/\0: also
		// rewrote symlink targets.
		want = strings.ReplaceAll(want, "-> Documents", "-> dom0-home/Documents")
	}
	if got := treeDigest(t, filepath.Join(out, "dom0-home/user")); got != want {
		t.Errorf("dom0 home differs:\n%s\nwant\n%s", got, want)
	}
}

// rebuild writes a new archive of stage members in the given order (the
// stage may have been altered meanwhile).
func (b *builder) rebuild(names []string) []byte {
	b.t.Helper()
	nb := *b
	nb.spans = nil
	nb.path = filepath.Join(b.t.TempDir(), "rebuilt")
	var err error
	if nb.out, err = os.Create(nb.path); err != nil {
		b.t.Fatal(err)
	}
	defer nb.out.Close()
	for _, n := range names {
		nb.member(n)
	}
	return nb.bytes()
}

// names lists the archive's members in order.
func (b *builder) names() []string {
	var out []string
	for _, s := range b.spans {
		out = append(out, s.name)
	}
	return out
}

// rawMember is one outer member made with archive/tar, which writes any
// name, as a forger would.
func rawMember(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	return buf.Bytes()
}
