package compress

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"pedos.dev/backup/internal/testutil"
)

// What we write must restore on the reference system, which runs the
// Debian programs.
func TestOurOutputDecodesWithTools(t *testing.T) {
	for _, name := range []string{"gzip", "zstd"} {
		t.Run(name, func(t *testing.T) {
			testutil.RequireTool(t, name)
			c := mustForWriting(t, name)
			for _, size := range []int{0, 1, 5 << 20} {
				data := mixedData(size, 11)
				got := runTool(t, compressWith(t, c, data), name, "-d", "-c")
				if !bytes.Equal(got, data) {
					t.Errorf("size %d: `%s -d` gave %d bytes, want %d", size, name, len(got), len(data))
				}
			}
		})
	}
}

// What the reference system's programs wrote must restore with our
// built-in decoders.
func TestToolOutputDecodes(t *testing.T) {
	tests := []struct {
		filter string // the header's compression-filter
		cmd    []string
	}{
		{"gzip", []string{"gzip", "-c"}},
		{"gzip", []string{"gzip", "-9", "-c"}},
		{"pigz", []string{"pigz", "-c"}},
		{"bzip2", []string{"bzip2", "-c"}},
		{"pbzip2", []string{"pbzip2", "-1", "-c"}}, // a stream per 100k block
		{"xz", []string{"xz", "-c"}},
		{"xz", []string{"xz", "-T2", "--block-size=300KiB", "-c"}},
		{"lzma", []string{"xz", "--format=lzma", "-c"}},
		{"lzma", []string{"lzma", "-c"}},
		{"zstd", []string{"zstd", "-c"}},
		{"zstd", []string{"zstd", "-19", "-c"}},
		{"zstdmt", []string{"zstd", "-T0", "-c"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cmd, " "), func(t *testing.T) {
			testutil.RequireTool(t, tt.cmd[0])
			c := mustForReading(t, tt.filter, false)
			for _, size := range []int{0, 1, 1<<20 + 3} {
				data := mixedData(size, 13)
				got, err := decompressWith(c, runTool(t, data, tt.cmd[0], tt.cmd[1:]...))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("size %d: err %v, got %d bytes, equal %v", size, err, len(got), bytes.Equal(got, data))
				}
			}
		})
	}
}

// pbzip2, and any stream written in pieces (outputs appended one after the
// other), consist of concatenated streams; they must decode whole, not stop
// quietly after the first, just as the tools decode them.
func TestConcatenatedStreams(t *testing.T) {
	parts := [][]byte{mixedData(200<<10, 21), mixedData(1, 22), mixedData(0, 0), mixedData(300<<10, 23)}
	want := bytes.Join(parts, nil)
	tool := func(name string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, p []byte) []byte { return runTool(t, p, name, "-c") }
	}
	ours := func(name string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, p []byte) []byte { return compressWith(t, mustForWriting(t, name), p) }
	}
	tests := []struct {
		desc, filter string
		compress     func(t *testing.T, part []byte) []byte
	}{
		{"gzip members", "gzip", tool("gzip")},
		{"our gzip members", "gzip", ours("gzip")},
		// pbzip2's output is exactly this: one bzip2 stream per block.
		{"bzip2 streams", "bzip2", tool("bzip2")},
		{"xz streams", "xz", tool("xz")},
		{"zstd frames", "zstd", tool("zstd")},
		{"our zstd frames", "zstd", ours("zstd")},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			testutil.RequireTool(t, tt.filter)
			var joined []byte
			for _, p := range parts {
				joined = append(joined, tt.compress(t, p)...)
			}
			got, err := decompressWith(mustForReading(t, tt.filter, false), joined)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("err %v, got %d bytes, want %d, equal %v", err, len(got), len(want), bytes.Equal(got, want))
			}
			// The tool agrees, so this is the format and not our reading.
			if got := runTool(t, joined, tt.filter, "-d", "-c"); !bytes.Equal(got, want) {
				t.Errorf("`%s -d` gave %d bytes, want %d", tt.filter, len(got), len(want))
			}
		})
	}
}

// A zstd frame asking for more window memory than `zstd -d` grants by
// default is refused, as it is by `zstd -d`; a 128 MiB window is accepted.
func TestZstdWindowLimit(t *testing.T) {
	testutil.RequireTool(t, "zstd")
	data := mixedData(100<<10, 31)
	c := mustForReading(t, "zstd", false)
	// From a pipe the size is unknown, so the frame keeps the full window.
	if got, err := decompressWith(c, runTool(t, data, "zstd", "--long=27", "-c")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("--long=27: err %v, equal %v", err, bytes.Equal(got, data))
	}
	big := runTool(t, data, "zstd", "--long=28", "-c")
	if _, err := decompressWith(c, big); err == nil {
		t.Error("--long=28: a 256 MiB window was accepted")
	}
	cmd := exec.Command("zstd", "-d", "-c")
	cmd.Stdin = bytes.NewReader(big)
	var exitErr *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exitErr) {
		t.Errorf("`zstd -d` of a 256 MiB window: %v; the limit no longer matches the tool's", err)
	}
}

// A .lzma header is any 13 bytes, so its dictionary size is capped: a claim
// of 1 GiB is refused at once, while `lzma -9` (64 MiB) still decodes.
func TestLzmaDictLimit(t *testing.T) {
	testutil.RequireTool(t, "xz")
	data := mixedData(100<<10, 32)
	c := mustForReading(t, "lzma", false)
	if got, err := decompressWith(c, runTool(t, data, "xz", "--format=lzma", "-9", "-c")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("lzma -9: err %v, equal %v", err, bytes.Equal(got, data))
	}
	// Properties, dictionary size (little-endian), size unknown, then data.
	header := []byte("\x5d\x00\x00\x00\x40\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00")
	if _, err := decompressWith(c, header); err == nil || !strings.Contains(err.Error(), "dictionary") {
		t.Errorf("1 GiB dictionary: %v, want it refused", err)
	}
}
