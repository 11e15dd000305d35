package compress

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// markFilter is a stand-in for a compressor the registry knows nothing
// about: it prefixes a marker when compressing and strips it with -d, so the
// test sees both that the program ran and that it got -d only when reading.
const markFilter = `if [ "$1" = -d ]; then exec tail -c +2; fi
[ $# -eq 0 ] || { echo "unexpected arguments: $*" >&2; exit 2; }
printf X; exec cat`

func TestExternalFilterBothWays(t *testing.T) {
	checkGoroutines(t)
	installFilter(t, "pedos-mark", markFilter)
	w := mustForWriting(t, "pedos-mark")
	r := mustForReading(t, "pedos-mark", true)
	if w.Name() != "pedos-mark" || r.Name() != "pedos-mark" {
		t.Errorf("names %q, %q", w.Name(), r.Name())
	}
	for _, size := range []int{0, 1, 1<<20 + 3, 5 << 20} {
		data := mixedData(size, uint64(size))
		compressed := compressWith(t, w, data)
		if len(compressed) != size+1 || compressed[0] != 'X' {
			t.Fatalf("size %d: the filter did not run to compress", size)
		}
		for _, c := range []Codec{r, w} {
			got, err := decompressWith(c, compressed)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, data))
			}
		}
	}
}

func TestExternalFilterFailure(t *testing.T) {
	checkGoroutines(t)
	// One fails at once, without reading; one after reading everything,
	// and with more stderr than is kept: its last words must survive.
	installFilter(t, "pedos-fail-early", `echo "boom: disk on fire" >&2; exit 3`)
	installFilter(t, "pedos-fail-late", `cat >/dev/null
head -c 100000 /dev/zero | tr '\0' n >&2
echo >&2; echo "boom: corrupt input" >&2; exit 1`)
	for _, tt := range []struct{ name, msg string }{
		{"pedos-fail-early", "boom: disk on fire"},
		{"pedos-fail-late", "boom: corrupt input"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.name) {
					t.Errorf("%s: %v, want an error naming the filter with its stderr %q", what, err, tt.msg)
				} else if len(err.Error()) > stderrLimit+200 {
					t.Errorf("%s: error of %d bytes: stderr is not bounded", what, len(err.Error()))
				} else {
					t.Logf("%s: …%s", what, err.Error()[max(0, len(err.Error())-120):])
				}
			}
			c := mustForWriting(t, tt.name)
			var out bytes.Buffer
			wc, err := c.NewWriter(&out)
			if err != nil {
				t.Fatal(err)
			}
			// Enough to overflow the pipe, so the early one breaks a Write.
			data := mixedData(2<<20, 5)
			_, werr := wc.Write(data)
			cerr := wc.Close()
			if werr != nil {
				check("Write", werr)
			}
			check("Close", cerr)
			if _, err := wc.Write(data); err == nil {
				t.Error("Write after a failure succeeded")
			}

			got, err := decompressWith(mustForReading(t, tt.name, true), data)
			check("reading", err)
			if len(got) != 0 {
				t.Errorf("reading gave %d bytes", len(got))
			}
		})
	}
}

// A source that fails must fail the read, although `cat` itself exits 0 on
// what it sees as a short input: that is how a missing chunk shows up.
func TestExternalSourceError(t *testing.T) {
	checkGoroutines(t)
	installFilter(t, "pedos-cat", "exec cat")
	errMissing := errors.New("chunk 7 is missing")
	data := mixedData(1<<20, 6)
	src := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errMissing))
	r, err := mustForReading(t, "pedos-cat", true).NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, errMissing) {
		t.Errorf("ReadAll: %v, want %v", err, errMissing)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("got %d bytes before the error, want %d", len(got), len(data))
	}
	if err := r.Close(); !errors.Is(err, errMissing) {
		t.Errorf("Close: %v, want %v again", err, errMissing)
	}
}

func TestExternalDestinationError(t *testing.T) {
	checkGoroutines(t)
	installFilter(t, "pedos-cat", "exec cat")
	errFull := errors.New("no space left on device")
	dst := &failingWriter{room: 100 << 10, err: errFull}
	wc, err := mustForWriting(t, "pedos-cat").NewWriter(dst)
	if err != nil {
		t.Fatal(err)
	}
	data := mixedData(4<<20, 8)
	var werr error
	for off := 0; off < len(data) && werr == nil; off += 64 << 10 {
		_, werr = wc.Write(data[off : off+64<<10])
	}
	cerr := wc.Close()
	if werr != nil && !errors.Is(werr, errFull) {
		t.Errorf("Write: %v, want %v", werr, errFull)
	}
	if !errors.Is(cerr, errFull) {
		t.Errorf("Close: %v, want %v", cerr, errFull)
	}
}

type failingWriter struct {
	room int
	err  error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.room {
		n := w.room
		w.room = 0
		return n, w.err
	}
	w.room -= len(p)
	return len(p), nil
}

// A consumer that gives up early must not hang nor leave the filter or any
// goroutine behind, whether the source is endless or stalled.
func TestExternalReaderCloseEarly(t *testing.T) {
	checkGoroutines(t)
	installFilter(t, "pedos-cat", "exec cat")
	installFilter(t, "pedos-yes", "exec yes") // ignores its input altogether
	stalled, stall := io.Pipe()
	defer stall.Close() // only then may the feeding goroutine end
	go stall.Write(make([]byte, 1000))
	for _, tt := range []struct {
		filter string
		src    io.Reader
	}{
		{"pedos-cat", endless{}},
		{"pedos-yes", endless{}},
		{"pedos-cat", stalled},
	} {
		r, err := mustForReading(t, tt.filter, true).NewReader(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 500)); err != nil {
			t.Fatalf("%s: %v", tt.filter, err)
		}
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("%s: Close: %v", tt.filter, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Close hangs", tt.filter)
		}
		if _, err := r.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: Read after Close succeeded", tt.filter)
		}
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}
