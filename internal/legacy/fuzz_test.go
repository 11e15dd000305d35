package legacy

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"pedos.dev/backup/internal/host"
)

// A core2 qubes.xml comes from the archive: whatever it holds, parsing and
// converting it must not panic, and what it converts to must be a database
// package host reads.
func FuzzCore2(f *testing.F) {
	if seed, err := os.ReadFile("testdata/r32-qubes.xml"); err == nil {
		f.Add(seed)
	}
	f.Add([]byte(core2XML(hiddenLayout())))
	f.Add([]byte(`<QubesVmCollection><QubesAppVm qid="1" name="a&amp;b" template_qid="none" services="{'x': 'y'}" pcidevs="['00:00.0']"/></QubesVmCollection>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := parseCore2(data)
		if err != nil {
			return
		}
		xml, _, err := convert(db, includeStored)
		if err != nil {
			return
		}
		if _, err := host.ParseDB(xml); err != nil {
			t.Fatalf("converted database does not parse: %v\n%s", err, xml)
		}
	})
}

// seedArchive is a tiny unencrypted, uncompressed format 3 archive made
// in Go, to give the fuzzer valid HMACs to start from.
func seedArchive(t testing.TB) []byte {
	mac := func(data []byte) []byte {
		m := hmac.New(sha512.New, []byte(testPass))
		m.Write(data)
		return []byte("(stdin)= " + hex.EncodeToString(m.Sum(nil)) + "\n")
	}
	header := []byte("version=3\nhmac-algorithm=SHA512\ncrypto-algorithm=aes-256-cbc\nencrypted=False\ncompressed=False\n")
	var inner bytes.Buffer
	inner.Write(rawMember(t, "qubes.xml", []byte(core2XML(hiddenLayout()))))
	var out bytes.Buffer
	for _, m := range []struct {
		name string
		data []byte
	}{{headerName, header}, {qubesXMLChunk, inner.Bytes()}, {"vm5/firewall.xml.000", rawMember(t, "vm5/firewall.xml", []byte("<x/>"))}} {
		out.Write(rawMember(t, m.name, m.data))
		out.Write(rawMember(t, m.name+".hmac", mac(m.data)))
	}
	return out.Bytes()
}

// Whatever the stream, reading it ends in an error or io.EOF, never a
// panic or a hang.
func FuzzReader(f *testing.F) {
	f.Add(seedArchive(f))
	f.Add(rawMember(f, qubesXMLChunk, []byte("Salted__12345678")))
	f.Fuzz(func(t *testing.T, data []byte) {
		Detect(bufio.NewReader(bytes.NewReader(data)))
		r, err := NewReader(bytes.NewReader(data), Options{Passphrase: []byte(testPass)})
		if err != nil {
			return
		}
		for i := 0; i < 100; i++ {
			f, err := r.Next()
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, f); err != nil {
				return
			}
		}
		t.Fatal("more than 100 files from a fuzzed archive")
	})
}

// The seed archive is read like a real one.
func TestSeedArchive(t *testing.T) {
	r, err := NewReader(bytes.NewReader(seedArchive(t)), Options{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.Next()
	if err != nil || f.Name != "vm5/firewall.xml" {
		t.Fatalf("Next = %v, %v", f, err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, f); err != nil || !bytes.Contains(buf.Bytes(), []byte("<x/>")) {
		t.Fatalf("content %q, %v", buf.Bytes(), err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next at the end: %v, want io.EOF", err)
	}
}
