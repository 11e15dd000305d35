package archive

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"sync"
	"time"

	"pedos.dev/backup/internal/scryptenc"
)

// KeysAhead derives the chunk keys of archives that will be read later,
// while others are read, in the lanes their derivations leave free
// (scryptenc.Header.DeriveSpare): a restore of a chain reads its full
// backup first, whose chunk keys come one at a time, and then each
// increment, whose keys are then ready, or nearly, at no cost to the full
// backup's. Only local files can be looked into ahead of their reader;
// each is scanned for its chunks' 96-byte scrypt headers, seeking past
// the data. One key is derived ahead at a time, in memory lent by a
// reader's budget (Reader.SpareDerivation), so a chain's peak memory
// stays that of its largest archive.
//
// The scan reads unauthenticated bytes, as the reader does: a key derived
// ahead is used only for a chunk whose header and name are exactly those
// it was derived for, and proves itself against the header's HMAC there.
type KeysAhead struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	keys    map[[32]byte]*scryptenc.SpareKey
	claimed map[[32]byte]bool // chunks a reader got to first
	// derived counts keys derived ahead, taken the keys readers used.
	derived, taken int
}

// AheadFile is an archive to derive keys for: its path and its backup id
// (from its authenticated header).
type AheadFile struct {
	Path     string
	BackupID string
}

// maxKeysAhead bounds the keys held at once: far more than a chain's
// increments have chunks, few enough that a hostile archive of tiny
// chunks costs no more than reading it would.
const maxKeysAhead = 4096

// DeriveAhead starts deriving the chunk keys of files, in order, with
// pass and within limits (the zero value: scryptenc.DefaultLimits, as for
// a Reader); lend reserves the memory of one derivation
// (Reader.SpareDerivation). Close it when the files have been read.
func DeriveAhead(files []AheadFile, pass []byte, limits scryptenc.Limits, lend func() (release func(), ok bool)) *KeysAhead {
	ctx, cancel := context.WithCancel(context.Background())
	k := &KeysAhead{cancel: cancel, done: make(chan struct{}),
		keys: map[[32]byte]*scryptenc.SpareKey{}, claimed: map[[32]byte]bool{}}
	go func() {
		defer close(k.done)
		limits := limitsOrDefault(limits)
		for _, f := range files {
			if k.scan(ctx, f, pass, limits, lend) != nil {
				return
			}
		}
	}()
	return k
}

func aheadID(head, keyString []byte) [32]byte {
	h := sha256.New()
	h.Write(head[:scryptenc.HeaderSize])
	h.Write(keyString)
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// scan derives the keys of f's chunks, one after another, until f ends
// or ctx does. It stops at anything it cannot parse: the reader will say
// what is wrong.
func (k *KeysAhead) scan(ctx context.Context, f AheadFile, pass []byte, limits scryptenc.Limits, lend func() (func(), bool)) error {
	file, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer file.Close()
	outer := NewOuterReader(seekingReader{file})
	head := make([]byte, scryptenc.HeaderSize)
	for {
		name, _, err := outer.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		chunk, index, err := parseChunkMember(name)
		if err != nil || chunk == QubesXMLName { // qubes.xml was read at opening
			continue
		}
		if _, err := io.ReadFull(outer, head); err != nil {
			return err
		}
		h, err := scryptenc.ParseHeader(head)
		if err != nil || limits.Check(h.Params) != nil {
			return io.ErrUnexpectedEOF
		}
		keyString := ChunkKey(f.BackupID, ChunkName(chunk, index), pass)
		id := aheadID(head, keyString)
		k.mu.Lock()
		wanted := k.wantedLocked(id)
		k.mu.Unlock()
		if !wanted {
			continue
		}
		release, ok := k.waitLend(ctx, lend)
		if !ok {
			return ctx.Err()
		}
		k.mu.Lock()
		var sk *scryptenc.SpareKey
		if k.wantedLocked(id) { // still, after the wait
			sk = h.DeriveSpare(keyString)
		}
		if sk == nil {
			k.mu.Unlock()
			release()
			continue
		}
		k.keys[id] = sk
		k.derived++
		k.mu.Unlock()
		select {
		case <-sk.Done():
			release()
		case <-ctx.Done():
			sk.Drop()
			release()
			return ctx.Err()
		}
	}
}

// wantedLocked reports whether the chunk id still wants a key derived
// ahead: no reader got to it and none is held for it, with room for more.
func (k *KeysAhead) wantedLocked(id [32]byte) bool {
	return !k.claimed[id] && k.keys[id] == nil && len(k.keys) < maxKeysAhead
}

// waitLend waits until lend lends a derivation's memory.
func (k *KeysAhead) waitLend(ctx context.Context, lend func() (func(), bool)) (func(), bool) {
	for {
		if release, ok := lend(); ok {
			return release, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// take returns the key derived ahead for a chunk with this scrypt header
// and key string, if any; else it notes the chunk as read, so that none
// is derived for it.
func (k *KeysAhead) take(head, keyString []byte) *scryptenc.SpareKey {
	id := aheadID(head, keyString)
	k.mu.Lock()
	defer k.mu.Unlock()
	sk := k.keys[id]
	if sk == nil {
		k.claimed[id] = true
		return nil
	}
	delete(k.keys, id)
	k.taken++
	return sk
}

// Counts reports how many keys were derived ahead and how many of them
// readers used.
func (k *KeysAhead) Counts() (derived, taken int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.derived, k.taken
}

// Close stops deriving and drops the keys no reader took.
func (k *KeysAhead) Close() {
	k.cancel()
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, sk := range k.keys {
		sk.Drop()
		delete(k.keys, id)
	}
}

// seekingReader skips a member's data by seeking (OuterReader copies
// what it skips through io.Discard otherwise).
type seekingReader struct{ f *os.File }

func (s seekingReader) Read(p []byte) (int, error) { return s.f.Read(p) }

func (s seekingReader) Discard(n int64) (int64, error) {
	if _, err := s.f.Seek(n, io.SeekCurrent); err != nil {
		return 0, err
	}
	return n, nil
}
