package archive

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pedos.dev/backup/internal/compress"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

// WriterOptions configure a format 4 archive writer.
type WriterOptions struct {
	Passphrase []byte
	// Compression is the filter name ("gzip", "zstd", "bzip2", "xz", or any
	// program); "" or "none" stores the inner tar streams uncompressed.
	Compression string
	Params      scryptenc.Params // zero value: scryptenc.DefaultParams
	BackupID    string           // empty: generated
	// Base makes the archive an increment of the backup with that id: the
	// header names it (BaseKey) and the manifest is at version 2, which an
	// older PedOS refuses rather than restore a delta as a volume.
	Base string
	// Workers is how many chunk key derivations may run at once (each needs
	// 128·r·N bytes); 0 means one per CPU.
	Workers int
	// ChunkSize cuts each compressed stream; 0 means the format's 100 MiB.
	// Only tests change it.
	ChunkSize int
	Time      time.Time // member mtimes; zero means now
	// MaxMemory is the memory budget in bytes for chunk buffers and key
	// derivations together (see memory.go); 0 means half of what the
	// machine and the process's cgroup have available.
	MaxMemory int64
}

// Writer writes a format 4 archive as a stream. Files are added in archive
// order (qubes.xml first); Close appends the manifest. NewWriter reports
// bad options before anything reaches the destination. Compression runs in
// the caller's goroutine (parallel inside the codec), chunk keys are
// derived ahead of the data on up to Workers × Lanes goroutines, and a
// single emitter encrypts and writes chunks in order. Chunk buffers (up to
// Workers+2) and derivations share the memory budget (MaxMemory).
type Writer struct {
	out      io.Writer
	opts     WriterOptions
	header   Header
	codec    compress.Codec // nil: uncompressed
	kdfSlots chan struct{}
	pairMu   sync.Mutex // taken while a pair takes its two slots
	queue    chan *pending
	buffers  chan []byte
	spare    int // buffers that may still be allocated
	done     chan struct{}
	abort    chan struct{}
	// headerKey authenticates backup-header, and through a subkey the manifest.
	headerKey *keyFuture
	// upcoming are the files Expect announced and not yet added, in
	// order; ahead the keys of their first chunks being derived, by chunk
	// name.
	upcoming []ExpectedFile
	ahead    map[string]*keyFuture
	// derivations counts the derivations started alone and in pairs.
	derivations struct{ alone, paired atomic.Int32 }

	mu       sync.Mutex
	err      error
	files    map[string]bool
	manifest Manifest
	closed   bool
}

type pending struct {
	file, name string // "vm3/private.img", "vm3/private.img.000"
	data       []byte
	key        *keyFuture
	barrier    chan struct{} // set on a marker that only signals "reached"
}

type keyFuture struct {
	done chan struct{}
	key  *scryptenc.Key
	err  error
}

var errAborted = errors.New("archive writer aborted")

// maxBackupID keeps the header and every key string well inside their
// limits; ours are 24 characters.
const maxBackupID = 128

