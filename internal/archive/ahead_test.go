package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pedos.dev/backup/internal/scryptenc"
)

// aheadFixture writes the fixture's archive to a file and returns its
// path, bytes, backup id and number of chunks (qubes.xml's aside).
func aheadFixture(t *testing.T) (fx *fixture, path string, data []byte, id string, chunks int) {
	t.Helper()
	if scryptenc.Lanes < 2 {
		t.Skip("this CPU has no AVX2: no spare lanes to derive keys ahead in")
	}
	fx = newFixture(t)
	data = fx.archive(t, testWriterOptions())
	path = filepath.Join(t.TempDir(), "archive")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	outer := NewOuterReader(bytes.NewReader(data))
	if _, _, err := outer.Next(); err != nil {
		t.Fatal(err)
	}
	head, err := outer.readAll()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(head)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range listMembers(t, data) {
		if strings.HasSuffix(m, ".enc") && !strings.HasPrefix(m, QubesXMLName) {
			chunks++
		}
	}
	return fx, path, data, h.BackupID, chunks
}

// readWithKeysAhead reads data, the fixture's archive, with ka and checks
// every file.
func readWithKeysAhead(t *testing.T, fx *fixture, data []byte, ka *KeysAhead) {
	t.Helper()
	opts := testReaderOptions()
	opts.KeysAhead = ka
	got, err := readArchive(t, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareDigests(t, got, fx.expected(t))
}

func lendAlways() (func(), bool) { return func() {}, true }

// busyDeriving keeps ordinary derivations running, beside which spare
// ones run, until stop is called.
func busyDeriving() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			scryptenc.NewKey([]byte("busy"), scryptenc.Params{LogN: 14, R: 8, P: 1})
		}
	}()
	return func() { cancel(); <-done }
}

// Keys derived ahead of a reader, beside other derivations, are the ones
// it uses: every chunk's, and the archive reads back whole.
func TestKeysAheadUsedByReader(t *testing.T) {
	fx, path, data, id, chunks := aheadFixture(t)
	stop := busyDeriving()
	ka := DeriveAhead([]AheadFile{{Path: path, BackupID: id}}, testPass, scryptenc.DefaultLimits, lendAlways)
	defer ka.Close()
	<-ka.done // each key derived beside the busy ones, one after another
	if derived, _ := ka.Counts(); derived != chunks {
		t.Fatalf("the scan ended with %d of %d keys derived", derived, chunks)
	}
	stop()
	readWithKeysAhead(t, fx, data, ka)
	if derived, taken := ka.Counts(); derived != chunks || taken != chunks {
		t.Errorf("%d keys derived ahead and %d taken, want %d of each", derived, taken, chunks)
	}
}

// A reader that gets ahead of the scan, with nothing else deriving (so
// that no spare lane runs), still reads the archive: it takes over the
// keys the scan queued and derives the others itself.
func TestKeysAheadOvertaken(t *testing.T) {
	fx, path, data, id, chunks := aheadFixture(t)
	ka := DeriveAhead([]AheadFile{{Path: path, BackupID: id}}, testPass, scryptenc.DefaultLimits, lendAlways)
	defer ka.Close()
	readWithKeysAhead(t, fx, data, ka)
	if derived, taken := ka.Counts(); taken != derived || derived > chunks {
		t.Errorf("%d keys derived ahead, %d taken, of %d chunks", derived, taken, chunks)
	}
}

// A key derived for a chunk header that the reader then finds altered is
// not used: the reader fails on that chunk as it would without it.
func TestKeysAheadAlteredChunk(t *testing.T) {
	_, path, data, id, _ := aheadFixture(t)
	stop := busyDeriving()
	ka := DeriveAhead([]AheadFile{{Path: path, BackupID: id}}, testPass, scryptenc.DefaultLimits, lendAlways)
	defer ka.Close()
	<-ka.done
	stop()
	// The HMAC of the first volume chunk's scrypt header.
	member := "vm1/private.img.000.enc"
	at := bytes.Index(data, []byte(member))
	if at < 0 {
		t.Fatal("no first volume chunk")
	}
	head := data[at+512 : at+512+scryptenc.HeaderSize]
	original := aheadID(head, ChunkKey(id, strings.TrimSuffix(member, ".enc"), testPass))
	altered := bytes.Clone(data)
	altered[at+512+80] ^= 1
	opts := testReaderOptions()
	opts.KeysAhead = ka
	_, err := readArchive(t, bytes.NewReader(altered), opts)
	if !errors.Is(err, ErrChunkMismatch) && !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), member) {
		t.Fatalf("altered chunk header: %v", err)
	}
	ka.mu.Lock()
	defer ka.mu.Unlock()
	if ka.keys[original] == nil {
		t.Error("the key derived for the chunk's original header was taken")
	}
}

// A reader lends derivation memory only when its share holds two or
// more derivations, and no more than its share.
func TestSpareDerivationLends(t *testing.T) {
	fx := newFixture(t)
	data := fx.archive(t, testWriterOptions())
	for _, kdfs := range []int{1, 2, 4} {
		opts := testReaderOptions()
		opts.MaxMemory = memoryReserve + int64(kdfs)*kdfMemory(testParams) + (ChunkSize+scryptenc.Overhead)*int64(kdfs+1)
		opts.Workers = 2
		r, err := NewReader(bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		for { // read it all: no derivation of its own runs after
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, f)
		}
		var releases []func()
		for range 8 {
			if release, ok := r.SpareDerivation(); ok {
				releases = append(releases, release)
			}
		}
		want := kdfs
		if kdfs < 2 {
			want = 0
		}
		if len(releases) != want {
			t.Errorf("share of %d derivations: %d lent, want %d", kdfs, len(releases), want)
		}
		for _, release := range releases {
			release()
			release() // a second call gives nothing back twice
		}
		if _, ok := r.SpareDerivation(); ok != (want > 0) {
			t.Errorf("share of %d derivations: lending after the releases: %v", kdfs, ok)
		}
		r.Close()
	}
}
