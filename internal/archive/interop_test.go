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
func makeReferenceArchive(t *testing.T, fx *fixture, filter string, split int, omit ...string) []byte {
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
	return testutil.ReferenceBackupWithout(t, src, testPass, "20260101T120000-4242", filter, split, omit...)
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
	last := lastChunkOf(t, data, "vm1/private.img")
	cut := makeReferenceArchive(t, fx, "none", testChunk, last)
	if _, err := readArchive(t, bytes.NewReader(cut), testReaderOptions()); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("dropped last chunk: %v", err)
	}
}

// The reference writer's chunk size is a parameter: archives cut at 1 MiB,
// 7 MiB, and at 1000 KiB where a file's stream is an exact multiple (so it
// ends with an empty chunk) are read whole, the writer's chunk size
// learnt from the archive; a file that then ends on a full chunk, before
// or after the one that showed the size, has lost chunks; and a chunk
// above MaxChunkSize is refused, naming the limit.
func TestReadReferenceChunkSizes(t *testing.T) {
	requireStandardTools(t)
	const exact = 1000 << 10
	src := t.TempDir()
	write := func(name string, data []byte) {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("qubes.xml", []byte(fixtureXML))
	// vm1's stream is one header block, the data and the end blocks:
	// exactly two 1000 KiB pieces with "none".
	write("vm1/data.img", randomData(2*exact-3*512, 1))
	write("vm2/private.img", randomData(15<<20, 2))
	write("vm2/firewall.xml", []byte("<firewall/>"))
	want := map[string]string{QubesXMLName: digest([]byte(fixtureXML))}
	for _, name := range []string{"vm1/data.img", "vm2/private.img", "vm2/firewall.xml"} {
		b, _ := os.ReadFile(filepath.Join(src, name))
		want[name] = digest(b)
	}
	for _, split := range []int{1 << 20, 7 << 20, exact} {
		t.Run(itoa(split), func(t *testing.T) {
			data := testutil.ReferenceBackup(t, src, testPass, "20260101T120000-4242", "none", split)
			names := listMembers(t, data)
			if !contains(names, "vm2/private.img.002.enc") {
				t.Fatalf("expected a volume of several chunks: %v", names)
			}
			if split == exact && (!contains(names, "vm1/data.img.002.enc") || contains(names, "vm1/data.img.003.enc")) {
				t.Fatalf("an exact multiple must end with an empty chunk: %v", names)
			}
			got, err := readArchive(t, bytes.NewReader(data), testReaderOptions())
			if err != nil {
				t.Fatal(err)
			}
			compareDigests(t, got, want)

			// Dropping a file's last chunk leaves a full chunk last. (At
			// 7 MiB, vm1 has a single chunk: without it, vm1 is gone
			// whole, which only a manifest or qubes.xml can show.)
			for _, file := range []string{"vm1/data.img", "vm2/private.img"} {
				if file == "vm1/data.img" && split == 7<<20 {
					continue
				}
				last := lastChunkOf(t, data, file)
				cut := testutil.ReferenceBackupWithout(t, src, testPass, "20260101T120000-4242", "none", split, last)
				_, err := readArchive(t, bytes.NewReader(cut), testReaderOptions())
				// vm1 at 1 MiB ends before vm2 shows the chunk size: its
				// inner tar, cut short, fails first.
				if !errors.Is(err, ErrIncomplete) && !(split == 1<<20 && file == "vm1/data.img" && err != nil) {
					t.Errorf("%s without %s: %v, want ErrIncomplete", file, last, err)
				}
				// Not read (left out by Select), it is still caught once
				// vm2 shows the chunk size.
				opts := testReaderOptions()
				opts.Select = func(f string) bool { return f != file }
				if _, err := readArchive(t, bytes.NewReader(cut), opts); !errors.Is(err, ErrIncomplete) {
					t.Errorf("%s without %s, not selected: %v, want ErrIncomplete", file, last, err)
				}
			}

			opts := testReaderOptions()
			opts.MaxChunkSize = split - 1
			_, err = readArchive(t, bytes.NewReader(data), opts)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "maximum chunk size") {
				t.Errorf("chunks above MaxChunkSize: %v", err)
			}
		})
	}
}