// NewBackupID makes an id like the reference writer's
// (YYYYMMDDTHHMMSS-<pid>), with random hex instead of the PID so that two
// backups made in the same second still differ.
func NewBackupID(t time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return t.Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// NewWriter checks the options and writes backup-header and its .hmac.
func NewWriter(out io.Writer, opts WriterOptions) (*Writer, error) {
	if err := CheckPassphrase(opts.Passphrase); err != nil {
		return nil, err
	}
	if opts.Params == (scryptenc.Params{}) {
		opts.Params = scryptenc.DefaultParams
	}
	if err := opts.Params.ValidateForWriting(); err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = ChunkSize
	}
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	if opts.BackupID == "" {
		opts.BackupID = NewBackupID(opts.Time)
	}
	if opts.MaxMemory <= 0 {
		opts.MaxMemory = defaultBudget()
	}
	plan, err := writerPlan(opts)
	if err != nil {
		return nil, err
	}
	ids := []string{opts.BackupID}
	if opts.Base != "" {
		ids = append(ids, opts.Base)
	}
	for _, id := range ids {
		if !ValidHeaderValue(id) || id[0] == '-' || len(id) > maxBackupID {
			return nil, fmt.Errorf("invalid backup id %q: up to %d of [A-Za-z0-9-], not starting with '-'", id, maxBackupID)
		}
	}
	w := &Writer{
		out:  out,
		opts: opts,
		header: Header{
			Version: 4, Encrypted: true, HMACAlgorithm: "scrypt",
			BackupID: opts.BackupID, Manifest: true, Base: opts.Base,
			// The reference writer names a filter even when it does not compress.
			CompressionFilter: "gzip",
		},
		kdfSlots: make(chan struct{}, plan.kdfs),
		queue:    make(chan *pending, opts.Workers),
		buffers:  make(chan []byte, plan.buffers),
		spare:    plan.buffers,
		done:     make(chan struct{}),
		abort:    make(chan struct{}),
		files:    map[string]bool{},
		ahead:    map[string]*keyFuture{},
		manifest: Manifest{Format: manifestFormat, Version: manifestVersion(opts.Base), BackupID: opts.BackupID},
	}
	if opts.Compression != "" && opts.Compression != "none" {
		codec, err := compress.ForWriting(opts.Compression)
		if err != nil {
			return nil, err
		}
		w.codec = codec
		w.header.Compressed = true
		w.header.CompressionFilter = codec.Name()
	}
	// The header's key and that of qubes.xml, the first file of every
	// archive, start at once, each on a core of its own where one is free
	// (scryptenc.NewKey): a short backup, an increment, waits for them.
	// The emitter writes the header first once its key is done.
	w.headerKey = w.deriveKey(HeaderKey(opts.Passphrase))
	w.ahead[ChunkName(QubesXMLName, 0)] = w.deriveKey(w.chunkKey(QubesXMLName, 0))
	go w.emit()
	return w, nil
}

// Header returns the archive's header.
func (w *Writer) Header() Header { return w.header }

// ExpectedFile announces a file to Expect: its name and how many bytes
// its stream will carry before compression (0: not known).
type ExpectedFile struct {
	Name string
	Size int64
}

// Expect announces the files that will be added, in order, so that the
// keys of their first chunks are derived ahead, two at a time: an archive
// of many small files costs a derivation per file, and derivations that
// start together run as a pair (scryptenc.Lanes). A file added that was
// not announced, or out of order, simply derives its key then.
//
// Announcing again replaces the files announced before and not yet
// added; the keys derived ahead for those no longer announced are
// dropped. So a caller can announce a file it will likely add as soon as
// it knows (an increment, a volume its scan found changed), and the list
// it settles on later.
func (w *Writer) Expect(files ...ExpectedFile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, was := range w.upcoming {
		if !slices.ContainsFunc(files, func(f ExpectedFile) bool { return f.Name == was.Name }) {
			for _, chunk := range w.expectedChunks(was) {
				delete(w.ahead, chunk)
			}
		}
	}
	w.upcoming = slices.DeleteFunc(slices.Clone(files), func(f ExpectedFile) bool { return w.files[f.Name] })
	w.prefetchLocked()
}

// expectedChunks are the chunks of f whose keys are derived ahead: the
// first, and the second when f carries more than a chunk of data (a pair
// of keys costs about what one does; at worst compression keeps the
// file to one chunk and a derivation was wasted).
func (w *Writer) expectedChunks(f ExpectedFile) []string {
	if f.Size > int64(w.opts.ChunkSize) {
		return []string{ChunkName(f.Name, 0), ChunkName(f.Name, 1)}
	}
	return []string{ChunkName(f.Name, 0)}
}

// prefetchLocked starts the derivations of the next expected chunks'
// keys, in pairs, keeping as many ahead as derivations may run at once:
// more would only delay the keys of the file being written.
func (w *Writer) prefetchLocked() {
	var next, sequence []string
	for _, f := range w.upcoming {
		if !w.files[f.Name] {
			sequence = append(sequence, w.expectedChunks(f)...)
		}
	}
	for _, chunk := range sequence {
		if len(w.ahead)+len(next) >= cap(w.kdfSlots) {
			break
		}
		if _, ok := w.ahead[chunk]; !ok {
			next = append(next, chunk)
		}
	}
	key := func(chunk string) []byte { return ChunkKey(w.opts.BackupID, chunk, w.opts.Passphrase) }
	for len(next) >= 2 {
		w.ahead[next[0]], w.ahead[next[1]] = w.derivePair(key(next[0]), key(next[1]))
		next = next[2:]
	}
	// A last odd one waits for a partner, unless it is the last expected.
	if len(next) == 1 && (len(w.ahead) == 0 || sequence[len(sequence)-1] == next[0]) {
		w.ahead[next[0]] = w.deriveKey(key(next[0]))
	}
}

