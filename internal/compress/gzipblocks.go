package compress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// Our gzip output is a series of gzip members, one per 1 MiB of input, each
// compressed on its own and carrying its own length in an extra header
// field (subfield "PD", like BGZF's "BC"). Any gzip reader takes it as one
// stream (`gzip -d` joins members), while ours can hand whole members to
// several cores: a single gzip stream can only be inflated on one, and
// decompression was the one step of a restore that did not scale.
//
// Member layout (RFC 1952): 1f 8b 08 04 | mtime 0 | xfl 0 | os 255 |
// xlen 8 | 'P' 'D' | len 4 | member size (uint32 LE, all bytes of the
// member) | raw deflate | CRC-32 | input size.
const (
	blockInput     = 1 << 20
	memberHeader   = 20
	memberTrailer  = 8
	maxMemberSize  = 4 << 20  // a member of ours is at most ~1 MiB
	maxMemberInput = 16 << 20 // what one member may inflate to
)

var errGzipClosed = errors.New("compress: gzip stream closed")

// blockGzipWriter compresses blocks on all cores and writes members in order.
type blockGzipWriter struct {
	w       io.Writer
	block   []byte
	queue   chan *gzipBlock // in order, bounded: the write-behind depth
	slots   chan struct{}   // concurrent compressions
	done    chan struct{}   // the writer goroutine ended
	mu      sync.Mutex
	err     error
	written bool
	closed  bool
}

type gzipBlock struct {
	in, out []byte
	ready   chan struct{}
}

var flateWriters = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(nil, gzipLevel)
	return fw
}}

func newGzipWriter(w io.Writer) (io.WriteCloser, error) {
	n := runtime.GOMAXPROCS(0)
	g := &blockGzipWriter{
		w:     w,
		block: getBuffer(blockInput)[:0],
		queue: make(chan *gzipBlock, 2*n),
		slots: make(chan struct{}, n),
		done:  make(chan struct{}),
	}
	go g.writeMembers(g.queue)
	return g, nil
}

func (g *blockGzipWriter) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *blockGzipWriter) Write(p []byte) (int, error) {
	if err := g.failed(); err != nil {
		return 0, err
	}
	if g.closed {
		return 0, errGzipClosed
	}
	done := 0
	for done < len(p) {
		n := copy(g.block[len(g.block):blockInput], p[done:])
		g.block = g.block[:len(g.block)+n]
		done += n
		if len(g.block) == blockInput {
			g.ship()
		}
	}
	return done, g.failed()
}

// ship compresses the current block in the background.
func (g *blockGzipWriter) ship() {
	b := &gzipBlock{in: g.block, ready: make(chan struct{})}
	g.block = getBuffer(blockInput)[:0]
	g.written = true
	g.slots <- struct{}{}
	go func() {
		defer func() { <-g.slots }()
		b.out = compressMember(b.in)
		putBuffer(b.in)
		b.in = nil
		close(b.ready)
	}()
	g.queue <- b
}

// compressMember returns in as one gzip member, in a buffer from
// getBuffer: deflate never grows data by more than a few bytes per 16 KiB,
// so a block's member fits the buffer's spare 64 KiB.
func compressMember(in []byte) []byte {
	out := bytes.NewBuffer(getBuffer(len(in) + memberSlack)[:0])
	out.Write([]byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, 'P', 'D', 4, 0, 0, 0, 0, 0})
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(out)
	fw.Write(in) // writes to a bytes.Buffer cannot fail
	fw.Close()
	flateWriters.Put(fw)
	var trailer [memberTrailer]byte
	binary.LittleEndian.PutUint32(trailer[0:], crc32.ChecksumIEEE(in))
	binary.LittleEndian.PutUint32(trailer[4:], uint32(len(in)))
	out.Write(trailer[:])
	b := out.Bytes()
	binary.LittleEndian.PutUint32(b[16:], uint32(len(b)))
	return b
}

func (g *blockGzipWriter) writeMembers(queue <-chan *gzipBlock) {
	defer close(g.done)
	for b := range queue {
		<-b.ready
		if g.failed() != nil {
			continue
		}
		if _, err := g.w.Write(b.out); err != nil {
			g.mu.Lock()
			g.err = err
			g.mu.Unlock()
		}
		putBuffer(b.out) // io.Writer: w kept no reference to it
		b.out = nil
	}
}

// Close compresses what is left (an empty member if nothing was written,
// so the output is a valid gzip file) and waits for everything to be
// written.
func (g *blockGzipWriter) Close() error {
	if g.closed {
		return g.failed()
	}
	g.closed = true
	if len(g.block) > 0 || !g.written {
		g.ship()
	}
	close(g.queue)
	<-g.done
	putBuffer(g.block)
	g.block = nil
	if err := g.failed(); err != nil {
		return err
	}
	g.mu.Lock()
	g.err = errGzipClosed
	g.mu.Unlock()
	return nil
}

// openGzip reads any gzip stream, concatenated members included. Members
// with our length field are inflated in parallel; any other stream, or the
// rest of a stream from the first member without it, goes through the
// ordinary sequential reader.
func openGzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if _, ok := peekMemberSize(br); !ok {
		return gzip.NewReader(br)
	}
	return newParallelGzipReader(br), nil
}

// peekMemberSize returns the size a member announces in our subfield.
func peekMemberSize(br *bufio.Reader) (int, bool) {
	h, err := br.Peek(memberHeader)
	if err != nil || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3] != 4 ||
		h[10] != 8 || h[11] != 0 || h[12] != 'P' || h[13] != 'D' || h[14] != 4 || h[15] != 0 {
		return 0, false
	}
	size := int(binary.LittleEndian.Uint32(h[16:]))
	if size < memberHeader+memberTrailer+2 || size > maxMemberSize {
		return 0, false
	}
	return size, true
}

