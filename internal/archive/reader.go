package archive

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"pedos.dev/backup/internal/compress"
	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/memlimit"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

// ReaderOptions configure a format 4 archive reader.
type ReaderOptions struct {
	Passphrase []byte
	Limits     scryptenc.Limits // zero value: scryptenc.DefaultLimits
	// ForceFilter is a compression filter the user named explicitly. Only
	// then may a program be run to decompress; a name from the untrusted
	// header maps to built-in decoders or fails.
	ForceFilter string
	// Select chooses the files to decrypt; the others are read past without
	// key derivation. nil selects all.
	Select  func(file string) bool
	Workers int // concurrent chunk decryptions; 0 means one per CPU
	// MaxChunkSize bounds one chunk's plaintext, which is held in memory
	// whole; 0 means DefaultMaxChunkSize.
	MaxChunkSize int
	// MaxMemory is the memory budget in bytes for chunk buffers and key
	// derivations together (see memory.go); 0 means half of what the
	// machine and the process's cgroup have available.
	MaxMemory int64
	// KeyCost, if set, is told the cost of the archive's key derivations
	// (the header's, which the chunks share) before the first runs, from
	// bytes not yet authenticated: a costly or forged archive shows.
	KeyCost func(scryptenc.Params)
	// Buffers, if set, is a pool of chunk buffers this reader shares with
	// readers before and after it (see BufferPool); nil: its own.
	Buffers *BufferPool
	// KeysAhead, if set, holds chunk keys derived ahead for this archive
	// (also UseKeysAhead).
	KeysAhead *KeysAhead
}

// DefaultMaxChunkSize admits chunks of up to 256 MiB: the reference
// writer's chunk size is a parameter (100 MiB unless changed), and every
// chunk being read is held in memory.
const DefaultMaxChunkSize = 256 << 20

// Limits on the metadata files, as in the reference reader.
const (
	maxHMACSize      = 4096
	maxQubesXMLChunk = 1 << 20
	// MaxQubesXML bounds the decompressed qubes.xml.
	MaxQubesXML = 16 << 20
)

// Reader reads a format 4 archive from a stream, once, front to back.
// Chunks are read ahead and decrypted on up to Workers goroutines while the
// caller consumes earlier files; chunk buffers and key derivations stay
// within the memory budget (MaxMemory), split between them once the
// header's scrypt parameters are known.
type Reader struct {
	opts      ReaderOptions
	header    Header
	codec     compress.Codec
	qubesXML  []byte
	companion *Companion // stored after qubes.xml in its member, if any
	outer     *OuterReader
	// headerKey is the key that opened backup-header.hmac; the manifest's
	// authentication key is derived from it.
	headerKey *scryptenc.Key

	jobs    chan *chunkJob
	buffers *BufferPool     // chunk buffers: its own or shared
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	abort   <-chan struct{} // ctx.Done()
	kdf     chan struct{}   // one token per running key derivation

	kdfMemory    *semaphore.Weighted // MiB of key-derivation memory in use
	kdfBudgetMiB int64
	kdfWeight    int64 // MiB of one derivation at the header's cost
	// ahead holds keys derived ahead for this archive (UseKeysAhead).
	ahead atomic.Pointer[KeysAhead]
	// peakKDFMiB is the most derivation memory held at once (for tests).
	kdfInUse, peakKDFMiB int64

	// cut is the writer's chunk size as the archive shows it (the
	// plaintext of a chunk that another of its file follows); 0 until then.
	cut int

	peek    *chunkJob
	current *File
	failed  error // a chunk failed: the rest of the stream is not trusted

	// producing is the file whose member the producer is reading, once the
	// member's place in the sequence is checked. It goes with a failure, so
	// that the file before it, whose end that place proved, ends cleanly.
	producing string
	// pastFiles: the producer has passed the last file (at the manifest).
	pastFiles bool
	// inputRead is closed when the producer stops reading the input: at
	// its end, or at a failure.
	inputRead chan struct{}

	// claimed is backup-header as read, before it is proven: the producer
	// starts with its backup id while the header's own key derivation
	// runs. Nothing reaches the caller until proven closes.
	claimed Header
	proven  chan struct{}

	mu   sync.Mutex
	seen []ManifestFile
}

type chunkJob struct {
	file  string
	index int
	done  chan struct{}
	buf   []byte // the chunk as read; plain is decrypted in place within it
	plain []byte
	err   error // set before done closes; on a terminal job: io.EOF or the failure
	final bool  // no more jobs follow; file is then the one the failure concerns ("" if none)
	after bool  // final, and the failure came after the last file had ended
	// ends marks only that the file before it has ended: sent when the
	// next file begins, before Select is asked about it, which may wait
	// (for a data pass that begins only once this file has been read).
	ends bool
}