// takeAhead returns the key derived ahead for chunk index of file, if
// any; the first chunk's ends the file's turn in the queue, and the next
// files' keys start.
func (w *Writer) takeAhead(file string, index int) *keyFuture {
	w.mu.Lock()
	defer w.mu.Unlock()
	if index == 0 {
		if i := slices.IndexFunc(w.upcoming, func(f ExpectedFile) bool { return f.Name == file }); i >= 0 {
			w.upcoming = slices.Delete(w.upcoming, i, i+1)
		}
	}
	chunk := ChunkName(file, index)
	f := w.ahead[chunk]
	delete(w.ahead, chunk)
	w.prefetchLocked()
	return f
}

// forgetAhead drops a key derived ahead for a chunk that file, now
// complete, turned out not to need, so that it no longer holds a place
// ahead.
func (w *Writer) forgetAhead(file string, index int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ahead[ChunkName(file, index)]; ok {
		delete(w.ahead, ChunkName(file, index))
		w.prefetchLocked()
	}
}

// CheckWriterMemory reports a *memlimit.BudgetError when a writer with
// opts (Params, Workers, ChunkSize, MaxMemory; zero values as NewWriter
// takes them) could not run within its memory budget, so that a backup can
// say so before it starts.
func CheckWriterMemory(opts WriterOptions) error {
	if opts.Params == (scryptenc.Params{}) {
		opts.Params = scryptenc.DefaultParams
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = ChunkSize
	}
	if opts.MaxMemory <= 0 {
		opts.MaxMemory = defaultBudget()
	}
	_, err := writerPlan(opts)
	return err
}

func writerPlan(opts WriterOptions) (memoryPlan, error) {
	return planMemory("writing this backup", opts.MaxMemory, int64(opts.ChunkSize), kdfMemory(opts.Params),
		opts.Workers+2, opts.Workers*scryptenc.Lanes, opts.Params)
}

// AddFile stores one file: fill writes its inner tar stream (see package
// sparsetar), which is compressed, cut into chunks and encrypted.
func (w *Writer) AddFile(name string, fill func(io.Writer) error) error {
	if err := w.checkNewFile(name); err != nil {
		return err
	}
	return w.addFile(name, fill)
}

func (w *Writer) checkNewFile(name string) error {
	if err := CheckFileName(name); err != nil {
		return err
	}
	if name == ManifestName {
		return fmt.Errorf("%w: %q is reserved for the manifest", ErrUnsafeName, name)
	}
	// The longest chunk name this file can get (five digits: 10 TB at
	// 100 MiB a chunk) must fit a ustar header and a key string the scrypt
	// tool reads whole; finding out at that chunk would waste the backup.
	longest := ChunkName(name, 10000)
	if _, err := memberHeader(longest+".enc", 0, w.opts.Time); err != nil {
		return err
	}
	if len(ChunkKey(w.opts.BackupID, longest, w.opts.Passphrase)) > maxKeyString {
		return fmt.Errorf("%w: %q with this passphrase makes a key string longer than %d bytes", ErrUnsafeName, name, maxKeyString)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("archive writer is closed")
	}
	if len(w.files) == 0 && name != QubesXMLName {
		return fmt.Errorf("%w: the first file must be %s, not %q", ErrUnexpectedMember, QubesXMLName, name)
	}
	if w.files[name] {
		return fmt.Errorf("%w: file %q added twice", ErrUnexpectedMember, name)
	}
	w.files[name] = true
	return nil
}

// AddBytes stores data as a file whose inner tar holds one member of the
// same name (how qubes.xml is stored).
func (w *Writer) AddBytes(name string, data []byte) error {
	if name == QubesXMLName && len(data) > MaxQubesXML {
		return fmt.Errorf("%w: qubes.xml is %d bytes (readers accept %d)", ErrTooLarge, len(data), MaxQubesXML)
	}
	if err := w.checkNewFile(name); err != nil {
		return err
	}
	return w.addFile(name, w.bytesFiller(name, data))
}

