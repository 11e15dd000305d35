package objstore

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"pedos.dev/backup/internal/testutil"
)

func TestParseURL(t *testing.T) {
	for in, want := range map[string]Location{
		"s3://b/":                {"b", ""},
		"s3://b":                 {"b", ""},
		"s3://b/laptop/":         {"b", "laptop/"},
		"s3://b/laptop/backup-1": {"b", "laptop/backup-1"},
	} {
		got, err := ParseURL(in)
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"s3:///x", "http://b/x", "/home/user"} {
		if _, err := ParseURL(in); err == nil {
			t.Errorf("ParseURL(%q) succeeded", in)
		}
	}
}

// max_attempts comes from the environment, else from the profile, as the
// AWS tools read it.
func TestOpenMaxAttempts(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(config, []byte("[default]\nendpoint_url = http://127.0.0.1:9\nmax_attempts = 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", config)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_MAX_ATTEMPTS", "")
	if s, err := Open(); err != nil || s.maxAttempts != 4 {
		t.Fatalf("from the profile: %v, %v", s, err)
	}
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
	if s, err := Open(); err != nil || s.maxAttempts != 2 {
		t.Fatalf("from the environment: %v, %v", s, err)
	}
	t.Setenv("AWS_MAX_ATTEMPTS", "many")
	if _, err := Open(); err == nil {
		t.Fatal("max_attempts \"many\" accepted")
	}
}

func TestPartSize(t *testing.T) {
	if partSize(1) != PartSize || partSize(partsPerStep) != PartSize || partSize(partsPerStep+1) != 2*PartSize || partSize(maxParts) != 16*PartSize {
		t.Fatal("part sizes")
	}
	var total int64
	for n := 1; n <= maxParts; n++ {
		total += int64(partSize(n))
	}
	if total < 900<<30 {
		t.Fatalf("largest object %d bytes", total)
	}
}

// An endpoint with nothing listening is "unreachable", before any data.
func TestUnreachable(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Check(ctx, "backups"); KindOf(err) != Unreachable {
		t.Fatalf("Check: %v (%v)", err, KindOf(err))
	}
}

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(b)
	return b
}

func setEnv(t *testing.T, sw *testutil.Seaweed) {
	for k, v := range sw.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("HOME", t.TempDir()) // no stray ~/.aws
}

func upload(t *testing.T, s *Store, loc Location, data []byte) (string, error) {
	t.Helper()
	u, err := s.Create(context.Background(), loc, "qubes-backup-2026-12-02T101500")
	if err != nil {
		return "", err
	}
	if _, err := u.Write(data); err != nil {
		u.Abort()
		return u.Key, err
	}
	return u.Key, u.Commit()
}

// readBack checks that the object key of bucket "backups" holds want.
func readBack(t *testing.T, s *Store, key string, want []byte) {
	t.Helper()
	r, err := s.NewReader(context.Background(), Location{"backups", key})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %s: %v, equal %v", key, err, bytes.Equal(got, want))
	}
}

// checkPartChecksum sends a part, damaged after its checksums were taken,
// with the options s sends parts with (unsigned if unsign), and checks
// that the server refuses it and takes the intact part.
func checkPartChecksum(t *testing.T, s *Store, part []byte, unsign bool) {
	t.Helper()
	ctx := context.Background()
	u, err := s.Create(ctx, Location{"backups", "checksum/"}, "qubes-backup-x")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	damaged := bytes.Clone(part)
	damaged[len(damaged)/2] ^= 1
	opts := s.partOptions(part, crc32cBase64(part))
	if unsign {
		opts.Sha256Hex = "" // so that only the CRC32C can catch it
	}
	if _, err := s.core.PutObjectPart(ctx, u.Bucket, u.Key, u.id, 1, bytes.NewReader(damaged), int64(len(damaged)), opts); err == nil {
		t.Fatal("a part not matching its CRC32C was accepted")
	}
	got, err := s.core.PutObjectPart(ctx, u.Bucket, u.Key, u.id, 1, bytes.NewReader(part), int64(len(part)), opts)
	if err != nil || got.ChecksumCRC32C != crc32cBase64(part) {
		t.Fatalf("the intact part: %v, CRC32C %q", err, got.ChecksumCRC32C)
	}
}