// NewReader authenticates the header and reads qubes.xml. It fails with
// ErrBadPassphrase before anything else when the passphrase is wrong.
func NewReader(in io.Reader, opts ReaderOptions) (*Reader, error) {
	opts.Limits = limitsOrDefault(opts.Limits)
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxChunkSize <= 0 {
		opts.MaxChunkSize = DefaultMaxChunkSize
	}
	if opts.Select == nil {
		opts.Select = func(string) bool { return true }
	}
	if opts.MaxMemory <= 0 {
		opts.MaxMemory = defaultBudget()
	}
	r := &Reader{
		opts:      opts,
		outer:     NewOuterReader(in),
		jobs:      make(chan *chunkJob, readDerivations(opts.Workers)+1),
		buffers:   opts.Buffers,
		kdf:       make(chan struct{}, readDerivations(opts.Workers)),
		inputRead: make(chan struct{}),
	}
	if r.buffers == nil {
		r.buffers = &BufferPool{}
	}
	r.ahead.Store(opts.KeysAhead)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.abort = r.ctx.Done()
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// limitsOrDefault is l, or scryptenc.DefaultLimits for the zero value.
func limitsOrDefault(l scryptenc.Limits) scryptenc.Limits {
	if l == (scryptenc.Limits{}) {
		return scryptenc.DefaultLimits
	}
	return l
}

// readDerivations is how many chunk keys the reader derives at once:
// Lanes per worker, so that with AVX2 every core runs a pair (kdf2), as
// the writer does. Archives of many small files are bound by their key
// derivations alone; for big chunks, Workers derivations measured the
// same within the noise (3.9 s against 3.8 s for 512 MiB of data).
func readDerivations(workers int) int { return workers * scryptenc.Lanes }

// planMemory splits the budget between chunk buffers and derivations at
// the cost the header's .hmac shows (the writer's chunks have the same),
// before any derivation runs: a budget that does not hold one of each is
// refused at once.
func (r *Reader) planMemory(mac []byte) error {
	var p scryptenc.Params
	if h, err := scryptenc.ParseHeader(mac); err == nil {
		if err := r.opts.Limits.Check(h.Params); err != nil {
			return fmt.Errorf("%s: %w (use the force option to allow it)", HeaderHMACName, err)
		}
		p = h.Params
		if r.opts.KeyCost != nil {
			r.opts.KeyCost(p)
		}
	}
	chunk := int64(ChunkSize + scryptenc.Overhead)
	kdf := kdfMemory(p)
	kdfs := readDerivations(r.opts.Workers)
	plan, err := planMemory("reading this backup", r.opts.MaxMemory, chunk, kdf, kdfs+3, kdfs, p)
	if err != nil {
		return err
	}
	// A shared pool keeps the size the first of its readers planned: the
	// archives of a chain have the same chunk size and, as their writer
	// made them, the same scrypt cost.
	r.buffers.size(plan.buffers, int64(plan.buffers)*chunk, kdfs+3)
	r.kdfWeight = max((kdf+1<<20-1)>>20, 1)
	r.kdfBudgetMiB = int64(plan.kdfs) * r.kdfWeight
	r.kdfMemory = semaphore.NewWeighted(r.kdfBudgetMiB)
	return nil
}

// start authenticates the header and reads qubes.xml. The producer begins
// at once with the backup id the header claims, so that the key
// derivations of the header, qubes.xml and the first chunks run together;
// if the header then fails to prove genuine, all of it is discarded.
func (r *Reader) start() error {
	header, mac, err := r.readHeaderMembers()
	if err != nil {
		return err
	}
	if err := r.planMemory(mac); err != nil {
		return err
	}
	claimed, err := ParseHeader(header)
	if err != nil || claimed.BackupID == "" {
		// Say whether the passphrase or the header is wrong.
		if verr := r.verifyHeader(header, mac); verr != nil {
			return verr
		}
		return fmt.Errorf("%w: backup-header has no backup-id", ErrCorrupt)
	}
	r.claimed, r.proven = claimed, make(chan struct{})
	headerDone := make(chan error, 1)
	go func() { headerDone <- r.verifyHeader(header, mac) }()
	go r.produce()
	if err := <-headerDone; err != nil {
		return err
	}
	close(r.proven)

	f, err := r.Next()
	if err == io.EOF {
		err = fmt.Errorf("%w: no qubes.xml", ErrTruncated)
	}
	if err != nil {
		return err
	}
	if f.Name != QubesXMLName {
		return fmt.Errorf("%w: %s where qubes.xml belongs", ErrUnexpectedMember, f.Name)
	}
	var out bytes.Buffer
	_, name, content, err := sparsetar.ExtractFileWithCompanion(f, QubesXMLName, &out, MaxQubesXML, MaxQubesXML)
	if err != nil {
		return asArchiveError(QubesXMLName, err)
	}
	r.qubesXML = out.Bytes()
	if name != "" {
		r.companion = &Companion{Name: name, Data: content}
	}
	return nil
}

// asArchiveError keeps an error that already says what is wrong with the
// archive (a failed chunk, a truncation) and calls any other failure to
// read a file's content corruption.
func asArchiveError(file string, err error) error {
	for _, known := range []error{ErrChunkMismatch, ErrCorrupt, ErrTruncated, ErrIncomplete,
		ErrUnexpectedMember, ErrTooLarge, scryptenc.ErrTooExpensive, errAborted} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, file, err)
}

