package scryptenc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/testutil"
)

// cheap keeps the KDF at a few milliseconds; real costs are benchmarked.
var cheap = Params{LogN: 10, R: 8, P: 1}

// Vector from format.md §3.3, made with the scrypt 1.3.1 CLI.
const vectorHex = "736372797074000a000000080000000112215496fa8f58622d0b675fb71703175bdba9c67552f03e56e795cc" +
	"d917c85accfff899d225c79a0f1e8faf47200a64683fe1be4d996301e1ba3b9e16e7db90d0385d83fc7d295d" +
	"568a78abc909965942b2036a7b7c5c6478f06ab92ea88730d275e0db61a4f83407aabc66a6e28e0735508564" +
	"8a8b87a133b73378"

const vectorPass = "20260101T120000-4242!vm3/private.img.000!qubes"

func TestVector(t *testing.T) {
	file, _ := hex.DecodeString(vectorHex)
	got, err := Decrypt(bytes.NewReader(file), []byte(vectorPass), DefaultLimits, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello qubes\n" {
		t.Fatalf("plaintext %q", got)
	}
	h, _ := ParseHeader(file)
	if h.Params != (Params{LogN: 10, R: 8, P: 1}) {
		t.Fatalf("params %v", h.Params)
	}
	if _, err := Decrypt(bytes.NewReader(file), []byte(vectorPass+"x"), DefaultLimits, 1<<20); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Sizes around the internal step size crossed with write sizes, as age's
// stream tests do: the boundaries are where streaming code breaks.
func TestRoundTripSweep(t *testing.T) {
	pass := []byte("id!vm1/private.img.000!secret")
	key, err := NewKey(pass, cheap)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 31, 32, 33, stepSize - 1, stepSize, stepSize + 1, 2*stepSize + 500} {
		for _, ws := range []int{1 << 20, stepSize - 7, 4096, 1} {
			if ws == 1 && size > 5000 {
				continue
			}
			plain := randomBytes(size, uint64(size))
			// A key encrypts one file; reuse is fine here only because each
			// ciphertext is checked independently.
			var out bytes.Buffer
			w, err := NewWriter(&out, key)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(plain); off += ws {
				if _, err := w.Write(plain[off:min(off+ws, len(plain))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if out.Len() != size+Overhead {
				t.Fatalf("size %d: output %d bytes", size, out.Len())
			}
			// The streaming writer and the in-place sealer agree byte for byte.
			buf := bytes.Clone(plain)
			trailer := key.SealInPlace(buf)
			want := append(append(key.Header(), buf...), trailer[:]...)
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("size %d ws %d: Writer and SealInPlace differ", size, ws)
			}
			got, err := Decrypt(&out, pass, DefaultLimits, int64(size))
			if err != nil {
				t.Fatalf("size %d ws %d: %v", size, ws, err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("size %d ws %d: plaintext differs", size, ws)
			}
		}
	}
}

func TestDecryptRefusesOversizedInput(t *testing.T) {
	var out bytes.Buffer
	if err := Encrypt(&out, []byte("p"), make([]byte, 1000), cheap); err != nil {
		t.Fatal(err)
	}
	if _, err := Decrypt(bytes.NewReader(out.Bytes()), []byte("p"), DefaultLimits, 999); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if _, err := Decrypt(bytes.NewReader(out.Bytes()), []byte("p"), DefaultLimits, 1000); err != nil {
		t.Fatalf("exact size: %v", err)
	}
}

// Every region of the file, damaged, gives its own precise error.
func TestTamper(t *testing.T) {
	pass := []byte("pass")
	var out bytes.Buffer
	if err := Encrypt(&out, pass, []byte("some plaintext that is long enough"), cheap); err != nil {
		t.Fatal(err)
	}
	good := out.Bytes()
	cases := []struct {
		name string
		off  int
		want error
	}{
		{"magic", 0, ErrNotScrypt},
		{"version", 6, ErrUnsupportedVersion},
		{"logN", 7, ErrCorrupt},
		{"r", 11, ErrCorrupt},
		{"salt", 20, ErrCorrupt},
		{"checksum", 50, ErrCorrupt},
		{"header hmac", 70, ErrBadPassphrase},
		{"ciphertext", 100, ErrCorrupt},
		{"trailer", len(good) - 1, ErrCorrupt},
	}
	for _, c := range cases {
		bad := bytes.Clone(good)
		bad[c.off] ^= 0x01
		_, err := Decrypt(bytes.NewReader(bad), pass, DefaultLimits, 1<<20)
		if !errors.Is(err, c.want) {
			t.Errorf("%s (byte %d): got %v, want %v", c.name, c.off, err, c.want)
		}
	}
	for cut := 0; cut < len(good); cut++ {
		_, err := Decrypt(bytes.NewReader(good[:cut]), pass, DefaultLimits, 1<<20)
		switch {
		case err == nil:
			t.Fatalf("truncated to %d bytes: no error", cut)
		case cut < 6 && !errors.Is(err, ErrNotScrypt):
			t.Fatalf("truncated to %d: got %v, want ErrNotScrypt", cut, err)
		case cut >= 7 && !errors.Is(err, ErrCorrupt):
			t.Fatalf("truncated to %d: got %v, want ErrCorrupt", cut, err)
		}
	}
	if _, err := Decrypt(bytes.NewReader(good), []byte("wrong"), DefaultLimits, 1<<20); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

func TestLimits(t *testing.T) {
	big := Params{LogN: 22, R: 8, P: 1} // 4 GiB
	if err := DefaultLimits.Check(Params{LogN: 21, R: 8, P: 1}); err != nil {
		t.Fatalf("the scrypt tool's choice on a 24 GiB host is refused: %v", err)
	}
	if err := DefaultLimits.Check(Params{LogN: 18, R: 8, P: 9}); err != nil {
		t.Fatalf("a small-memory host's choice is refused: %v", err)
	}
	if err := DefaultLimits.Check(Params{LogN: 23, R: 8, P: 1}); !errors.Is(err, ErrTooExpensive) {
		t.Fatalf("8 GiB: %v", err)
	}
	if err := DefaultLimits.Check(Params{LogN: 16, R: 8, P: 1 << 12}); !errors.Is(err, ErrTooExpensive) {
		t.Fatalf("huge p: %v", err)
	}
	forced := DefaultLimits
	forced.Force = true
	if err := forced.Check(big); err != nil {
		t.Fatalf("forced: %v", err)
	}

	// The limit is applied to the header before any key derivation: a file
	// announcing logN 40 fails at once instead of allocating 128 TiB.
	var out bytes.Buffer
	if err := Encrypt(&out, []byte("p"), []byte("x"), cheap); err != nil {
		t.Fatal(err)
	}
	file := out.Bytes()
	file[7] = 40
	fixChecksum(file)
	if _, err := Decrypt(bytes.NewReader(file), []byte("p"), DefaultLimits, 10); !errors.Is(err, ErrTooExpensive) {
		t.Fatalf("logN 40: %v", err)
	}
}

// Headers whose cost products wrap in 64 bits are refused at once, with the
// true cost in the message, and even a forced read refuses what no process
// could allocate instead of panicking in make.
func TestLimitsOverflow(t *testing.T) {
	var out bytes.Buffer
	if err := Encrypt(&out, []byte("p"), []byte("x"), cheap); err != nil {
		t.Fatal(err)
	}
	forced := DefaultLimits
	forced.Force = true
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{LogN: 40, R: 1 << 17, P: 1 << 7}, "needs 16 EiB of memory"}, // 128·r·N and N·r·p both 2^64
		{Params{LogN: 36, R: 1 << 21, P: 1 << 7}, "needs 16 EiB of memory"},
		{Params{LogN: 63, R: 8, P: 1}, "needs 8 ZiB of memory"},
		{Params{LogN: 63, R: 1<<30 - 1, P: 1}, "needs 1.049e+06 YiB of memory"},
	} {
		file := bytes.Clone(out.Bytes())
		file[7] = c.p.LogN
		binary.BigEndian.PutUint32(file[8:12], c.p.R)
		binary.BigEndian.PutUint32(file[12:16], c.p.P)
		fixChecksum(file)
		start := time.Now()
		_, err := Decrypt(bytes.NewReader(file), []byte("p"), DefaultLimits, 10)
		if !errors.Is(err, ErrTooExpensive) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want ErrTooExpensive saying %q", c.p, err, c.want)
		}
		if _, err := Open(bytes.Clone(file), []byte("p"), forced); !errors.Is(err, ErrTooExpensive) {
			t.Errorf("%v forced: %v, want ErrTooExpensive", c.p, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%v: refused after %v, not at once", c.p, d)
		}
	}
	// Needs and limit that round alike are told apart by their bytes.
	err := Limits{MaxMemory: 1179647, MaxWork: 1 << 30}.Check(Params{LogN: 10, R: 9, P: 1})
	if err == nil || !strings.Contains(err.Error(), "needs 1.125 MiB (1179648 bytes) of memory (limit 1.125 MiB (1179647 bytes))") {
		t.Errorf("close limit: %v", err)
	}
	err = Limits{MaxMemory: 1 << 40, MaxWork: 1 << 27}.Check(Params{LogN: 30, R: 1, P: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "N·r·p = 1125899906842624 (limit 134217728)") {
		t.Errorf("work: %v", err)
	}
}

func fixChecksum(file []byte) {
	h := sha256.Sum256(file[:48])
	copy(file[48:64], h[:16])
}

func TestParamsValidateForWriting(t *testing.T) {
	for _, p := range []Params{{9, 8, 1}, {41, 8, 1}, {18, 0, 1}, {18, 33, 1}, {18, 8, 0}, {18, 8, 33}} {
		if p.ValidateForWriting() == nil {
			t.Errorf("%v accepted", p)
		}
	}
	if err := DefaultParams.ValidateForWriting(); err != nil {
		t.Fatal(err)
	}
}

func writePassFile(t *testing.T, pass string) string {
	path := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(path, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Files we write decrypt with Debian's scrypt tool, and its files decrypt with
// our reader, for several parameter sets including p > 1.
func TestInteropWithScryptTool(t *testing.T) {
	tool := testutil.RequireTool(t, "scrypt")
	pass := "20260101T120000-4242!vm3/private.img.000!correct horse"
	passFile := writePassFile(t, pass)
	dir := t.TempDir()
	for _, size := range []int{0, 12, stepSize + 3, 3 << 20} {
		plain := randomBytes(size, 7)
		enc := filepath.Join(dir, "ours.enc")
		var out bytes.Buffer
		if err := Encrypt(&out, []byte(pass), plain, cheap); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(enc, out.Bytes(), 0o600)
		cmd := exec.Command(tool, "dec", "-f", "--passphrase", "file:"+passFile, enc)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("scrypt dec of our %d-byte file: %v", size, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("scrypt dec of our %d-byte file: plaintext differs", size)
		}
	}
	for _, p := range []Params{{10, 8, 1}, {11, 4, 3}, {10, 1, 2}} {
		plain := randomBytes(100000, 9)
		src := filepath.Join(dir, "plain")
		os.WriteFile(src, plain, 0o600)
		cmd := exec.Command(tool, "enc", "--logN", strconv.Itoa(int(p.LogN)), "-r", strconv.Itoa(int(p.R)), "-p", strconv.Itoa(int(p.P)),
			"--passphrase", "file:"+passFile, src)
		enc, err := cmd.Output()
		if err != nil {
			t.Fatalf("scrypt enc %v: %v", p, err)
		}
		h, err := ParseHeader(enc)
		if err != nil || h.Params != p {
			t.Fatalf("header of scrypt enc %v: %v %v", p, h.Params, err)
		}
		got, err := Decrypt(bytes.NewReader(enc), []byte(pass), DefaultLimits, 1<<20)
		if err != nil {
			t.Fatalf("decrypting scrypt enc %v: %v", p, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("decrypting scrypt enc %v: plaintext differs", p)
		}
		if _, err := Decrypt(bytes.NewReader(enc), []byte(pass[:len(pass)-1]), DefaultLimits, 1<<20); !errors.Is(err, ErrBadPassphrase) {
			t.Fatalf("wrong passphrase on scrypt enc output: %v", err)
		}
	}
	// The tool agrees with us about tampering: a damaged file of ours is
	// rejected by it as well.
	var out bytes.Buffer
	Encrypt(&out, []byte(pass), []byte("data"), cheap)
	bad := out.Bytes()
	bad[len(bad)-1] ^= 1
	enc := filepath.Join(dir, "bad.enc")
	os.WriteFile(enc, bad, 0o600)
	res, err := exec.Command(tool, "dec", "-f", "--passphrase", "file:"+passFile, enc, filepath.Join(dir, "out")).CombinedOutput()
	if err == nil || !strings.Contains(string(res), "not valid") {
		t.Fatalf("scrypt dec accepted a tampered file: %v %s", err, res)
	}
}

func BenchmarkSealInPlace(b *testing.B) {
	k, _ := NewKey([]byte("p"), cheap)
	buf := make([]byte, 64<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		k.SealInPlace(buf)
	}
}

func BenchmarkOpenInPlace(b *testing.B) {
	var out bytes.Buffer
	Encrypt(&out, []byte("p"), make([]byte, 64<<20), cheap)
	file := out.Bytes()
	h, _ := ParseHeader(file)
	k, _ := h.DeriveKey([]byte("p"))
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		// Decrypting in place twice restores the ciphertext, keeping the
		// trailer valid for the next round.
		if _, err := k.OpenInPlace(file[HeaderSize:]); err != nil {
			b.Fatal(err)
		}
		k.ctr().XORKeyStream(file[HeaderSize:len(file)-TrailerSize], file[HeaderSize:len(file)-TrailerSize])
	}
}

func BenchmarkKDFDefault(b *testing.B) {
	for b.Loop() {
		if _, err := NewKey([]byte("p"), DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSubkey(t *testing.T) {
	k, err := NewKey([]byte("p"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	a, b := k.Subkey("label a"), k.Subkey("label b")
	if bytes.Equal(a, b) || len(a) != 32 {
		t.Fatalf("labels not separated: %x %x", a, b)
	}
	// The same file opened again with the passphrase yields the same subkey.
	h, _ := ParseHeader(k.Header())
	again, err := h.DeriveKey([]byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Subkey("label a"), a) {
		t.Fatal("subkey differs after re-deriving the key")
	}
	other, _ := NewKey([]byte("p"), cheap) // another salt
	if bytes.Equal(other.Subkey("label a"), a) {
		t.Fatal("subkeys of different files are equal")
	}
}

// Keys derived as a pair are two ordinary keys: each opens with its own
// passphrase (also with the scrypt tool's rules: Open checks the header
// HMAC and the trailer), not with the other's, and their salts differ.
func TestNewKeyPair(t *testing.T) {
	passA, passB := []byte("id!vm1/private.img.000!secret"), []byte("id!vm2/private.img.000!secret")
	a, b, err := NewKeyPair(passA, passB, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Header()[16:48], b.Header()[16:48]) {
		t.Error("the pair shares a salt")
	}
	for _, c := range []struct {
		k          *Key
		pass, fake []byte
	}{{a, passA, passB}, {b, passB, passA}} {
		var out bytes.Buffer
		w, err := NewWriter(&out, c.k)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("chunk data"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, err := Open(bytes.Clone(out.Bytes()), c.pass, DefaultLimits); err != nil || string(got) != "chunk data" {
			t.Errorf("Open: %q, %v", got, err)
		}
		if _, err := Open(bytes.Clone(out.Bytes()), c.fake, DefaultLimits); !errors.Is(err, ErrBadPassphrase) {
			t.Errorf("the other key's passphrase: %v", err)
		}
	}
}

// Estimate scales a timed small derivation by the work: double N, double
// the time; a real derivation at logN 16 takes about what it says.
func TestEstimate(t *testing.T) {
	p := Params{LogN: 16, R: 8, P: 1}
	est := Estimate(p)
	if twice := Estimate(Params{LogN: 17, R: 8, P: 1}); twice != 2*est {
		t.Errorf("logN 17: %v, logN 16: %v", twice, est)
	}
	start := time.Now()
	if _, err := NewKey([]byte("p"), p); err != nil {
		t.Fatal(err)
	}
	// Loose: this machine may be busy with other tests.
	if took := time.Since(start); est > 20*took || took > 20*est {
		t.Errorf("estimated %v, took %v", est, took)
	}
}