// One server for the package; the subtests that kill it come last.
func TestAgainstSeaweedFS(t *testing.T) {
	sw := testutil.StartSeaweed(t)
	sw.MakeBucket("backups")
	setEnv(t, sw)
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loc := Location{"backups", "laptop/"}
	data := randomData(2*PartSize+12345, 1)

	t.Run("RoundTrip", func(t *testing.T) {
		if err := s.Check(ctx, "backups"); err != nil {
			t.Fatal(err)
		}
		key, err := upload(t, s, loc, data)
		if err != nil {
			t.Fatal(err)
		}
		if key != "laptop/qubes-backup-2026-12-02T101500" {
			t.Fatalf("key %s", key)
		}
		// The name is never reused.
		key2, err := upload(t, s, loc, []byte("second"))
		if err != nil || key2 != key+"-2" {
			t.Fatalf("second backup: %s, %v", key2, err)
		}
		readBack(t, s, key, data)
		objs, err := s.List(ctx, loc, "qubes-backup-")
		if err != nil || len(objs) != 2 {
			t.Fatalf("list: %v %v", objs, err)
		}
		head, err := s.Head(ctx, Location{"backups", key}, 4096)
		if err != nil || !bytes.Equal(head, data[:4096]) {
			t.Fatalf("head: %v", err)
		}
		if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
			t.Fatalf("uploads left: %v", ups)
		}
	})

	// Reading into the part buffers (what the VM side does with the
	// stream) gives the same object as writing, reads of any length.
	t.Run("ReadFrom", func(t *testing.T) {
		u, err := s.Create(ctx, Location{"backups", "read-from/"}, "qubes-backup-x")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(u, iotest.HalfReader(bytes.NewReader(data)))
		if err != nil || n != int64(len(data)) {
			u.Abort()
			t.Fatalf("copied %d of %d: %v", n, len(data), err)
		}
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
		readBack(t, s, u.Key, data)
	})

	t.Run("EmptyObject", func(t *testing.T) {
		key, err := upload(t, s, Location{"backups", "empty/"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.NewReader(ctx, Location{"backups", key})
		if err != nil || r.Size != 0 {
			t.Fatalf("%v, size %d", err, r.Size)
		}
	})

	t.Run("Problems", func(t *testing.T) {
		if err := s.Check(ctx, "no-such-bucket"); KindOf(err) != NoBucket {
			t.Errorf("missing bucket: %v", err)
		}
		if _, err := upload(t, s, Location{"no-such-bucket", "x/"}, []byte("x")); KindOf(err) != NoBucket {
			t.Errorf("upload to a missing bucket: %v", err)
		}
		if _, err := s.NewReader(ctx, Location{"backups", "laptop/nothing"}); KindOf(err) != NoSuchKey {
			t.Errorf("missing key: %v", err)
		}
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		bad, err := Open()
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.Check(ctx, "backups"); KindOf(err) != Refused {
			t.Errorf("wrong secret: %v (%v)", err, KindOf(err))
		} else if strings.Contains(err.Error(), "wrong") {
			t.Errorf("the secret shows: %v", err)
		}
	})

	// The checksum a part is sent with is one the server checks: bytes
	// that do not match it are refused, as a part damaged on its way is.
	t.Run("PartChecksum", func(t *testing.T) {
		checkPartChecksum(t, s, data[:PartSize], true)
	})

	// Over TLS, to a gateway whose certificate only the CA bundle vouches
	// for: refused without it, in plain words, before any data; with it,
	// parts go unsigned with their CRC32C, which the server checks.
	t.Run("HTTPS", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL", sw.HTTPSEndpoint)
		t.Setenv("AWS_CA_BUNDLE", "")
		untrusting, err := Open()
		if err != nil {
			t.Fatal(err)
		}
		err = untrusting.Check(ctx, "backups")
		if KindOf(err) != Untrusted || !strings.Contains(err.Error(), "does not trust") {
			t.Fatalf("an untrusted certificate: %v (%v)", err, KindOf(err))
		}
		empty := filepath.Join(t.TempDir(), "empty.pem")
		if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", empty)
		if _, err := Open(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Fatalf("a CA bundle without a certificate: %v", err)
		}
		t.Setenv("AWS_CA_BUNDLE", sw.CAFile)
		tls, err := Open()
		if err != nil || !tls.secure() {
			t.Fatalf("open: %v", err)
		}
		key, err := upload(t, tls, Location{"backups", "tls/"}, data)
		if err != nil {
			t.Fatal(err)
		}
		readBack(t, tls, key, data)
		checkPartChecksum(t, tls, data[:PartSize], false)
	})

	t.Run("Abort", func(t *testing.T) {
		u, err := s.Create(ctx, Location{"backups", "aborted/"}, "qubes-backup-x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := u.Abort(); err != nil {
			t.Fatal(err)
		}
		if objs, _ := s.List(ctx, Location{"backups", "aborted/"}, ""); len(objs) != 0 {
			t.Fatalf("objects: %v", objs)
		}
		if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
			t.Fatalf("uploads left: %v", ups)
		}
	})

	// Two machines backing up into one prefix in the same second.
	t.Run("Concurrent", func(t *testing.T) {
		loc := Location{"backups", "shared/"}
		var wg sync.WaitGroup
		keys := make([]string, 4)
		errs := make([]error, 4)
		for i := range keys {
			wg.Go(func() { keys[i], errs[i] = upload(t, s, loc, randomData(PartSize+1, uint64(10+i))) })
		}
		wg.Wait()
		seen := map[string]bool{}
		for i, k := range keys {
			if errs[i] != nil {
				t.Fatalf("backup %d: %v", i, errs[i])
			}
			if seen[k] {
				t.Fatalf("two backups named %s: %v", k, keys)
			}
			seen[k] = true
		}
		for i, k := range keys {
			r, err := s.NewReader(ctx, Location{"backups", k})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, randomData(PartSize+1, uint64(10+i))) {
				t.Fatalf("%s holds another backup's data", k)
			}
		}
		if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
			t.Fatalf("uploads left: %v", ups)
		}
	})

	t.Run("ServerRestartMidRead", func(t *testing.T) {
		key, err := upload(t, s, Location{"backups", "restart/"}, data)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.NewReader(ctx, Location{"backups", key})
		if err != nil {
			t.Fatal(err)
		}
		first := make([]byte, 1<<20)
		if _, err := io.ReadFull(r, first); err != nil {
			t.Fatal(err)
		}
		sw.Kill()
		done := make(chan struct{})
		go func() { sw.Start(); close(done) }()
		rest, err := io.ReadAll(r)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(first, rest...), data) {
			t.Fatal("resumed read differs")
		}
	})

	// A server that stays down: a clear failure once the window passed.
	t.Run("ServerStaysDown", func(t *testing.T) {
		key, err := upload(t, s, Location{"backups", "down/"}, data)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.NewReader(ctx, Location{"backups", key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		defer func(w time.Duration) { retryWindow = w }(retryWindow)
		retryWindow = 3 * time.Second
		sw.Kill()
		defer sw.Start()
		start := time.Now()
		_, err = io.ReadAll(r)
		if err == nil || !strings.Contains(err.Error(), "gave up at byte") {
			t.Fatalf("read with the server down: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("gave up after %s", d)
		}
	})

	// max_attempts bounds the tries instead of the window.
	t.Run("MaxAttempts", func(t *testing.T) {
		key, err := upload(t, s, Location{"backups", "attempts/"}, data)
		if err != nil {
			t.Fatal(err)
		}
		limited := *s
		limited.maxAttempts = 2
		r, err := limited.NewReader(ctx, Location{"backups", key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		sw.Kill()
		defer sw.Start()
		start := time.Now()
		_, err = io.ReadAll(r)
		if err == nil || !strings.Contains(err.Error(), "after 2 failed attempts (max_attempts)") {
			t.Fatalf("read with the server down: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("gave up after %s", d)
		}
	})

	t.Run("ServerKilledMidUpload", func(t *testing.T) {
		loc := Location{"backups", "killed/"}
		u, err := s.Create(ctx, loc, "qubes-backup-x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(data[:PartSize+1]); err != nil { // one part sent
			t.Fatal(err)
		}
		u.wg.Wait()
		sw.Kill()
		// It comes back while the failed upload is being aborted.
		done := make(chan struct{})
		go func() { time.Sleep(2 * time.Second); sw.Start(); close(done) }()
		_, werr := u.Write(data[PartSize+1:])
		cerr := u.Commit()
		<-done
		if werr == nil && cerr == nil {
			t.Fatal("the upload succeeded with its server killed")
		}
		if objs, _ := s.List(ctx, loc, ""); len(objs) != 0 {
			t.Fatalf("objects: %v", objs)
		}
		if ups := sw.MultipartUploads("backups"); len(ups) != 0 {
			t.Fatalf("uploads left: %v", ups)
		}
	})
}
