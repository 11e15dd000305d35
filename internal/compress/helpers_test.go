package compress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var words = strings.Fields(`backup qube volume private root template
	header archive chunk stream filter compress restore the of and a to in
	is that for with on as by 2024 /home/user/.config # { } = ; "value"`)

// mixedData returns n reproducible bytes in alternating 64 KiB runs of random
// bytes and of text, so that a codec meets both its incompressible path
// (stored blocks, raw literals) and its matching path.
func mixedData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	const run = 64 << 10
	var b bytes.Buffer
	b.Grow(n + run)
	for b.Len() < n {
		end := b.Len() + run
		if (b.Len()/run)%2 == 0 {
			chunk := make([]byte, run)
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
			b.Write(chunk)
			continue
		}
		for b.Len() < end {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
	}
	return b.Bytes()[:n]
}

func compressWith(t testing.TB, c Codec, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := c.NewWriter(&out)
	if err != nil {
		t.Fatalf("%s: NewWriter: %v", c.Name(), err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("%s: Write: %v", c.Name(), err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("%s: Close: %v", c.Name(), err)
	}
	return out.Bytes()
}

// decompressWith reads the whole stream and then closes the reader; the
// first error of the two is returned.
func decompressWith(c Codec, compressed []byte) ([]byte, error) {
	r, err := c.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return data, err
}

// runTool runs a real program over input and returns its stdout.
func runTool(t testing.TB, input []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// installFilter writes a shell script named name into a fresh directory put
// first on PATH, making it an external filter program for the test.
func installFilter(t *testing.T, name, script string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// checkGoroutines fails the test if, once it is over, more goroutines run
// than when it started. Stopping ones get a few seconds to finish.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func mustForWriting(t testing.TB, name string) Codec {
	t.Helper()
	c, err := ForWriting(name)
	if err != nil {
		t.Fatalf("ForWriting(%q): %v", name, err)
	}
	return c
}

func mustForReading(t testing.TB, name string, allowExternal bool) Codec {
	t.Helper()
	c, err := ForReading(name, allowExternal)
	if err != nil {
		t.Fatalf("ForReading(%q, %v): %v", name, allowExternal, err)
	}
	return c
}