// Header returns the authenticated backup header.
func (r *Reader) Header() Header { return r.header }

// QubesXML returns the backup's VM database, decrypted and unpacked.
func (r *Reader) QubesXML() []byte { return r.qubesXML }

// Companion returns the file stored after qubes.xml in its member, or nil.
// What it may be is the caller's to judge: an archive is what its reader
// expects, and a companion nobody expects is to be refused.
func (r *Reader) Companion() *Companion { return r.companion }

// Seen lists the files and chunks read so far (all of them once Next has
// returned io.EOF), for checks a caller makes against qubes.xml.
func (r *Reader) Seen() []ManifestFile {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ManifestFile(nil), r.seen...)
}

// Close stops reading ahead. It does not close the input. The idle chunk
// buffers are let go at once: a closed reader may stay referenced for a
// while (the older archives of a chain, until the restore ends), and its
// buffers of up to 256 MiB each should not. A shared pool's buffers stay
// for its other readers: its owner drains it.
func (r *Reader) Close() error {
	r.cancel()
	if r.opts.Buffers == nil {
		r.buffers.Drain()
	}
	return nil
}

// InputRead is closed once the reader has stopped reading its input: it
// has read it to the end, or met a failure. It then takes no more chunk
// buffers: the next reader of a BufferPool may start.
func (r *Reader) InputRead() <-chan struct{} { return r.inputRead }

func (r *Reader) readSmall(want string, limit int64) ([]byte, error) {
	name, size, err := r.outer.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: stream ends before %s", ErrTruncated, want)
	}
	if err != nil {
		return nil, err
	}
	if name != want {
		return nil, fmt.Errorf("%w: found %s where %s belongs", ErrUnexpectedMember, elide.Quote(name), want)
	}
	if size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, want, size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r.outer, b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", want, err)
	}
	return b, nil
}

// readHeaderMembers reads backup-header and its .hmac, and recognises
// archives of other formats.
func (r *Reader) readHeaderMembers() (header, mac []byte, err error) {
	name, size, err := r.outer.Next()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%w: the input is empty", ErrNotBackup)
	}
	if err != nil {
		return nil, nil, err
	}
	if name != HeaderName {
		if _, _, cerr := parseChunkMember(name + ".enc"); cerr == nil || bytes.HasSuffix([]byte(name), []byte(".hmac")) {
			return nil, nil, fmt.Errorf("%w: no backup-header (first member %s): a format 2 backup", ErrUnsupportedVersion, elide.Quote(name))
		}
		return nil, nil, fmt.Errorf("%w: first member is %s, not backup-header", ErrNotBackup, elide.Quote(name))
	}
	if size > MaxHeaderSize {
		return nil, nil, fmt.Errorf("%w: backup-header is %d bytes (limit %d)", ErrTooLarge, size, MaxHeaderSize)
	}
	header = make([]byte, size)
	if _, err := io.ReadFull(r.outer, header); err != nil {
		return nil, nil, fmt.Errorf("reading backup-header: %w", err)
	}
	if mac, err = r.readSmall(HeaderHMACName, maxHMACSize); err != nil {
		return nil, nil, err
	}
	if !bytes.HasPrefix(mac, []byte("scrypt")) {
		if !looksLikeOpenSSLHMAC(mac) {
			return nil, nil, fmt.Errorf("%w: %s is neither scrypt data nor an OpenSSL HMAC", ErrCorrupt, HeaderHMACName)
		}
		// An openssl HMAC text file: format 2 or 3.
		version := "2"
		if h, err := ParseHeader(header); err == nil && h.Version != 0 {
			version = fmt.Sprint(h.Version)
		}
		return nil, nil, fmt.Errorf("%w: format %s (OpenSSL-based) backups are not supported yet", ErrUnsupportedVersion, version)
	}
	return header, mac, nil
}

