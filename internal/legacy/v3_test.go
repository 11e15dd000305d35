package legacy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pedos.dev/backup/internal/compress"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/testutil"
)

// Format 3 archives in the variants R2 to R3.2 wrote are read back byte
// for byte, sparse images, a template's whole directory and the dom0 home
// included, across several chunks per file.
func TestFormat3(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	for _, tc := range []struct {
		name              string
		encrypt, compress bool
		filter            string
		l                 layout
	}{
		{"encrypted+gzip", true, true, "gzip", hiddenLayout()},
		{"encrypted+bzip2", true, true, "bzip2", hiddenLayout()},
		{"encrypted", true, false, "", hiddenLayout()},
		{"plain+gzip", false, true, "gzip", readableLayout()},
		{"plain", false, false, "", readableLayout()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.filter != "" {
				requireTools(t, tc.filter)
			}
			b := newBuilder(t, 3)
			b.Encrypt, b.Compress, b.Filter = tc.encrypt, tc.compress, tc.filter
			archive := b.backup(fx, tc.l)

			v, err := Detect(bufio.NewReader(bytes.NewReader(archive)))
			if err != nil || v != 3 {
				t.Fatalf("Detect = %d, %v; want 3", v, err)
			}
			out := t.TempDir()
			r, err := readAll(t, archive, Options{Passphrase: []byte(testPass)}, out)
			if err != nil {
				t.Fatal(err)
			}
			want := Header{Version: 3, Encrypted: tc.encrypt, Compressed: tc.compress, Compression: tc.filter, HMACAlgorithm: "sha512"}
			if tc.encrypt {
				want.CryptoAlgorithm = "aes-256-cbc"
			}
			if r.Header() != want {
				t.Errorf("Header() = %+v, want %+v", r.Header(), want)
			}
			checkRecovered(t, fx, tc.l, out, 3)
			if string(r.OriginalXML()) != core2XML(tc.l) {
				t.Errorf("OriginalXML differs from the stored qubes.xml")
			}
			wantSeen := []string{tc.l.work + "/private.img", tc.l.work + "/icon.png", tc.l.work + "/firewall.xml", tc.l.tpl + "/.", "dom0-home/user"}
			if !slices.Equal(r.Seen(), wantSeen) {
				t.Errorf("Seen() = %q, want %q", r.Seen(), wantSeen)
			}
			checkPaths(t, r.QubesXML(), map[string]string{"work": tc.l.work + "/", "fedora-23": tc.l.tpl + "/", "dom0": "dom0-home/user"})
		})
	}
}

// checkPaths checks the converted database's backup-path features, which
// must match the names Next returns.
func checkPaths(t testing.TB, xml []byte, want map[string]string) {
	t.Helper()
	db, err := host.ParseDB(xml)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range db.Domains() {
		if c, _ := d.Feature("backup-content"); c != "" {
			got[d.Name()], _ = d.Feature("backup-path")
		}
	}
	if len(got) != len(want) {
		t.Errorf("backed-up VMs %v, want %v", got, want)
	}
	for name, p := range want {
		if got[name] != p {
			t.Errorf("%s: backup-path %q, want %q", name, got[name], p)
		}
	}
}

// Select skips files: the others are still returned, and everything is
// listed in Seen.
func TestSelect(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	b := newBuilder(t, 3)
	b.Encrypt, b.Compress = true, true
	archive := b.backup(fx, hiddenLayout())
	out := t.TempDir()
	var offered []string
	r, err := readAll(t, archive, Options{Passphrase: []byte(testPass), Select: func(name string) bool {
		offered = append(offered, name)
		return !strings.HasPrefix(name, "vm5/")
	}}, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(offered) != 5 || len(r.Seen()) != 5 {
		t.Errorf("Select saw %q, Seen %q; want all 5 files", offered, r.Seen())
	}
	if got, want := testutil.TreeDigest(t, out), "./\ndom0-home/\n"; !strings.HasPrefix(got, want) || strings.Contains(got, "vm5") {
		t.Errorf("extracted:\n%s\nwant no vm5", got)
	}

	// Next skips what is left of a file; the file is then done with.
	r, err = NewReader(bytes.NewReader(archive), Options{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
	}
	if want := []string{"vm5/icon.png", "vm5/firewall.xml", "vm7/.", "dom0-home/user"}; !slices.Equal(names, want) {
		t.Errorf("after a partly read file: %q, want %q", names, want)
	}
	if _, err := first.Read(make([]byte, 100)); err == nil {
		t.Error("a file left behind by Next can still be read")
	}
}

// The header's compression filter only picks a built-in decoder; a program
// is run only when the user names it.
func TestCompressionFilter(t *testing.T) {
	requireTools(t)
	for _, tc := range []struct {
		header, force string
		err           error
	}{
		{"gzip", "", nil},
		{"pigz", "", nil}, // the same format as gzip: built in
		{"evil-program", "", compress.ErrUnknownFilter},
		{"evil-program", "gzip", nil},
	} {
		t.Run(tc.header+"/"+tc.force, func(t *testing.T) {
			b := newBuilder(t, 3)
			b.Encrypt, b.Compress = true, true // made with gzip
			b.Header("version=3\nhmac-algorithm=SHA512\ncrypto-algorithm=aes-256-cbc\nencrypted=True\ncompressed=True\ncompression-filter=" + tc.header + "\n")
			b.QubesXML(core2XML(hiddenLayout()))
			r, err := NewReader(bytes.NewReader(b.Bytes()), Options{Passphrase: []byte(testPass), ForceFilter: tc.force})
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("NewReader: %v, want %v", err, tc.err)
			}
			if err == nil && string(r.OriginalXML()) != core2XML(hiddenLayout()) {
				t.Error("qubes.xml differs")
			}
		})
	}
}

// GNU tar stores the sparse images as old-GNU 'S' members, which the
// comparisons of TestFormat3 and TestFormat2 thus prove readable.
func TestSparseMembersAreOldGNU(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	for _, version := range []int{2, 3} {
		b := newBuilder(t, version)
		b.QubesXML(core2XML(hiddenLayout()))
		b.File(filepath.Join(fx.work, "private.img"), "vm5/")
		r, err := NewReader(bytes.NewReader(b.Bytes()), Options{Passphrase: []byte(testPass)})
		if err != nil {
			t.Fatal(err)
		}
		f, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := tar.NewReader(f).Next()
		if err != nil || hdr.Typeflag != tar.TypeGNUSparse || hdr.Size != 1<<20 {
			t.Errorf("format %d: first member %+v, %v; want a 1 MiB 'S' member", version, hdr, err)
		}
	}
}
