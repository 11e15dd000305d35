package archive

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pedos.dev/backup/internal/testutil"
)

func requireStandardTools(t *testing.T) {
	for _, tool := range []string{"bash", "tar", "scrypt", "gzip", "sort", "find", "xargs"} {
		testutil.RequireTool(t, tool)
	}
}

// An archive made by our writer is recovered with nothing but the
// documented shell procedure, byte for byte, sparse images included.
func TestEmergencyProcedureRecoversOurArchive(t *testing.T) {
	requireStandardTools(t)
	fx := newFixture(t)
	for _, comp := range []string{"gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			opts := testWriterOptions()
			opts.Compression = comp
			backup := filepath.Join(t.TempDir(), "qubes-backup-2026-01-01T120000")
			if err := os.WriteFile(backup, fx.archive(t, opts), 0o600); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if res, err := testutil.EmergencyRestore(t, backup, testPass, out); err != nil {
				t.Fatalf("emergency procedure failed: %v\n%s", err, res)
			}
			want := fx.expected(t)
			for _, name := range []string{"vm1/private.img", "vm1/firewall.xml", "vm2/empty", QubesXMLName} {
				b, err := os.ReadFile(filepath.Join(out, name))
				if err != nil {
					t.Fatal(err)
				}
				if digest(b) != want[name] {
					t.Errorf("%s differs after the emergency procedure", name)
				}
			}
			if got := testutil.TreeDigest(t, filepath.Join(out, "dom0-home", "user")); got != want["dom0-home/user"] {
				t.Errorf("dom0 home differs:\n%s\nwant\n%s", got, want["dom0-home/user"])
			}
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(out, "vm1/private.img"), &st); err != nil {
				t.Fatal(err)
			}
			if used := st.Blocks * 512; used > 2<<20 {
				t.Errorf("recovered 4 MiB image uses %d bytes: holes were not kept", used)
			}
			if _, err := os.Stat(filepath.Join(out, ManifestName)); err != nil {
				t.Errorf("manifest not recovered: %v", err)
			}
		})
	}
	// The procedure stops at the header with a wrong passphrase.
	backup := filepath.Join(t.TempDir(), "b")
	os.WriteFile(backup, fx.archive(t, testWriterOptions()), 0o600)
	res, err := testutil.EmergencyRestore(t, backup, []byte("wrong"), t.TempDir())
	if err == nil || !strings.Contains(string(res), "Passphrase is incorrect") {
		t.Fatalf("wrong passphrase: %v\n%s", err, res)
	}
}

// makeReferenceArchive runs testdata/reference-backup.sh on the fixture.
func makeReferenceArchive(t *testing.T, fx *fixture, filter string, split int) []byte {
	t.Helper()
	src := t.TempDir()
	for _, p := range []string{"vm1/private.img", "vm1/firewall.xml"} {
		os.MkdirAll(filepath.Join(src, "vm1"), 0o755)
		if err := exec.Command("cp", "--sparse=always", "-a", filepath.Join(fx.dir, p), filepath.Join(src, p)).Run(); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(src, "home"), 0o755)
	if err := exec.Command("cp", "-a", filepath.Join(fx.dir, "home", "user"), filepath.Join(src, "home")).Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "qubes.xml"), []byte(fixtureXML), 0o644)
	return testutil.ReferenceBackup(t, src, testPass, "20260101T120000-4242", filter, split)
}

func itoa(n int) string { return strconv.Itoa(n) }

// Archives made the reference way with standard tools (GNU tar old-GNU
// sparse members, gzip/bzip2 or none, split, scrypt per piece, one
// tar --posix archive per member) are read by our reader.
func TestReadReferenceArchive(t *testing.T) {
	requireStandardTools(t)
	fx := newFixture(t)
	want := fx.expected(t)
	delete(want, "vm2/empty") // the reference script stores no empty VM
	for _, c := range []struct {
		filter string
		split  int
	}{{"gzip", ChunkSize}, {"gzip", testChunk}, {"none", testChunk}, {"bzip2", testChunk}, {"xz", ChunkSize}} {
		t.Run(c.filter+"/"+itoa(c.split), func(t *testing.T) {
			if c.filter != "none" {
				testutil.RequireTool(t, c.filter)
			}
			data := makeReferenceArchive(t, fx, c.filter, c.split)
			opts := testReaderOptions()
			opts.ChunkSize = c.split
			got, err := readArchive(t, bytes.NewReader(data), opts)
			if err != nil {
				t.Fatal(err)
			}
			compareDigests(t, got, want)
			if c.split == testChunk && c.filter != "none" {
				names := listMembers(t, data)
				if !contains(names, "vm1/private.img.002.enc") {
					t.Fatalf("expected a multi-chunk volume: %v", names)
				}
			}
		})
	}
	// Without a manifest, a dropped trailing chunk is still caught: the
	// chunk before it is full.
	data := makeReferenceArchive(t, fx, "none", testChunk)
	cut := rebuild(t, data, func(name string, m []byte) [][]byte {
		if name == lastChunkOf(t, data, "vm1/private.img") {
			return nil
		}
		return [][]byte{m}
	})
	opts := testReaderOptions()
	opts.ChunkSize = testChunk
	if _, err := readArchive(t, bytes.NewReader(cut), opts); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("dropped last chunk: %v", err)
	}
}
