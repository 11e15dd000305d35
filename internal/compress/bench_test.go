package compress

import (
	"bytes"
	"io"
	"sync"
	"testing"
)

// benchData is ~64 MiB, half random and half text, made once.
var benchData = sync.OnceValue(func() []byte { return mixedData(64<<20, 42) })

func benchmarkWriter(b *testing.B, name string) {
	data := benchData()
	c := mustForWriting(b, name)
	var size int
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		var n countingWriter
		w, err := c.NewWriter(&n)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		size = int(n)
	}
	b.ReportMetric(float64(size)/float64(len(data)), "ratio")
}

func BenchmarkGzipWriter(b *testing.B) { benchmarkWriter(b, "gzip") }
func BenchmarkZstdWriter(b *testing.B) { benchmarkWriter(b, "zstd") }

func BenchmarkGzipReader(b *testing.B) {
	data := benchData()
	c := mustForReading(b, "gzip", false)
	compressed := compressWith(b, c, data)
	b.SetBytes(int64(len(data))) // uncompressed bytes, as for the writer
	b.ResetTimer()
	for b.Loop() {
		r, err := c.NewReader(bytes.NewReader(compressed))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		r.Close()
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