// verifyHeader decrypts backup-header.hmac, compares it with the header
// and parses the header. It keeps the derived key, which also
// authenticates the manifest.
func (r *Reader) verifyHeader(header, mac []byte) error {
	plain, key, err := r.decrypt(mac, HeaderKey(r.opts.Passphrase), false)
	switch {
	case errors.Is(err, scryptenc.ErrBadPassphrase):
		return ErrBadPassphrase
	case errors.Is(err, scryptenc.ErrTooExpensive):
		return fmt.Errorf("%s: %w (use the force option to allow it)", HeaderHMACName, err)
	case err != nil:
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, HeaderHMACName, err)
	}
	if !bytes.Equal(plain, header) {
		return fmt.Errorf("%w: backup-header does not match its authenticated copy", ErrCorrupt)
	}
	h, err := ParseHeader(header)
	if err != nil {
		return err
	}
	if h.Version != 4 {
		return fmt.Errorf("%w: header says version %d but is authenticated by scrypt", ErrCorrupt, h.Version)
	}
	r.header, r.headerKey = h, key
	if h.Compressed {
		filter, forced := h.CompressionFilter, false
		if r.opts.ForceFilter != "" {
			filter, forced = r.opts.ForceFilter, true
		}
		if r.codec, err = compress.ForReading(filter, forced); err != nil {
			return err
		}
	}
	return nil
}

// looksLikeOpenSSLHMAC recognises `openssl dgst -hmac` output, such as
// "(stdin)= 3f2a…" or "SHA2-512(stdin)= 3f2a…".
func looksLikeOpenSSLHMAC(b []byte) bool {
	_, hexPart, ok := bytes.Cut(bytes.TrimSpace(b), []byte("= "))
	if !ok || len(hexPart) < 32 {
		return false
	}
	_, err := hex.DecodeString(string(hexPart))
	return err == nil
}

// chunkError names the chunk in a decryption failure and says what it
// means for a chunk.
func chunkError(name string, err error) error {
	switch {
	case errors.Is(err, scryptenc.ErrBadPassphrase):
		// The header proved the passphrase, so the chunk is not this one.
		return fmt.Errorf("%s.enc: %w", name, ErrChunkMismatch)
	case errors.Is(err, scryptenc.ErrTooExpensive), errors.Is(err, errAborted):
		return fmt.Errorf("%s.enc: %w", name, err)
	default:
		return fmt.Errorf("%s.enc: %w: %v", name, ErrCorrupt, err)
	}
}

// decrypt is scryptenc.Open with the key derivation admitted by the
// reader's budget: together, derivations use no more memory than one chunk
// may ask for. Each chunk's parameters come from unkeyed bytes, so without
// the shared budget a hostile archive could make every worker allocate the
// per-chunk maximum at the same time. Chunk decryptions also hold one of
// the readDerivations slots, taken by the producer in chunk order
// (slotHeld) so that the chunk needed next is never starved by later ones;
// the header's one-off derivation takes memory only.
func (r *Reader) decrypt(enc, keyString []byte, slotHeld bool) ([]byte, *scryptenc.Key, error) {
	k, err := r.deriveKey(enc, keyString, slotHeld)
	if err != nil {
		return nil, nil, err
	}
	plain, err := k.OpenInPlace(enc[scryptenc.HeaderSize:])
	return plain, k, err
}

// deriveKey is the expensive half of decrypt; it needs only the file's
// 96-byte header.
func (r *Reader) deriveKey(head, keyString []byte, slotHeld bool) (*scryptenc.Key, error) {
	if slotHeld {
		defer func() { <-r.kdf }()
	}
	h, err := scryptenc.ParseHeader(head)
	if err != nil {
		return nil, err
	}
	if err := r.opts.Limits.Check(h.Params); err != nil {
		return nil, err
	}
	// A chunk of another cost than the header's may not fit the share
	// planned for derivations.
	weight := (kdfMemory(h.Params) + 1<<20 - 1) >> 20
	if weight > r.kdfBudgetMiB {
		return nil, &memlimit.BudgetError{What: "deriving a key at " + h.Params.String(), Need: weight << 20,
			Budget: r.kdfBudgetMiB << 20, Detail: "the share of the budget left for key derivations"}
	}
	if ka := r.ahead.Load(); ka != nil {
		if sk := ka.take(head, keyString); sk != nil {
			// Derived ahead, in memory lent for it: what is left of
			// the derivation runs now.
			k, err := sk.Key(r.ctx)
			if err != nil && r.ctx.Err() != nil {
				return nil, errAborted
			}
			if !errors.Is(err, scryptenc.ErrSpareDropped) {
				return k, err
			}
		}
	}
	if err := r.kdfMemory.Acquire(r.ctx, weight); err != nil {
		return nil, errAborted
	}
	r.noteKDF(weight)
	defer func() {
		r.noteKDF(-weight)
		r.kdfMemory.Release(weight)
	}()
	// A closed reader (a cancelled restore) stops its derivations too.
	k, err := h.DeriveKeyContext(r.ctx, keyString)
	if err != nil && r.ctx.Err() != nil {
		return nil, errAborted
	}
	return k, err
}

