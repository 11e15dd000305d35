package host

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newHost makes an empty host in a temp dir.
func newHost(t *testing.T) *Host {
	t.Helper()
	h, err := Init(t.TempDir(), InitOptions{User: "user", Home: "/home/user"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// demoHost makes a demo host in a temp dir.
func demoHost(t *testing.T) *Host {
	t.Helper()
	h, err := Demo(t.TempDir(), InitOptions{User: "user"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustLoad(t *testing.T, h *Host) *DB {
	t.Helper()
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func mustDomain(t *testing.T, db *DB, name string) *Domain {
	t.Helper()
	d, err := db.Domain(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canonical turns an XML document into one line per token, read with the
// standard decoder (not this package's parser): whitespace-only text
// dropped, attributes in document order, empty-element forms unified.
func canonical(t *testing.T, data []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	var out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("canonical: %v", err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			var b strings.Builder
			fmt.Fprintf(&b, "<%s %s", x.Name.Space, x.Name.Local)
			for _, a := range x.Attr {
				fmt.Fprintf(&b, " %s:%s=%q", a.Name.Space, a.Name.Local, a.Value)
			}
			out = append(out, b.String())
		case xml.EndElement:
			out = append(out, "</"+x.Name.Local)
		case xml.CharData:
			if s := strings.TrimSpace(string(x)); s != "" {
				out = append(out, "text "+s)
			}
		case xml.Comment:
			out = append(out, "comment "+string(x))
		}
	}
}

func diffLines(a, b []string) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("token %d: %q != %q", i, x, y)
		}
	}
	return ""
}

// sparseFile makes a file of size bytes holding data at the given offsets.
func sparseFile(t *testing.T, path string, size int64, chunks map[int64][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range chunks {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func usage(t *testing.T, path string) (nominal, allocated int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return sizes(fi)
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

func tempGlob(t *testing.T, h *Host) []string {
	t.Helper()
	m, err := filepath.Glob(h.path(tmpName(DBFile) + "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
