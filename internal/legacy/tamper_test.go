package legacy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// Damage and tampering are reported as precisely as the format allows, and
// naming the member.
func TestTamperFormat3(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	b := newBuilder(t, 3)
	b.Encrypt, b.Compress = true, true
	good := b.backup(fx, hiddenLayout())
	names := b.Names()
	pass := Options{Passphrase: []byte(testPass)}
	stage := func(name string) string { return b.Stage + "/" + name }

	// altered edits a stage file for one rebuilt archive.
	altered := func(t *testing.T, name string, edit func([]byte) []byte) []byte {
		orig, err := os.ReadFile(stage(name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, stage(name), string(edit(bytes.Clone(orig))))
		defer writeFile(t, stage(name), string(orig))
		return b.Rebuild(names)
	}
	flip := func(at int) func([]byte) []byte {
		return func(d []byte) []byte { d[at] ^= 0x40; return d }
	}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
	}
	swapped := func(a, b string) []string {
		out := slices.Clone(names)
		i, j := slices.Index(out, a), slices.Index(out, b)
		out[i], out[j] = out[j], out[i]
		return out
	}
	upTo := func(name string) []byte { return good[:b.Find(name).End] }
	forged := slices.Concat(upTo("qubes.xml.000.hmac"), rawMember(t, "vm5/../../etc/x.000", []byte("x")))

	// The file a failure concerns, where Next or File.Read reported it.
	failedIn := map[string]string{
		"chunk altered":      "vm5/private.img",
		"chunks swapped":     "vm5/private.img",
		"hmac alone":         "",
		"file of no VM":      "vm9/x",
		"file twice":         "vm5/icon.png",
		"cut before an hmac": "vm5/private.img",
		"hmac not hex":       "vm5/firewall.xml",
	}
	for _, tc := range []struct {
		name    string
		archive func(t *testing.T) []byte
		opts    Options
		err     error
		member  string // the error must name it
	}{
		{"wrong passphrase", func(*testing.T) []byte { return good }, Options{Passphrase: []byte("wrong")}, ErrBadPassphrase, ""},
		{"header altered", func(t *testing.T) []byte { return altered(t, headerName, flip(3)) }, pass, ErrBadPassphrase, ""},
		{"qubes.xml chunk altered", func(t *testing.T) []byte { return altered(t, "qubes.xml.000", flip(40)) }, pass, ErrCorrupt, "qubes.xml.000"},
		{"chunk altered", func(t *testing.T) []byte { return altered(t, "vm5/private.img.001", flip(1000)) }, pass, ErrCorrupt, "vm5/private.img.001"},
		{"hmac altered", func(t *testing.T) []byte {
			return altered(t, "vm5/private.img.002.hmac", func(d []byte) []byte {
				i := bytes.IndexByte(d, '=') + 3
				d[i] = "10"[d[i]&1] // another hex digit: odd ones become 0, even ones 1
				return d
			})
		}, pass, ErrCorrupt, "vm5/private.img.002"},
		{"hmac not hex", func(t *testing.T) []byte {
			return altered(t, "vm5/firewall.xml.000.hmac", func([]byte) []byte { return []byte("(stdin)= not a digest\n") })
		}, pass, ErrCorrupt, "vm5/firewall.xml.000.hmac"},
		{"chunks swapped", func(*testing.T) []byte {
			return b.Rebuild(swapped("vm5/private.img.001", "vm5/private.img.002"))
		}, pass, ErrUnexpectedMember, "vm5/private.img.002"},
		{"chunk missing", func(*testing.T) []byte {
			return b.Rebuild(without("vm5/private.img.001", "vm5/private.img.001.hmac"))
		}, pass, ErrUnexpectedMember, "vm5/private.img.002"},
		{"first chunk missing", func(*testing.T) []byte {
			return b.Rebuild(without("vm5/icon.png.000", "vm5/icon.png.000.hmac"))
		}, pass, nil, ""},
		{"hmac missing", func(*testing.T) []byte { return b.Rebuild(without("vm5/private.img.001.hmac")) }, pass, ErrUnexpectedMember, "vm5/private.img.001"},
		{"hmac alone", func(*testing.T) []byte { return b.Rebuild(without("vm5/icon.png.000")) }, pass, ErrUnexpectedMember, "vm5/icon.png.000.hmac"},
		{"file of no VM", func(t *testing.T) []byte {
			writeFile(t, stage("vm9/x.000"), "x")
			writeFile(t, stage("vm9/x.000.hmac"), "(stdin)= 00\n")
			return b.Rebuild(append(slices.Clone(names), "vm9/x.000", "vm9/x.000.hmac"))
		}, pass, ErrUnexpectedMember, "vm9/x"},
		{"unsafe name", func(*testing.T) []byte { return forged }, pass, ErrUnexpectedMember, "vm5/../../etc/x"},
		{"qubes.xml again", func(*testing.T) []byte {
			return b.Rebuild(append(slices.Clone(names), "qubes.xml.000", "qubes.xml.000.hmac"))
		}, pass, ErrUnexpectedMember, "qubes.xml"},
		{"file twice", func(*testing.T) []byte {
			return b.Rebuild(append(slices.Clone(names), "vm5/icon.png.000", "vm5/icon.png.000.hmac"))
		}, pass, ErrUnexpectedMember, "vm5/icon.png"},
		{"cut inside a chunk", func(*testing.T) []byte {
			return good[:dataOffset(t, good, b.Find("vm5/private.img.002"))+100]
		}, pass, ErrTruncated, ""},
		{"cut before an hmac", func(*testing.T) []byte { return upTo("vm5/private.img.002") }, pass, ErrTruncated, "vm5/private.img.002"},
		{"cut inside the header", func(*testing.T) []byte { return good[:700] }, pass, ErrTruncated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readAll(t, tc.archive(t), tc.opts, t.TempDir())
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.member) {
				t.Errorf("error %q does not name %s", err, tc.member)
			}
			if in, ok := failedIn[tc.name]; ok && r.FailedIn() != in {
				t.Errorf("FailedIn() = %q, want %q", r.FailedIn(), in)
			}
		})
	}

	// Chunks missing at the end of a file leave a stream that does not
	// end properly: never a clean end of the file.
	t.Run("last chunks missing", func(t *testing.T) {
		_, err := readAll(t, upTo("vm5/private.img.001.hmac"), pass, t.TempDir())
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("error %v, want ErrCorrupt or ErrTruncated", err)
		}
	})
}