// Companion is a small file stored in qubes.xml's member, after qubes.xml
// in its inner tar. It costs no key derivation of its own (each member
// costs one, the dearest step of a small backup), and the reference
// reader, which takes qubes.xml from that member by name, never sees it.
// GNU tar extracts it next to qubes.xml. An increment keeps its map there.
type Companion struct {
	Name string // a plain name: no slash, not qubes.xml
	Data []byte
}

// CompanionFits reports whether qubes.xml and c surely fit the single
// chunk of at most 1 MiB that qubes.xml's member may take (the reference
// reader's limit), whatever the compression does to them.
func (w *Writer) CompanionFits(xml []byte, c Companion) bool {
	var n int64
	for _, f := range []Companion{{QubesXMLName, xml}, c} {
		size, err := sparsetar.FileSize(f.Name, int64(len(f.Data)), 0o644, w.opts.Time)
		if err != nil {
			return false
		}
		n += size
	}
	return CompressedBound(n+sparsetar.EndSize, w.codec != nil)+scryptenc.Overhead <= maxQubesXMLChunk
}

// CompressedBound bounds what a compression filter makes of n bytes:
// incompressible input grows by about 0.01% with our gzip (stored deflate
// blocks and a member header per MiB), 0.4% with zstd, 1% plus 600 bytes
// with bzip2, and less with xz.
func CompressedBound(n int64, compressed bool) int64 {
	if !compressed {
		return n
	}
	return n + n/64 + 64<<10
}

// AddQubesXML stores qubes.xml, the first file, with c after it in the
// same member. c must fit (CompanionFits).
func (w *Writer) AddQubesXML(xml []byte, c Companion) error {
	if c.Name == QubesXMLName || strings.Contains(c.Name, "/") {
		return fmt.Errorf("%w: %q cannot be stored with qubes.xml", ErrUnsafeName, c.Name)
	}
	if !w.CompanionFits(xml, c) {
		return fmt.Errorf("%w: qubes.xml and %s do not fit one chunk of %d bytes", ErrTooLarge, c.Name, maxQubesXMLChunk)
	}
	if err := w.checkNewFile(QubesXMLName); err != nil {
		return err
	}
	return w.addFile(QubesXMLName, func(out io.Writer) error {
		tw := sparsetar.NewWriter(out)
		if err := tw.AddBytes(QubesXMLName, xml, 0o644, w.opts.Time); err != nil {
			return err
		}
		if err := tw.AddBytes(c.Name, c.Data, 0o644, w.opts.Time); err != nil {
			return err
		}
		return tw.Close()
	})
}

func (w *Writer) bytesFiller(name string, data []byte) func(io.Writer) error {
	return func(out io.Writer) error {
		tw := sparsetar.NewWriter(out)
		if err := tw.AddBytes(name, data, 0o644, w.opts.Time); err != nil {
			return err
		}
		return tw.Close()
	}
}

func (w *Writer) addFile(name string, fill func(io.Writer) error) error {
	if err := w.failed(); err != nil {
		return err
	}
	c := &chunker{w: w, file: name}
	if err := c.begin(); err != nil {
		return err
	}
	err := func() error {
		if w.codec == nil {
			return fill(c)
		}
		zw, err := w.codec.NewWriter(c)
		if err != nil {
			return err
		}
		if err := fill(zw); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	}()
	if err == nil {
		err = c.ship() // the last chunk, short or even empty
		w.forgetAhead(name, c.index+1)
	}
	if err != nil {
		err = fmt.Errorf("storing %s: %w", name, err)
		w.fail(err)
		return err
	}
	return w.failed()
}