// UseKeysAhead has the reader take the chunk keys k derived ahead.
func (r *Reader) UseKeysAhead(k *KeysAhead) { r.ahead.Store(k) }

// SpareDerivation lends, when the reader's share for key derivations has
// room beside those it runs, the memory of one more at the header's cost,
// for a key derived ahead (KeysAhead); release gives it back. A share of
// one derivation is never lent: the reader could then not derive at all.
func (r *Reader) SpareDerivation() (release func(), ok bool) {
	if r.kdfMemory == nil || r.kdfBudgetMiB < 2*r.kdfWeight || !r.kdfMemory.TryAcquire(r.kdfWeight) {
		return nil, false
	}
	r.noteKDF(r.kdfWeight)
	var once sync.Once
	return func() {
		once.Do(func() {
			r.noteKDF(-r.kdfWeight)
			r.kdfMemory.Release(r.kdfWeight)
		})
	}, true
}

// noteKDF keeps the peak of derivation memory held, for tests.
func (r *Reader) noteKDF(delta int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kdfInUse += delta
	r.peakKDFMiB = max(r.peakKDFMiB, r.kdfInUse)
}

// record notes a chunk as seen, with its trailer, for the completeness check.
func (r *Reader) record(file string, index int, enc []byte) {
	trailer := ""
	if len(enc) >= scryptenc.TrailerSize {
		trailer = hex.EncodeToString(enc[len(enc)-scryptenc.TrailerSize:])
	}
	r.recordTrailer(file, index, int64(len(enc)), trailer)
}

func (r *Reader) recordTrailer(file string, index int, size int64, trailer string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if index == 0 {
		r.seen = append(r.seen, ManifestFile{Name: file})
	}
	f := &r.seen[len(r.seen)-1]
	f.Chunks = append(f.Chunks, ManifestChunk{Size: size, HMAC: trailer})
}