// The plaintext of a chunk whose HMAC fails is never released: readers
// see exactly the chunks before it.
func TestNoPlaintextFromForgedChunk(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	b := newBuilder(t, 3) // neither encrypted nor compressed: chunks are plaintext
	b.backup(fx, readableLayout())
	name := "appvms/work/private.img.001"
	first, err := os.ReadFile(b.Stage + "/appvms/work/private.img.000")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(b.Stage + "/" + name)
	data[len(data)-1] ^= 1
	writeFile(t, b.Stage+"/"+name, string(data))
	r, err := NewReader(bytes.NewReader(b.Rebuild(b.Names())), Options{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
		t.Fatalf("error %v, want ErrCorrupt naming %s", err, name)
	}
	if !bytes.Equal(got, first) {
		t.Errorf("read %d bytes before the error, want exactly the %d of chunk 000", len(got), len(first))
	}
	if _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Next after a failed file: %v, want the same error", err)
	}
}

func TestTamperFormat2(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	b := newBuilder(t, 2)
	b.Encrypt, b.Digest = true, "md5" // no header: everything inferred
	good := b.backup(fx, hiddenLayout())
	names := b.Names()
	if _, err := readAll(t, good, Options{Passphrase: []byte("wrong")}, t.TempDir()); !errors.Is(err, ErrBadPassphrase) {
		t.Errorf("wrong passphrase: %v, want ErrBadPassphrase", err)
	}
	vol := b.Stage + "/vm5/private.img.002"
	orig, _ := os.ReadFile(vol)
	altered := bytes.Clone(orig)
	altered[50] ^= 1
	writeFile(t, vol, string(altered))
	if _, err := readAll(t, b.Rebuild(names), Options{Passphrase: []byte(testPass)}, t.TempDir()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "vm5/private.img.002") {
		t.Errorf("altered volume: %v, want ErrCorrupt naming it", err)
	}
	writeFile(t, vol, string(orig))
	gap := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return strings.HasPrefix(n, "vm5/private.img.001") })
	if _, err := readAll(t, b.Rebuild(gap), Options{Passphrase: []byte(testPass)}, t.TempDir()); !errors.Is(err, ErrUnexpectedMember) {
		t.Errorf("missing volume: %v, want ErrUnexpectedMember", err)
	}
}

// Detect tells the formats apart by their first members.
func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		archive []byte
		version int
		err     error
	}{
		{"format 4", rawMember(t, headerName, []byte("version=4\nencrypted=True\ncompressed=False\nhmac-algorithm=scrypt\nbackup-id=20260101T120000-1\n")), 4, nil},
		{"format 3", rawMember(t, headerName, []byte("version=3\nhmac-algorithm=SHA512\ncrypto-algorithm=aes-256-cbc\nencrypted=True\ncompressed=False\n")), 3, nil},
		{"format 2 header", rawMember(t, headerName, []byte("hmac-algorithm=SHA1\ncrypto-algorithm=aes-256-cbc\nencrypted=True\ncompressed=False\n")), 2, nil},
		{"format 2 without header", rawMember(t, qubesXMLChunk, []byte("x")), 2, nil},
		{"zero blocks first", append(make([]byte, 2048), rawMember(t, qubesXMLChunk, nil)...), 2, nil},
		{"version 1 header", rawMember(t, headerName, []byte("version=1\nencrypted=False\ncompressed=False\nhmac-algorithm=SHA1\n")), 0, ErrUnsupported},
		{"bad header", rawMember(t, headerName, []byte("version=3\nversion=3\n")), 0, ErrCorrupt},
		{"other file", rawMember(t, "hello.txt", []byte("hi")), 0, ErrNotBackup},
		{"empty", nil, 0, ErrNotBackup},
		{"not tar", bytes.Repeat([]byte("x"), 1024), 0, ErrNotBackup},
		{"cut", rawMember(t, headerName, []byte("version=3\n"))[:516], 0, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tc.archive))
			v, err := Detect(br)
			if v != tc.version || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Detect = %d, %v; want %d, %v", v, err, tc.version, tc.err)
			}
			if rest, _ := io.ReadAll(br); !bytes.Equal(rest, tc.archive) {
				t.Error("Detect consumed input")
			}
		})
	}
	// NewReader leaves format 4 to package archive.
	v4 := slices.Concat(rawMember(t, headerName, []byte("version=4\n")), rawMember(t, headerHMACName, []byte("scrypt\x00\x0e")))
	if _, err := NewReader(bytes.NewReader(v4), Options{Passphrase: []byte(testPass)}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NewReader on format 4: %v, want ErrUnsupported", err)
	}
	// A reader whose buffer cannot hold the header says so.
	if _, err := Detect(bufio.NewReaderSize(bytes.NewReader(rawMember(t, headerName, make([]byte, 3000))), 16)); err == nil {
		t.Error("Detect with a tiny buffer: no error")
	}
}