// parallelGzipReader reads members ahead and inflates them concurrently,
// delivering their output in order.
type parallelGzipReader struct {
	queue chan *gzipMember
	stop  chan struct{}
	ended chan struct{} // closed when readMembers no longer reads the source
	once  sync.Once
	cur   *gzipMember
	pos   int
	rest  io.Reader // the sequential reader that took over, if any
	err   error
}

type gzipMember struct {
	out   []byte
	err   error     // the member's own failure, or how the stream ended
	rest  io.Reader // on the last entry: a reader for the rest of the stream
	final bool
	ready chan struct{}
}

var closedReady = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newParallelGzipReader(br *bufio.Reader) *parallelGzipReader {
	n := runtime.GOMAXPROCS(0)
	p := &parallelGzipReader{queue: make(chan *gzipMember, 2*n), stop: make(chan struct{}), ended: make(chan struct{})}
	go p.readMembers(br, n)
	return p
}

func (p *parallelGzipReader) readMembers(br *bufio.Reader, workers int) {
	defer close(p.ended)
	slots := make(chan struct{}, workers)
	send := func(m *gzipMember) bool {
		select {
		case p.queue <- m:
			return true
		case <-p.stop:
			return false
		}
	}
	end := func(err error, rest io.Reader) {
		send(&gzipMember{final: true, err: err, rest: rest, ready: closedReady})
	}
	for {
		if _, err := br.Peek(1); err != nil {
			end(err, nil) // io.EOF between members: the stream is complete
			return
		}
		size, ok := peekMemberSize(br)
		if !ok {
			// Not one of ours: the rest is an ordinary gzip stream (or
			// garbage, which that reader reports).
			zr, err := gzip.NewReader(br)
			if err != nil {
				end(noEOF(err), nil)
				return
			}
			end(nil, zr)
			return
		}
		member := getBuffer(size)
		if _, err := io.ReadFull(br, member); err != nil {
			end(noEOF(err), nil)
			return
		}
		m := &gzipMember{ready: make(chan struct{})}
		select {
		case slots <- struct{}{}:
		case <-p.stop:
			return
		}
		go func() {
			defer func() { <-slots }()
			m.out, m.err = inflateMember(member)
			putBuffer(member)
			close(m.ready)
		}()
		if !send(m) {
			return
		}
	}
}

// inflateMember decompresses one whole member into a buffer of the size
// its trailer gives, and checks that its deflate data ends exactly at the
// trailer and matches the trailer's CRC and size.
func inflateMember(member []byte) ([]byte, error) {
	trailer := member[len(member)-memberTrailer:]
	size := int(binary.LittleEndian.Uint32(trailer[4:]))
	if size > maxMemberInput {
		return nil, fmt.Errorf("gzip: a member inflates to more than %d bytes", maxMemberInput)
	}
	deflated := bytes.NewReader(member[memberHeader : len(member)-memberTrailer])
	fr := flate.NewReader(deflated)
	defer fr.Close()
	out := getBuffer(size)
	fail := func(err error) ([]byte, error) {
		putBuffer(out)
		return nil, err
	}
	if _, err := io.ReadFull(fr, out); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return fail(errors.New("gzip: member length does not match its trailer"))
		}
		return fail(noEOF(err))
	}
	var more [1]byte
	switch n, err := fr.Read(more[:]); {
	case n > 0:
		return fail(errors.New("gzip: member length does not match its trailer"))
	case err != io.EOF:
		return fail(noEOF(err))
	case deflated.Len() != 0:
		return fail(errors.New("gzip: member size does not match its deflate data"))
	case binary.LittleEndian.Uint32(trailer) != crc32.ChecksumIEEE(out):
		return fail(gzip.ErrChecksum)
	}
	return out, nil
}

// Member and block buffers, in and out, writing and reading, are reused:
// allocating a fresh one per member made the heap grow and shrink, and
// zeroing the memory (Go's and the kernel's, which faults fresh pages in
// slowly on virtual machines) cost a third of a restore's time and a
// sixth of a backup's.
var memberBuffers sync.Pool

// memberSlack is what a buffer holds beyond a block: room for deflate's
// worst-case growth and the member's header and trailer.
const memberSlack = 64 << 10

func getBuffer(size int) []byte {
	if b, ok := memberBuffers.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:size]
	}
	return make([]byte, size, max(size, blockInput+memberSlack))
}

func putBuffer(b []byte) {
	if b != nil {
		memberBuffers.Put(&b)
	}
}

func (p *parallelGzipReader) Read(b []byte) (int, error) {
	for {
		if p.err != nil {
			return 0, p.err
		}
		if p.rest != nil {
			n, err := p.rest.Read(b)
			if err != nil {
				p.err = err
			}
			return n, err
		}
		if p.cur != nil && p.pos < len(p.cur.out) {
			n := copy(b, p.cur.out[p.pos:])
			p.pos += n
			return n, nil
		}
		if p.cur != nil {
			putBuffer(p.cur.out)
			p.cur = nil
		}
		m, ok := <-p.queue
		if !ok {
			p.err = errGzipClosed
			continue
		}
		<-m.ready
		switch {
		case m.rest != nil:
			p.rest = m.rest
		case m.err != nil:
			p.err = m.err
		default:
			p.cur, p.pos = m, 0
		}
	}
}

// Close stops reading ahead and returns once nothing reads the source any
// more, so the caller may go on reading it (to skip the rest of a file).
func (p *parallelGzipReader) Close() error {
	p.once.Do(func() { close(p.stop) })
	<-p.ended
	p.err = errGzipClosed
	return nil
}