// Close writes the manifest and waits until everything is written. It does
// not close the underlying writer. After an error the archive is unusable
// and the caller must discard the output.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.failed()
	}
	w.closed = true
	w.mu.Unlock()
	if w.failed() == nil {
		// The manifest lists every chunk's trailer, known only once the
		// emitter has written them all.
		reached := make(chan struct{})
		if w.send(&pending{barrier: reached}) == nil {
			select {
			case <-reached:
			case <-w.abort:
			}
		}
		if w.failed() == nil {
			// The emitter is idle now, so writing here keeps the order.
			if err := w.writeManifest(); err != nil {
				w.fail(err)
			}
		}
	}
	close(w.queue)
	<-w.done
	return w.failed()
}

func (w *Writer) writeManifest() error {
	data, err := w.manifest.marshal()
	if err != nil {
		return err
	}
	tag := manifestTag(w.headerKey.key, w.opts.BackupID, data)
	if err := writeMember(w.out, ManifestName, w.opts.Time, data); err != nil {
		return fmt.Errorf("writing %s: %w", ManifestName, err)
	}
	if err := writeMember(w.out, ManifestHMACName, w.opts.Time, tag); err != nil {
		return fmt.Errorf("writing %s: %w", ManifestHMACName, err)
	}
	return nil
}

// Abort stops the writer after a failure elsewhere (a cancelled backup);
// pending work is dropped.
func (w *Writer) Abort(cause error) {
	if cause == nil {
		cause = errAborted
	}
	w.fail(cause)
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		close(w.abort)
	}
}

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) send(p *pending) error {
	select {
	case w.queue <- p:
		return nil
	case <-w.abort:
		return w.failed()
	}
}

// buffer returns an empty chunk buffer, allocating at most Workers+2.
func (w *Writer) buffer() ([]byte, error) {
	select {
	case b := <-w.buffers:
		return b[:0], nil
	default:
	}
	w.mu.Lock()
	if w.spare > 0 {
		w.spare--
		w.mu.Unlock()
		return chunkBuffer(0, w.opts.ChunkSize), nil
	}
	w.mu.Unlock()
	select {
	case b := <-w.buffers:
		return b[:0], nil
	case <-w.abort:
		return nil, w.failed()
	}
}

// deriveKey starts the key derivation for a chunk; it needs only the name,
// so it overlaps with compressing the chunk's data.
func (w *Writer) deriveKey(keyString []byte) *keyFuture {
	f := &keyFuture{done: make(chan struct{})}
	w.derivations.alone.Add(1)
	go func() {
		defer close(f.done)
		if !w.takeSlots(1) {
			f.err = errAborted
			return
		}
		defer w.releaseSlots(1)
		f.key, f.err = scryptenc.NewKey(keyString, w.opts.Params)
	}()
	return f
}

// derivePair starts two key derivations that run as one pair
// (scryptenc.NewKeyPair), or as two when the budget allows only one
// derivation at a time or the cores cannot pair.
func (w *Writer) derivePair(a, b []byte) (*keyFuture, *keyFuture) {
	if cap(w.kdfSlots) < 2 || scryptenc.Lanes < 2 {
		return w.deriveKey(a), w.deriveKey(b)
	}
	fa, fb := &keyFuture{done: make(chan struct{})}, &keyFuture{done: make(chan struct{})}
	w.derivations.paired.Add(1)
	go func() {
		defer close(fa.done)
		defer close(fb.done)
		if !w.takeSlots(2) {
			fa.err, fb.err = errAborted, errAborted
			return
		}
		defer w.releaseSlots(2)
		fa.key, fb.key, fa.err = scryptenc.NewKeyPair(a, b, w.opts.Params)
		fb.err = fa.err
	}()
	return fa, fb
}

// takeSlots takes n derivation slots, or fails when the writer aborts.
// Pairs take theirs one goroutine at a time, so that two pairs never hold
// one slot each while waiting for a second.
func (w *Writer) takeSlots(n int) bool {
	if n > 1 {
		w.pairMu.Lock()
		defer w.pairMu.Unlock()
	}
	for i := range n {
		select {
		case w.kdfSlots <- struct{}{}:
		case <-w.abort:
			w.releaseSlots(i)
			return false
		}
	}
	return true
}

func (w *Writer) releaseSlots(n int) {
	for range n {
		<-w.kdfSlots
	}
}

