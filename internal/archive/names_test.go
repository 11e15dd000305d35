package archive

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestChunkNames(t *testing.T) {
	for _, c := range []struct {
		file  string
		index int
		want  string
	}{
		{"vm3/private.img", 0, "vm3/private.img.000"},
		{"vm3/private.img", 7, "vm3/private.img.007"},
		{"vm3/private.img", 999, "vm3/private.img.999"},
		{"vm3/private.img", 1000, "vm3/private.img.1000"}, // Python's %03d, not a wrap
		{"dom0-home/user", 12345, "dom0-home/user.12345"},
	} {
		got := ChunkName(c.file, c.index)
		if got != c.want {
			t.Errorf("ChunkName(%q, %d) = %q, want %q", c.file, c.index, got, c.want)
		}
		file, index, err := parseChunkMember(got + ".enc")
		if err != nil || file != c.file || index != c.index {
			t.Errorf("parseChunkMember(%q) = %q, %d, %v", got+".enc", file, index, err)
		}
	}
	for _, bad := range []string{"vm3/private.img.00.enc", "vm3/private.img.0001.enc", "vm3/private.img.000",
		"vm3/private.img.abc.enc", "../x.000.enc", "/x.000.enc", "a//b.000.enc", ".000.enc"} {
		if _, _, err := parseChunkMember(bad); err == nil {
			t.Errorf("parseChunkMember(%q) accepted", bad)
		}
	}
	key := string(ChunkKey("20230405T123455-1234", "vm12/private.img.003", []byte("hunter2")))
	if key != "20230405T123455-1234!vm12/private.img.003!hunter2" {
		t.Errorf("key string %q", key)
	}
	if string(HeaderKey([]byte("hunter2"))) != "backup-header!hunter2" {
		t.Error("header key string")
	}
}

// A file of more than a thousand chunks is written and read with the
// four-digit names that follow .999 (sorting them as text would put .1000
// before .101).
func TestThousandChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("derives about 2000 keys")
	}
	const chunk = 4096
	opts := testWriterOptions()
	opts.Compression = "none"
	opts.ChunkSize = chunk
	payload := randomData(1001*chunk+100, 9)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.AddBytes(QubesXMLName, nil)
	if err := w.AddFile("vm1/big", func(out io.Writer) error { _, err := out.Write(payload); return err }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names := listMembers(t, buf.Bytes())
	if !contains(names, "vm1/big.1000.enc") || !contains(names, "vm1/big.1001.enc") {
		t.Fatalf("no four-digit chunks among %d members", len(names))
	}
	ropts := testReaderOptions()
	r, err := NewReader(bytes.NewReader(buf.Bytes()), ropts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(payload), err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}