// produce reads members in order, checks their names and sequence, and
// hands selected chunks to decryption. Any failure ends the stream with a
// terminal job carrying the error, delivered after the chunks before it.
func (r *Reader) produce() {
	err := r.produceAll()
	close(r.inputRead)
	if err == nil {
		err = io.EOF
	}
	select {
	case r.jobs <- &chunkJob{final: true, err: err, file: r.producing, after: r.pastFiles, done: closedChan}:
	case <-r.abort:
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (r *Reader) produceAll() error {
	files := map[string]bool{}
	file, index, lastPlain := "", 0, -1
	var ended []chunkEnd // the files before file, with their last chunks
	var manifest *Manifest
	emitted := false // jobs were sent for file: a stream may be reading it
	// endFile checks that file, now followed by another file, the manifest
	// or the end of the stream, did not end with a full chunk.
	endFile := func() error {
		if file == "" {
			return nil
		}
		e := chunkEnd{file, index, lastPlain}
		ended = append(ended, e)
		return r.checkEnd(e)
	}
	for {
		member, size, err := r.outer.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if manifest != nil {
			return fmt.Errorf("%w: %s after the manifest", ErrUnexpectedMember, elide.Quote(member))
		}
		if member == ManifestName {
			if !r.claimed.Manifest {
				return fmt.Errorf("%w: %s is not announced by the header", ErrUnexpectedMember, member)
			}
			if err := endFile(); err != nil {
				return err
			}
			// The last file ended here: a failure from now on (the
			// manifest, members after it) belongs to no file.
			file = ""
			r.producing, r.pastFiles = "", true
			if manifest, err = r.readManifest(size); err != nil {
				return err
			}
			continue
		}
		f, i, err := parseChunkMember(member)
		if err != nil {
			return err
		}
		// qubes.xml comes first, in a single chunk of at most 1 MiB, as
		// the reference reader insists too.
		if (len(files) == 0) != (f == QubesXMLName) || (f == QubesXMLName && (i != 0 || size > maxQubesXMLChunk)) {
			if f == QubesXMLName && size > maxQubesXMLChunk {
				return fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, member, size, maxQubesXMLChunk)
			}
			return fmt.Errorf("%w: %s where qubes.xml.000.enc belongs", ErrUnexpectedMember, member)
		}
		plainSize := int(size) - scryptenc.Overhead
		if plainSize < 0 {
			return fmt.Errorf("%w: %s is %d bytes, less than a chunk's %d bytes of header and trailer", ErrCorrupt, member, size, scryptenc.Overhead)
		}
		if size > int64(r.opts.MaxChunkSize)+scryptenc.Overhead {
			return &ChunkTooLargeError{Member: member, Size: size - scryptenc.Overhead, Max: int64(r.opts.MaxChunkSize)}
		}
		switch {
		case f == file && i == index+1:
			// Any chunk size is accepted: each chunk is authenticated under
			// its own name, so only the writer chose it.
			if r.cut == 0 && lastPlain > 0 {
				r.cut = lastPlain
				for _, e := range ended {
					if err := r.checkEnd(e); err != nil {
						return err
					}
				}
			}
		case f != file && i == 0 && !files[f]:
			if err := endFile(); err != nil {
				return err
			}
			files[f] = true
		case f != file && files[f]:
			return fmt.Errorf("%w: %s: file %s appears twice", ErrUnexpectedMember, member, f)
		default:
			want := ChunkName(f, 0)
			if f == file {
				want = ChunkName(file, index+1)
			}
			return fmt.Errorf("%w: %s where %s.enc was expected", ErrIncomplete, member, want)
		}
		if i == 0 && emitted {
			emitted = false
			select {
			case r.jobs <- &chunkJob{ends: true, done: closedChan}:
			case <-r.abort:
				return errAborted
			}
		}
		file, index, lastPlain = f, i, plainSize
		r.producing = f

		if f != QubesXMLName && !r.opts.Select(f) {
			trailer, err := r.skipChunk(size)
			if err != nil {
				return fmt.Errorf("reading %s: %w", member, err)
			}
			r.recordTrailer(f, i, size, trailer)
			continue
		}
		if err := r.readChunk(f, i, size); err != nil {
			return err
		}
		emitted = true
	}
	if err := endFile(); err != nil {
		return err
	}
	if r.claimed.Manifest && manifest == nil {
		return fmt.Errorf("%w: the manifest announced by the header is missing (archive cut short?)", ErrIncomplete)
	}
	if manifest != nil {
		return manifest.compare(r.Seen())
	}
	return nil
}

// chunkEnd is the last chunk of a file: its index and plaintext size.
type chunkEnd struct {
	file  string
	index int
	plain int
}

// checkEnd applies the full-last-chunk rule: a writer starts a new chunk
// as soon as one is full (at an exact multiple, an empty one), so a file
// whose last chunk is full has lost the chunks after it. The writer's
// chunk size is the one the archive shows, or until a file shows it, the
// format's 100 MiB; files that ended before it showed are checked again
// once it does.
func (r *Reader) checkEnd(e chunkEnd) error {
	cut := r.cut
	if cut == 0 {
		cut = ChunkSize
	}
	if e.plain == cut {
		return fmt.Errorf("%w: %s: chunks after %s are missing (it holds a full %s, so more must follow)",
			ErrIncomplete, e.file, ChunkName(e.file, e.index), mib(int64(cut)))
	}
	return nil
}

// ChunkTooLargeError: a chunk above ReaderOptions.MaxChunkSize, which
// the user may raise for an archive they trust. It is an ErrTooLarge.
type ChunkTooLargeError struct {
	Member    string
	Size, Max int64 // plaintext bytes
}

func (e *ChunkTooLargeError) Error() string {
	return fmt.Sprintf("%v: %s holds %s, above the %s a chunk may take in memory (the maximum chunk size)",
		ErrTooLarge, e.Member, mib(e.Size), mib(e.Max))
}

func (e *ChunkTooLargeError) Unwrap() error { return ErrTooLarge }

// mib says a size in MiB, or in bytes when it is not a whole number of them.
func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// readManifest reads the manifest and its .hmac, which must authenticate
// it under the key derived from the header's.
func (r *Reader) readManifest(size int64) (*Manifest, error) {
	if size > maxManifest {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, ManifestName, size, maxManifest)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r.outer, data); err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	tag, err := r.readSmall(ManifestHMACName, maxHMACSize)
	select {
	case <-r.proven: // headerKey is set
	case <-r.abort:
		return nil, errAborted
	}
	if err == nil && !manifestTagValid(r.headerKey, r.header.BackupID, data, tag) {
		err = fmt.Errorf("%w: %s does not authenticate the manifest", ErrCorrupt, ManifestHMACName)
	}
	if err != nil {
		if errors.Is(err, ErrTruncated) {
			err = fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
		return nil, err
	}
	return parseManifest(data, r.header)
}

// skipChunk reads past an unselected chunk, keeping only its trailer.
func (r *Reader) skipChunk(size int64) (string, error) {
	var tail tailWriter
	if _, err := io.CopyN(&tail, r.outer, size); err != nil {
		return "", err
	}
	return hex.EncodeToString(tail.last()), nil
}

type tailWriter struct{ buf []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-scryptenc.TrailerSize:]...)
	}
	return len(p), nil
}

func (t *tailWriter) last() []byte {
	return t.buf[max(0, len(t.buf)-scryptenc.TrailerSize):]
}