// writeHeader writes backup-header and its .hmac, the header encrypted
// under "backup-header!<passphrase>".
func (w *Writer) writeHeader() error {
	<-w.headerKey.done
	if w.headerKey.err != nil {
		return fmt.Errorf("deriving the header key: %w", w.headerKey.err)
	}
	header := w.header.Marshal()
	sealed := bytes.Clone(header)
	trailer := w.headerKey.key.SealInPlace(sealed)
	if err := writeMember(w.out, HeaderName, w.opts.Time, header); err != nil {
		return fmt.Errorf("writing %s: %w", HeaderName, err)
	}
	if err := writeMember(w.out, HeaderHMACName, w.opts.Time, w.headerKey.key.Header(), sealed, trailer[:]); err != nil {
		return fmt.Errorf("writing %s: %w", HeaderHMACName, err)
	}
	return nil
}

// emit encrypts and writes chunks in order, then records them.
func (w *Writer) emit() {
	defer close(w.done)
	if err := w.writeHeader(); err != nil {
		w.fail(err)
	}
	for p := range w.queue {
		if p.barrier != nil {
			close(p.barrier)
			continue
		}
		if w.failed() != nil {
			continue // drain so senders never block
		}
		<-p.key.done
		if p.key.err != nil {
			w.fail(fmt.Errorf("deriving the key of %s: %w", p.name, p.key.err))
			continue
		}
		trailer := p.key.key.SealInPlace(p.data)
		if err := writeMember(w.out, p.name+".enc", w.opts.Time, p.key.key.Header(), p.data, trailer[:]); err != nil {
			w.fail(fmt.Errorf("writing %s.enc: %w", p.name, err))
			continue
		}
		w.manifest.add(p.file, int64(len(p.data))+scryptenc.Overhead, trailer[:])
		select {
		case w.buffers <- p.data:
		default:
		}
	}
}

// chunker cuts one file's compressed stream into chunks. Like the
// reference writer it starts a new chunk as soon as one is full, so a
// stream of an exact multiple of the chunk size ends with an empty chunk;
// readers rely on that: a full last chunk means chunks are missing.
type chunker struct {
	w     *Writer
	file  string
	index int
	buf   []byte
	key   *keyFuture
	next  *keyFuture // the key of chunk index+1, derived ahead
}

// begin starts chunk c.index. Once a file has filled a chunk it is a big
// one: its keys are then derived two at a time, this chunk's and the
// next's, so that the pair runs as one derivation on cores that can
// (scryptenc.Lanes); at worst the file ends first and one paired
// derivation was wasted.
func (c *chunker) begin() error {
	buf, err := c.w.buffer()
	if err != nil {
		return err
	}
	c.buf = buf
	if c.next != nil {
		c.key, c.next = c.next, nil
		return nil
	}
	if c.index <= 1 {
		c.key = c.w.takeAhead(c.file, c.index)
	}
	switch {
	case c.key != nil:
	case c.index > 0 && scryptenc.Lanes > 1:
		c.key, c.next = c.w.derivePair(c.w.chunkKey(c.file, c.index), c.w.chunkKey(c.file, c.index+1))
	default:
		c.key = c.w.deriveKey(c.w.chunkKey(c.file, c.index))
	}
	return nil
}

func (w *Writer) chunkKey(file string, index int) []byte {
	return ChunkKey(w.opts.BackupID, ChunkName(file, index), w.opts.Passphrase)
}

func (c *chunker) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, c.w.opts.ChunkSize-len(c.buf))
		c.buf = append(c.buf, p[done:done+n]...)
		done += n
		if len(c.buf) == c.w.opts.ChunkSize {
			if err := c.ship(); err != nil {
				return done, err
			}
			c.index++
			if err := c.begin(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

func (c *chunker) ship() error {
	// Readers take qubes.xml and the manifest from a single chunk, and
	// qubes.xml's from at most 1 MiB (the reference reader's limit too).
	if c.file == QubesXMLName && (c.index > 0 || len(c.buf)+scryptenc.Overhead > maxQubesXMLChunk) {
		return fmt.Errorf("%w: compressed qubes.xml exceeds %d bytes", ErrTooLarge, maxQubesXMLChunk-scryptenc.Overhead)
	}
	p := &pending{file: c.file, name: ChunkName(c.file, c.index), data: c.buf, key: c.key}
	c.buf, c.key = nil, nil
	return c.w.send(p)
}
