package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// The memory an Upload holds is PartsInFlight+1 buffers of the part size:
// one being filled, the others on their way. The part size is PartSize for
// the first partsPerStep parts and doubles after each further
// partsPerStep, since S3 allows 10,000 parts: 16 MiB x 5 = 80 MiB up to
// 31 GiB, at most 256 MiB x 5 for the largest archives (about 1 TiB).
const (
	PartSize      = 16 << 20
	PartsInFlight = 4
	partsPerStep  = 2000
	maxParts      = 10000
)

// abortWindow bounds how long Abort keeps trying to reach the endpoint: a
// server that restarts within it loses no parts to an orphaned upload.
var abortWindow = 60 * time.Second

// Upload is one new object being written as a multipart upload. Write
// streams into part buffers that are sent PartsInFlight at a time, each
// with its CRC32C (x-amz-checksum-crc32c) for the server to check and,
// over plain HTTP, its SHA-256 signed as the payload's hash.
// The object exists only once Commit completed the upload; Abort (or a
// failed Commit) aborts it, so no parts are left behind.
type Upload struct {
	s           *Store
	Bucket, Key string
	id          string

	ctx    context.Context
	cancel context.CancelFunc
	buf    []byte
	next   int           // number of the next part
	slots  chan struct{} // one per part in flight
	free   chan []byte   // part buffers to reuse, so that memory stays put
	wg     sync.WaitGroup

	mu    sync.Mutex
	parts []minio.CompletePart
	err   error // the first failure of a part
	done  bool  // committed or aborted
}

// Create starts a new object in the prefix loc.Key, named base or, when
// that name is taken (by an object or by another upload under way), base
// with "-2", "-3", ... appended. Names stay unique when several machines
// back up into one prefix at once: after starting its upload, each looks
// for others with the same key, and moves on if it finds one; Commit
// completes only if the name is still free (If-None-Match: *), so no
// object is ever overwritten.
func (s *Store) Create(ctx context.Context, loc Location, base string) (*Upload, error) {
	if !loc.IsPrefix() {
		return nil, &Error{BadLocation, fmt.Sprintf("%s must end with / : a backup goes to a new object under a prefix", loc)}
	}
	n := 1
	for attempt := 0; ; attempt++ {
		name := base
		if n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		if attempt >= 20 {
			// Contention that jitter did not resolve: a random suffix is
			// unique for certain.
			name = base + "-" + randomHex()
		}
		key := loc.Key + name
		free, err := s.nameFree(ctx, loc.Bucket, key, "")
		if err != nil {
			return nil, err
		}
		if !free {
			n++
			continue
		}
		id, err := s.core.NewMultipartUpload(ctx, loc.Bucket, key, minio.PutObjectOptions{ContentType: "application/x-tar",
			UserMetadata: map[string]string{checksumAlgorithmHeader: "CRC32C"}})
		if err != nil {
			return nil, s.classify(err, loc.Bucket, key)
		}
		// Someone else may have chosen the name at the same moment.
		free, err = s.nameFree(ctx, loc.Bucket, key, id)
		if err == nil && !free {
			s.abortUpload(loc.Bucket, key, id)
			n++
			sleepJitter(ctx)
			continue
		}
		if err != nil {
			s.abortUpload(loc.Bucket, key, id)
			return nil, err
		}
		uctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		u := &Upload{s: s, Bucket: loc.Bucket, Key: key, id: id, ctx: uctx, cancel: cancel,
			next: 1, slots: make(chan struct{}, PartsInFlight), free: make(chan []byte, PartsInFlight+1)}
		// ctx ends the upload too, but Abort still needs a live context.
		context.AfterFunc(ctx, cancel)
		return u, nil
	}
}

// nameFree reports whether no object has key and no upload other than
// ours is under way for it.
func (s *Store) nameFree(ctx context.Context, bucket, key, ours string) (bool, error) {
	_, err := s.core.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return false, nil
	}
	if resp := minio.ToErrorResponse(err); resp.Code != "NoSuchKey" && resp.Code != "NotFound" {
		return false, s.classify(err, bucket, key)
	}
	res, err := s.core.ListMultipartUploads(ctx, bucket, key, "", "", "", 1000)
	if err != nil {
		return false, s.classify(err, bucket, key)
	}
	for _, up := range res.Uploads {
		if up.Key == key && up.UploadID != ours {
			return false, nil
		}
	}
	return true, nil
}

func sleepJitter(ctx context.Context) {
	n, _ := rand.Int(rand.Reader, big.NewInt(300))
	select {
	case <-time.After(time.Duration(50+n.Int64()) * time.Millisecond):
	case <-ctx.Done():
	}
}

func randomHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// partSize is the size of part n (from 1).
func partSize(n int) int { return PartSize << min((n-1)/partsPerStep, 4) }