// readChunk buffers one selected chunk and starts its decryption.
func (r *Reader) readChunk(file string, index int, size int64) error {
	select {
	case r.buffers.slots <- struct{}{}:
	case <-r.abort:
		return errAborted
	}
	name := ChunkName(file, index)
	enc, err := r.buffer(name+".enc", size)
	if err != nil {
		<-r.buffers.slots
		return err
	}
	// The key derivation needs only the 96-byte scrypt header, so it runs
	// while the rest of the chunk is still arriving: on a disk or network
	// source, reading 100 MiB takes as long as the derivation.
	head := enc[:scryptenc.HeaderSize] // chunks are at least 128 bytes
	if _, err := io.ReadFull(r.outer, head); err != nil {
		<-r.buffers.slots
		return fmt.Errorf("reading %s.enc: %w", name, err)
	}
	select {
	case r.kdf <- struct{}{}:
	case <-r.abort:
		<-r.buffers.slots
		return errAborted
	}
	var key *scryptenc.Key
	var keyErr error
	keyReady := make(chan struct{})
	go func() {
		defer close(keyReady)
		key, keyErr = r.deriveKey(head, ChunkKey(r.claimed.BackupID, name, r.opts.Passphrase), true)
	}()
	if _, err := io.ReadFull(r.outer, enc[scryptenc.HeaderSize:]); err != nil {
		<-keyReady // it reads the buffer's head
		<-r.buffers.slots
		return fmt.Errorf("reading %s.enc: %w", name, err)
	}
	r.record(file, index, enc)
	job := &chunkJob{file: file, index: index, buf: enc, done: make(chan struct{})}
	go func() {
		defer close(job.done)
		<-keyReady
		if keyErr == nil {
			job.plain, keyErr = key.OpenInPlace(enc[scryptenc.HeaderSize:])
		}
		if keyErr != nil {
			job.err = chunkError(name, keyErr)
		}
	}()
	select {
	case r.jobs <- job:
		return nil
	case <-r.abort:
		return errAborted
	}
}

func (r *Reader) nextJob() (*chunkJob, error) {
	if j := r.peek; j != nil {
		r.peek = nil
		return j, nil
	}
	select {
	case j := <-r.jobs:
		return j, nil
	case <-r.abort:
		return nil, errors.New("archive reader is closed")
	}
}

// buffer returns a chunk buffer of size bytes, reusing a released one:
// fresh 100 MiB allocations would cost page faults and GC work per chunk.
// Buffers count against the budget's share for them while they exist,
// free or in use; when a new one does not fit, the free ones go first.
func (r *Reader) buffer(name string, size int64) ([]byte, error) {
	pool := r.buffers
	select {
	case b := <-pool.free:
		if int64(cap(b)) >= size {
			return b[:size], nil
		}
		pool.memory.Release(int64(cap(b)))
	default:
	}
	if size > pool.budget {
		return nil, &memlimit.BudgetError{What: "reading " + name, Need: size, Budget: pool.budget,
			Detail: "the share of the budget left for chunk buffers"}
	}
	capacity := max(size, int64(r.cut)+scryptenc.Overhead)
	if capacity > pool.budget {
		capacity = size
	}
	if !pool.memory.TryAcquire(capacity) {
		pool.Drain()
		if err := pool.memory.Acquire(r.ctx, capacity); err != nil {
			return nil, errAborted
		}
	}
	return chunkBuffer(int(size), int(capacity)), nil
}

// release returns a consumed chunk's buffer and its slot.
func (r *Reader) release(j *chunkJob) {
	if !j.final {
		<-j.done
		j.plain = nil
		select {
		case r.buffers.free <- j.buf:
		default:
			r.buffers.memory.Release(int64(cap(j.buf)))
		}
		j.buf = nil
		<-r.buffers.slots
	}
}

// FailedIn names the file whose member the reader was reading when the
// stream failed, once Next has returned that failure: the files before it
// ended cleanly. "" when no failure was seen or its file is not known.
func (r *Reader) FailedIn() string {
	if j := r.peek; j != nil && j.final && j.err != io.EOF {
		return j.file
	}
	return ""
}

// FailedAfterFiles reports whether the stream failed after its last file
// had ended (in the manifest, or in members after it): the files all
// ended cleanly, and the failure belongs to none of them.
func (r *Reader) FailedAfterFiles() bool {
	j := r.peek
	return j != nil && j.final && j.err != io.EOF && j.after
}

// Next returns the next selected file. The previous file's unread data is
// skipped. At the end it returns io.EOF only if the archive proved
// complete; otherwise the error says what is missing or wrong.
func (r *Reader) Next() (*File, error) {
	if r.current != nil {
		r.current.discard()
		r.current = nil
	}
	if r.failed != nil {
		return nil, r.failed
	}
	j, err := r.nextJob()
	for err == nil && j.ends {
		j, err = r.nextJob()
	}
	if err != nil {
		return nil, err
	}
	if j.final {
		r.peek = j // keep answering with the same result
		return nil, j.err
	}
	f := &File{
		Name: j.file,
		raw:  chunkStream{r: r, file: j.file, first: j},
		out:  make(chan []byte, decodeDepth),
		free: make(chan []byte, decodeDepth+2),
		stop: make(chan struct{}),
	}
	go f.decode(r.codec)
	r.current = f
	return f, nil
}

