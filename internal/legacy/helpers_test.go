package legacy

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// The archives these tests read are made as the reference writers made
// them, with the same programs (testutil.LegacyWriter,
// legacy-backup.sh): GNU tar with --sparse, gzip, `openssl enc` with MD5
// key derivation (OpenSSL 1.0's default), split, the HMAC of `openssl
// dgst -hmac`, and `tar -cO --posix` per outer member.

const testPass = "correct horse battery"

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range append([]string{"bash", "tar", "openssl", "gzip", "split", "od", "tr"}, tools...) {
		testutil.RequireTool(t, tool)
	}
}

// fixture is the data the test backups hold: an AppVM's directory, a
// template's and a dom0 home, laid out as a format 1 backup is, like
// /var/lib/qubes (the fixture testutil.LegacyWriter reads).
type fixture struct {
	root string // holds appvms/work, vm-templates/fedora-23, dom0-home/user
	work string // appvms/work: private.img (sparse), firewall.xml, icon.png
	tpl  string // vm-templates/fedora-23: root.img, private.img, volatile.img, apps.templates/
	home string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root := t.TempDir()
	fx := &fixture{root: root}
	fx.work = filepath.Join(root, "appvms/work")
	fx.tpl = filepath.Join(root, "vm-templates/fedora-23")
	fx.home = filepath.Join(root, "dom0-home/user")
	rng := rand.New(rand.NewPCG(1, 2))
	testutil.WriteSparse(t, filepath.Join(fx.work, "private.img"), 1<<20, rng, [2]int64{100 << 10, 200 << 10}, [2]int64{700 << 10, 50 << 10})
	writeFile(t, filepath.Join(fx.work, "firewall.xml"), `<QubesFirewallRules policy="allow" dns="allow" icmp="allow" yumProxy="allow"/>`+"\n")
	writeFile(t, filepath.Join(fx.work, "icon.png"), "\x89PNG\r\n\x1a\n fake icon")
	testutil.WriteSparse(t, filepath.Join(fx.tpl, "root.img"), 2<<20, rng, [2]int64{0, 150 << 10}, [2]int64{1 << 20, 4096})
	testutil.WriteSparse(t, filepath.Join(fx.tpl, "private.img"), 1<<20, rng, [2]int64{512 << 10, 10 << 10})
	testutil.WriteSparse(t, filepath.Join(fx.tpl, "volatile.img"), 1<<20, rng)
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

// builder writes a format 2 or 3 archive member by member, as the
// reference writers did (testutil.LegacyWriter), with small chunks: 64 KiB
// for format 3, 40 KiB volumes for format 2.
type builder struct{ *testutil.LegacyWriter }

func newBuilder(t testing.TB, version int) *builder {
	t.Helper()
	opts := testutil.LegacyOptions{Version: version, Chunk: 64 << 10}
	if version == 2 {
		opts.Chunk = 40
	}
	return &builder{testutil.NewLegacyWriter(t, []byte(testPass), opts)}
}

// backup stores the fixture as the reference writers did: the header
// (none for a format 2 builder with NoHeader), qubes.xml, the AppVM's
// files, the template's directory, the dom0 home.
func (b *builder) backup(fx *fixture, l layout) []byte {
	b.Backup(fx.root, core2XML(l))
	return b.Bytes()
}

// dataOffset is where a member's data starts in the archive.
func dataOffset(t testing.TB, data []byte, s testutil.LegacySpan) int64 {
	t.Helper()
	o := archive.NewOuterReader(bytes.NewReader(data[s.Start:s.End]))
	if _, _, err := o.Next(); err != nil {
		t.Fatal(err)
	}
	return s.Start + o.Offset()
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

// checkRecovered compares what readAll (or a shell procedure) wrote to
// out with the fixture, as written by a writer of the given format.
func checkRecovered(t testing.TB, fx *fixture, l layout, out string, version int) {
	t.Helper()
	for _, f := range []string{"private.img", "icon.png", "firewall.xml"} {
		if got, want := testutil.TreeDigest(t, filepath.Join(out, l.work, f)), testutil.TreeDigest(t, filepath.Join(fx.work, f)); got != want {
			t.Errorf("%s/%s differs: %s, want %s", l.work, f, got, want)
		}
	}
	if got, want := testutil.TreeDigest(t, filepath.Join(out, l.tpl)), testutil.TreeDigest(t, fx.tpl); got != want {
		t.Errorf("template directory differs:\n%s\nwant\n%s", got, want)
	}
	want := testutil.TreeDigest(t, fx.home)
	if version == 2 {
		// The format 2 writer's --xform s:^[^/]:dom0-home/\0: also
		// rewrote symlink targets.
		want = strings.ReplaceAll(want, "-> Documents", "-> dom0-home/Documents")
	}
	if got := testutil.TreeDigest(t, filepath.Join(out, "dom0-home/user")); got != want {
		t.Errorf("dom0 home differs:\n%s\nwant\n%s", got, want)
	}
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
