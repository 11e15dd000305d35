package compress

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"pedos.dev/backup/internal/testutil"
)

func TestInvalidNames(t *testing.T) {
	for _, name := range []string{"", "gzip -9", "../x", "a/b", "/usr/bin/gzip", "x;y", "gzip\n", "$(id)", "gzíp", "zstd --long"} {
		if _, err := ForWriting(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ForWriting(%q) = %v, want ErrInvalidName", name, err)
		}
		for _, allow := range []bool{false, true} {
			if _, err := ForReading(name, allow); !errors.Is(err, ErrInvalidName) {
				t.Errorf("ForReading(%q, %v) = %v, want ErrInvalidName", name, allow, err)
			}
		}
	}
}

func TestUnknownFilterIsNotRunUnlessForced(t *testing.T) {
	// Installed, so that only the policy can be what refuses it.
	installFilter(t, "evil", "exec cat")
	_, err := ForReading("evil", false)
	if !errors.Is(err, ErrUnknownFilter) {
		t.Fatalf("ForReading(evil, false) = %v, want ErrUnknownFilter", err)
	}
	if !strings.Contains(err.Error(), "--compression-filter evil") {
		t.Errorf("error does not tell how to force the filter: %v", err)
	}
	if _, err := ForReading("evil", true); err != nil {
		t.Errorf("ForReading(evil, true) = %v, want the external filter", err)
	}
}

func TestMissingProgram(t *testing.T) {
	const name = "pedos-no-such-filter"
	_, err := ForWriting(name)
	if !errors.Is(err, ErrFilterNotFound) || !strings.Contains(err.Error(), name) {
		t.Errorf("ForWriting(%q) = %v, want ErrFilterNotFound naming it", name, err)
	}
	_, err = ForReading(name, true)
	if !errors.Is(err, ErrFilterNotFound) || !strings.Contains(err.Error(), name) {
		t.Errorf("ForReading(%q, true) = %v, want ErrFilterNotFound naming it", name, err)
	}
	if _, err := ForReading(name, false); !errors.Is(err, ErrUnknownFilter) {
		t.Errorf("ForReading(%q, false) = %v, want ErrUnknownFilter", name, err)
	}
}

// With an empty PATH, every built-in decoder and the built-in encoders still
// work, while writing with a program-backed filter is refused up front.
func TestBuiltinsNeedNoProgram(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	data := mixedData(100<<10, 1)
	for _, name := range []string{"gzip", "zstd", "none"} {
		c := mustForWriting(t, name)
		got, err := decompressWith(mustForReading(t, name, false), compressWith(t, c, data))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s without PATH: err %v, equal %v", name, err, bytes.Equal(got, data))
		}
	}
	for _, name := range []string{"pigz", "bzip2", "pbzip2", "xz", "lzma", "zstdmt"} {
		c := mustForReading(t, name, false)
		if c.Name() != name {
			t.Errorf("Name() = %q, want %q", c.Name(), name)
		}
		if _, err := c.NewWriter(io.Discard); !errors.Is(err, ErrFilterNotFound) {
			t.Errorf("%s: NewWriter without the program = %v, want ErrFilterNotFound", name, err)
		}
	}
	for _, name := range []string{"bzip2", "xz"} {
		if _, err := ForWriting(name); !errors.Is(err, ErrFilterNotFound) {
			t.Errorf("ForWriting(%q) without the program = %v, want ErrFilterNotFound", name, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	checkGoroutines(t)
	sizes := []int{0, 1, 1<<20 + 3, 5 << 20}
	for _, name := range []string{"gzip", "zstd", "none", "bzip2", "xz"} {
		t.Run(name, func(t *testing.T) {
			if name == "bzip2" || name == "xz" {
				testutil.RequireTool(t, name)
			}
			w := mustForWriting(t, name)
			r := mustForReading(t, name, false)
			for _, size := range sizes {
				data := mixedData(size, uint64(size))
				compressed := compressWith(t, w, data)
				got, err := decompressWith(r, compressed)
				if err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("size %d: round trip gave %d different bytes", size, len(got))
				}
				if name != "none" && size == 5<<20 && len(compressed) > size*3/4 {
					t.Errorf("size %d compressed to %d: the text half did not compress", size, len(compressed))
				}
			}
		})
	}
}

// Giving up on a stream part-way must release the decoder's resources.
func TestCloseBeforeEOF(t *testing.T) {
	checkGoroutines(t)
	data := mixedData(5<<20, 7)
	for _, name := range []string{"gzip", "zstd", "none"} {
		c := mustForWriting(t, name)
		r, err := c.NewReader(bytes.NewReader(compressWith(t, c, data)))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
		if name != "none" {
			if _, err := r.Read(buf); err == nil {
				t.Errorf("%s: Read after Close succeeded", name)
			}
		}
	}
}

// NewReader must not read: over a pipe that is only fed afterwards, from
// the same goroutine, it would otherwise deadlock.
func TestNewReaderDoesNoIO(t *testing.T) {
	for name := range decoders {
		c := mustForReading(t, name, false)
		r, err := c.NewReader(readerFunc(func([]byte) (int, error) {
			t.Errorf("%s: NewReader read from its source", name)
			return 0, io.EOF
		}))
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// The backup reader finds missing trailing chunks and damaged data only
// through these errors, so every built-in decoder must report them.
func TestCorruptInput(t *testing.T) {
	data := mixedData(300<<10, 3)
	// The streams are made by the programs the reference system runs, or by
	// our own writers where we write that format.
	makers := []struct {
		name     string
		compress func(t *testing.T) []byte
	}{
		{"gzip", func(t *testing.T) []byte { return compressWith(t, mustForWriting(t, "gzip"), data) }},
		{"zstd", func(t *testing.T) []byte { return compressWith(t, mustForWriting(t, "zstd"), data) }},
		{"bzip2", func(t *testing.T) []byte { testutil.RequireTool(t, "bzip2"); return runTool(t, data, "bzip2", "-c") }},
		{"xz", func(t *testing.T) []byte { testutil.RequireTool(t, "xz"); return runTool(t, data, "xz", "-c") }},
		{"lzma", func(t *testing.T) []byte {
			testutil.RequireTool(t, "xz")
			return runTool(t, data, "xz", "--format=lzma", "-c")
		}},
	}
	for _, m := range makers {
		t.Run(m.name, func(t *testing.T) {
			good := m.compress(t)
			c := mustForReading(t, m.name, false)
			if got, err := decompressWith(c, good); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("intact stream: err %v, equal %v", err, bytes.Equal(got, data))
			}
			cases := map[string][]byte{
				"empty":       {},
				"header only": good[:1],
				"10 bytes":    good[:10],
				"half":        good[:len(good)/2],
				"last byte":   good[:len(good)-1],
			}
			// Flip bits through the body; a checksum or the format's own
			// structure must catch each one.
			for _, at := range []int{len(good) / 3, len(good) / 2, len(good) * 9 / 10} {
				flipped := bytes.Clone(good)
				flipped[at] ^= 0x10
				cases["bit flip at "+strconv.Itoa(at)] = flipped
			}
			for what, input := range cases {
				got, err := decompressWith(c, input)
				switch {
				case err == nil:
					t.Errorf("%s: read %d bytes and no error (equal to the original: %v)", what, len(got), bytes.Equal(got, data))
				case !strings.HasPrefix(what, "bit flip") && !errors.Is(err, io.ErrUnexpectedEOF):
					t.Errorf("%s: %v, want io.ErrUnexpectedEOF", what, err)
				default:
					t.Logf("%s: %v", what, err)
				}
			}
		})
	}
}