// Write adds data to the object.
func (u *Upload) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := u.failure(); err != nil {
			return written, err
		}
		size := u.buffer()
		k := copy(u.buf[len(u.buf):size], p)
		u.buf = u.buf[:len(u.buf)+k]
		p, written = p[k:], written+k
		if len(u.buf) == size {
			if err := u.send(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// ReadFrom adds what r holds, up to its end (io.EOF), reading straight
// into the part buffers: it spares the copy Write makes.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if err := u.failure(); err != nil {
			return total, err
		}
		size := u.buffer()
		k, err := r.Read(u.buf[len(u.buf):size])
		u.buf = u.buf[:len(u.buf)+k]
		total += int64(k)
		if len(u.buf) == size {
			if err := u.send(); err != nil {
				return total, err
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// buffer makes sure a part buffer is being filled, reusing one a sent
// part gave back, and returns the size it fills to.
func (u *Upload) buffer() int {
	size := partSize(u.next)
	if u.buf == nil {
		select {
		case b := <-u.free:
			u.buf = b[:0]
		default:
		}
		if cap(u.buf) < size {
			u.buf = make([]byte, 0, size)
		}
	}
	return size
}

// send uploads the buffer as the next part, once a slot is free.
func (u *Upload) send() error {
	if u.next > maxParts {
		return u.setErr(errors.New("the backup is larger than an S3 object can be"))
	}
	select {
	case u.slots <- struct{}{}:
	case <-u.ctx.Done():
		return u.setErr(context.Cause(u.ctx))
	}
	data, n := u.buf, u.next
	u.buf, u.next = nil, u.next+1
	u.wg.Add(1)
	go func() {
		defer func() {
			select {
			case u.free <- data:
			default:
			}
			<-u.slots
			u.wg.Done()
		}()
		sum := crc32cBase64(data)
		part, err := u.s.core.PutObjectPart(u.ctx, u.Bucket, u.Key, u.id, n, bytes.NewReader(data), int64(len(data)), u.s.partOptions(data, sum))
		// A server that does not know the header answers without one;
		// one that names another checksum stored other bytes.
		if err == nil && part.ChecksumCRC32C != "" && part.ChecksumCRC32C != sum {
			err = fmt.Errorf("the server acknowledged CRC32C %q, not the part's %q", part.ChecksumCRC32C, sum)
		}
		if err != nil {
			u.setErr(fmt.Errorf("uploading part %d of %s: %w", n, Location{u.Bucket, u.Key}, u.s.classify(err, u.Bucket, u.Key)))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, minio.CompletePart{PartNumber: n, ETag: part.ETag, ChecksumCRC32C: part.ChecksumCRC32C})
		u.mu.Unlock()
	}()
	return nil
}

// The part checksum: CRC32C, declared when the upload is created and sent
// with each part. The server refuses a part whose bytes do not match it.
// It costs a quarter of what an MD5 (Content-MD5) did here; S3 takes it
// instead of Content-MD5 where one is required (Object Lock).
const (
	checksumAlgorithmHeader = "X-Amz-Checksum-Algorithm"
	checksumHeader          = "X-Amz-Checksum-Crc32c"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32cBase64(data []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, castagnoli)))
}

// partOptions are how a part is sent: with its CRC32C, and over plain
// HTTP with its SHA-256 signed as the payload's hash, so that nothing on
// the way can change it unnoticed. Over HTTPS, TLS does that, and the
// payload is sent unsigned, as the AWS tools do. (Left to itself,
// minio-go would sign a plain-HTTP part in 64 KiB pieces, aws-chunked,
// hashing everything once more on each side.)
func (s *Store) partOptions(data []byte, crc32c string) minio.PutObjectPartOptions {
	opts := minio.PutObjectPartOptions{
		CustomHeader:         http.Header{checksumHeader: {crc32c}, checksumAlgorithmHeader: {"CRC32C"}},
		DisableContentSha256: true,
	}
	if !s.secure() {
		h := sha256.Sum256(data)
		opts.Sha256Hex = hex.EncodeToString(h[:])
	}
	return opts
}

func (u *Upload) setErr(err error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
		u.cancel() // the other parts are wasted effort now
	}
	return u.err
}

func (u *Upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// Commit sends what is left, waits for every part and completes the
// upload: only now does the object appear. On failure the upload is
// aborted.
func (u *Upload) Commit() error {
	if u.failure() == nil && (len(u.buf) > 0 || u.next == 1) { // an empty object is one empty part
		u.send()
	}
	u.wg.Wait()
	if err := u.failure(); err != nil {
		u.Abort()
		return err
	}
	slices.SortFunc(u.parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*") // never overwrite
	_, err := u.s.core.CompleteMultipartUpload(u.ctx, u.Bucket, u.Key, u.id, u.parts, opts)
	if err != nil {
		err = u.s.classify(err, u.Bucket, u.Key)
		u.setErr(err)
		u.Abort()
		return err
	}
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
	u.cancel()
	return nil
}

// Abort stops the upload and has the server drop its parts. It keeps
// trying for a while when the server does not answer (it may be
// restarting); it returns the last failure when it gave up.
func (u *Upload) Abort() error {
	u.mu.Lock()
	if u.done {
		u.mu.Unlock()
		return nil
	}
	u.done = true
	if u.err == nil {
		u.err = errors.New("upload aborted")
	}
	u.mu.Unlock()
	u.cancel()
	u.wg.Wait()
	return u.s.abortUpload(u.Bucket, u.Key, u.id)
}

// abortUpload aborts an upload, retrying with backoff within abortWindow.
func (s *Store) abortUpload(bucket, key, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), abortWindow)
	defer cancel()
	delay := 250 * time.Millisecond
	for {
		err := s.core.AbortMultipartUpload(ctx, bucket, key, id)
		if err == nil || minio.ToErrorResponse(err).Code == "NoSuchUpload" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the incomplete upload of %s could not be aborted (%v); a lifecycle rule on the bucket removes such uploads", Location{bucket, key}, s.classify(err, bucket, key))
		case <-time.After(delay):
		}
		delay = min(2*delay, 4*time.Second)
	}
}

// Name is the key's last element.
func (u *Upload) Name() string { return path.Base(u.Key) }
