package restore

import (
	"bytes"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pedos.dev/backup/internal/archive"
)

// The older archives of a chain share one pool of chunk buffers
// (OpenChain): the next starts reading once the one before it has read its
// whole input, while that one's last files are still being consumed, and
// reads to its proven end from the buffers the one before gave back.
// Archives with buffers of their own take turns whole: the next starts
// only once the one before is closed, so that two archives' buffers are
// never held at once.
func TestChainArchivesTakeTurns(t *testing.T) {
	data, _ := goodArchive(t)
	slack := int64(metadataEnd(t, data) + 128<<10) // buffered reads, a member header
	for _, shared := range []bool{true, false} {
		var pool *archive.BufferPool
		if shared {
			pool = &archive.BufferPool{}
		}
		open := func(lazy bool) (*Backup, *atomic.Int64) {
			var read atomic.Int64
			c := &countingReader{r: bytes.NewReader(data), read: func(n int) { read.Add(int64(n)) }}
			b, err := Open(t.Context(), c, OpenOptions{Passphrase: testPass, Lazy: lazy, buffers: pool})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b, &read
		}
		prev, _ := open(false)
		next, nextRead := open(true)
		started := make(chan error, 1)
		go startAfter(prev, next, everyVM(next), started)
		if err := prev.start(prev.selectedBy(everyVM(prev))); err != nil {
			t.Fatal(err)
		}
		readToEnd(t, prev)
		// prev is read to its proven end, and still open.
		if shared {
			select {
			case err := <-started:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("sharing a pool, the next archive did not start once the one before had read its input")
			}
			for deadline := time.Now().Add(10 * time.Second); nextRead.Load() <= slack; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("started, the next archive read %d bytes, no further than its metadata", nextRead.Load())
				}
			}
		} else {
			select {
			case <-started:
				t.Fatal("with buffers of its own, the next archive started before the one before it was closed")
			case <-time.After(300 * time.Millisecond):
			}
			prev.Close()
			if err := <-started; err != nil {
				t.Fatal(err)
			}
		}
		readToEnd(t, next)
		if nextRead.Load() != int64(len(data)) {
			t.Errorf("shared %v: the next archive ended after %d of %d bytes", shared, nextRead.Load(), len(data))
		}
	}
}

// metadataEnd is where an archive's metadata ends: its header, the
// header's .hmac and qubes.xml's member.
func metadataEnd(t *testing.T, data []byte) int {
	t.Helper()
	n := 0
	for _, m := range splitArchive(t, data) {
		n += len(m.data)
		if strings.HasPrefix(m.name, archive.QubesXMLName) {
			return n
		}
	}
	t.Fatal("no qubes.xml member")
	return 0
}

// everyVM wants every file of b's VMs.
func everyVM(b *Backup) map[string]bool {
	want := map[string]bool{}
	for _, v := range b.all() {
		want[v.Path] = true
	}
	return want
}

// readToEnd reads every selected file of b's started data pass, to the
// archive's proven end.
func readToEnd(t *testing.T, b *Backup) {
	t.Helper()
	for {
		_, f, err := b.reader.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, f); err != nil {
			t.Fatal(err)
		}
	}
}
