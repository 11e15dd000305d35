package archive

import (
	"bytes"
	"io"
	"testing"

	"pedos.dev/backup/internal/scryptenc"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("version=4\nencrypted=True\ncompressed=True\ncompression-filter=gzip\nhmac-algorithm=scrypt\nbackup-id=20260101T120000-4242\n"))
	f.Add([]byte("version=3\nhmac-algorithm=SHA512\ncrypto-algorithm=aes-256-cbc\nencrypted=True\ncompressed=False\n"))
	f.Add([]byte("hmac-algorithm=SHA1\ncrypto-algorithm=aes-256-cbc\nencrypted=True\ncompressed=False\n"))
	f.Add([]byte("version=4\nversion=4\n"))
	f.Add([]byte("a==b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip through our writer's form.
		if h.Version >= 1 && h.HMACAlgorithm != "" && (h.BackupID != "" || h.Version < 4) {
			again, err := ParseHeader(h.Marshal())
			if err != nil {
				t.Fatalf("re-parsing %q: %v", h.Marshal(), err)
			}
			if again != h {
				t.Fatalf("round trip changed %+v into %+v", h, again)
			}
		}
	})
}

func FuzzOuterReader(f *testing.F) {
	var one bytes.Buffer
	writeMember(&one, "backup-header", testTime, []byte("version=4\n"))
	writeMember(&one, "vm1/private.img.000.enc", testTime, make([]byte, 700))
	f.Add(one.Bytes())
	f.Add(one.Bytes()[:1000])
	f.Add(make([]byte, 2048))
	f.Fuzz(func(t *testing.T, data []byte) {
		o := NewOuterReader(bytes.NewReader(data))
		for i := 0; i < 100; i++ {
			_, size, err := o.Next()
			if err != nil {
				return
			}
			if size < 0 {
				t.Fatalf("negative size %d", size)
			}
			n, err := io.Copy(io.Discard, o)
			if err == nil && n != size {
				t.Fatalf("read %d bytes of a %d-byte member without error", n, size)
			}
		}
	})
}

// FuzzReader feeds mutated archives to the whole reader. A mutated archive
// must never read as a clean, complete archive with different content.
func FuzzReader(f *testing.F) {
	opts := testWriterOptions()
	opts.Compression = "gzip"
	opts.Time = testTime
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		f.Fatal(err)
	}
	w.AddBytes(QubesXMLName, []byte(fixtureXML))
	w.AddBytes("vm1/firewall.xml", []byte("<firewall/>"))
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	f.Add(good, uint(0), byte(0))
	f.Add(good, uint(600), byte(1))
	f.Add(good, uint(len(good)/2), byte(0x80))
	f.Fuzz(func(t *testing.T, archive []byte, at uint, mask byte) {
		data := bytes.Clone(archive)
		if len(data) > 0 {
			data[at%uint(len(data))] ^= mask
		}
		ropts := testReaderOptions()
		// Mutated scrypt parameters must not make each run take seconds.
		ropts.Limits = scryptenc.Limits{MaxMemory: 1 << 20, MaxWork: 1 << 13}
		r, err := NewReader(bytes.NewReader(data), ropts)
		if err != nil {
			return
		}
		defer r.Close()
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			got, err := io.ReadAll(f)
			if err != nil {
				return
			}
			if f.Name == "vm1/firewall.xml" && bytes.Equal(archive, good) && !bytes.Contains(got, []byte("<firewall/>")) {
				t.Fatalf("altered content read without error")
			}
		}
	})
}