// Decompression runs ahead of the caller by up to decodeDepth blocks, so
// the caller's own work (parsing the inner tar, writing a volume) overlaps
// with it: decompression is the one step of reading that cannot be spread
// over cores.
const (
	decodeDepth = 8
	decodeBlock = 256 << 10
)

// File is one stored file; Read returns its inner tar stream, decrypted and
// decompressed. An error, not io.EOF, ends a damaged or incomplete file.
type File struct {
	Name string
	raw  chunkStream // read only by the decode goroutine

	out   chan []byte   // decompressed blocks, closed when decode ends
	free  chan []byte   // blocks the caller has finished with
	stop  chan struct{} // closed to make decode give up
	err   error         // how decode ended (io.EOF: cleanly); set before out closes
	cur   []byte        // unread part of block
	block []byte
}

func (f *File) decode(codec compress.Codec) {
	defer close(f.out)
	var src io.Reader = &f.raw
	if codec != nil {
		zr, err := codec.NewReader(&f.raw)
		if err != nil {
			f.err = fmt.Errorf("%w: %s: %v", ErrCorrupt, f.Name, err)
			return
		}
		defer zr.Close()
		src = zr
	}
	for {
		var buf []byte
		select {
		case buf = <-f.free:
		default:
			buf = make([]byte, decodeBlock)
		}
		n, err := 0, error(nil)
		for n < len(buf) && err == nil {
			var k int
			k, err = src.Read(buf[n:])
			n += k
		}
		if n > 0 {
			select {
			case f.out <- buf[:n]:
			case <-f.stop:
				f.err = errAborted
				return
			}
		}
		if err == io.EOF && codec != nil {
			// The decompressor stopped; anything left in the chunks is
			// data this reader would silently ignore, so refuse it.
			if rest, rerr := io.Copy(io.Discard, &f.raw); rerr != nil {
				err = rerr
			} else if rest > 0 {
				err = fmt.Errorf("%w: %s: %d bytes after the end of the compressed stream", ErrCorrupt, f.Name, rest)
			}
		}
		if err != nil {
			f.err = err
			return
		}
	}
}

func (f *File) Read(p []byte) (int, error) {
	for len(f.cur) == 0 {
		if f.block != nil {
			f.recycle()
		}
		b, ok := <-f.out
		if !ok {
			return 0, f.err
		}
		f.cur, f.block = b, b
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

func (f *File) recycle() {
	select {
	case f.free <- f.block[:cap(f.block)]:
	default:
	}
	f.block, f.cur = nil, nil
}

// discard stops decoding and skips the file's remaining chunks.
func (f *File) discard() {
	close(f.stop)
	for range f.out {
	}
	f.raw.skip()
}

// chunkStream concatenates the decrypted chunks of one file.
type chunkStream struct {
	r     *Reader
	file  string
	first *chunkJob
	cur   *chunkJob
	pos   int
	ended bool
	err   error
}

func (c *chunkStream) Read(p []byte) (int, error) {
	for {
		if c.err != nil {
			return 0, c.err
		}
		if c.ended {
			return 0, io.EOF
		}
		if c.cur != nil && c.pos < len(c.cur.plain) {
			n := copy(p, c.cur.plain[c.pos:])
			c.pos += n
			return n, nil
		}
		c.advance()
	}
}

// advance moves to the file's next chunk, or marks the end when the next
// job belongs to another file or ends the stream.
func (c *chunkStream) advance() {
	if c.cur != nil {
		c.r.release(c.cur)
		c.cur = nil
	}
	var j *chunkJob
	if c.first != nil {
		j, c.first = c.first, nil
	} else {
		var err error
		if j, err = c.r.nextJob(); err != nil {
			c.err = err
			return
		}
	}
	if j.final || j.file != c.file {
		c.r.peek = j
		if j.final && j.err != io.EOF && j.file == c.file {
			c.err = j.err // the file may be incomplete: never report a clean end
			return
		}
		c.ended = true
		return
	}
	<-j.done
	if j.err != nil {
		c.err = j.err
		c.r.failed = j.err
		c.r.release(j)
		return
	}
	c.cur, c.pos = j, 0
}

func (c *chunkStream) skip() {
	for c.err == nil && !c.ended {
		c.advance()
	}
	if c.cur != nil {
		c.r.release(c.cur)
		c.cur = nil
	}
}
