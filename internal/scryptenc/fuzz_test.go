package scryptenc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"testing"
)

func FuzzDecrypt(f *testing.F) {
	vector, _ := hex.DecodeString(vectorHex)
	f.Add(vector)
	f.Add(vector[:96])
	f.Add([]byte("scrypt\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, err := Decrypt(bytes.NewReader(data), []byte(vectorPass), DefaultLimits, 1<<20)
		if err == nil {
			// Only the real vector (or another file under the same key,
			// which the fuzzer cannot forge) may decrypt.
			if !bytes.Equal(plain, []byte("hello qubes\n")) {
				t.Fatalf("forged plaintext %q accepted", plain)
			}
			return
		}
		for _, known := range []error{ErrNotScrypt, ErrUnsupportedVersion, ErrCorrupt, ErrBadPassphrase, ErrTooExpensive} {
			if errors.Is(err, known) {
				return
			}
		}
		t.Fatalf("error outside the documented set: %v", err)
	})
}

// FuzzLimits checks the cost arithmetic against math/big: no panic, Memory
// and Work exact or saturated (never wrapped), and Check accepting exactly
// the parameters whose true cost fits the limits.
func FuzzLimits(f *testing.F) {
	f.Add(uint8(40), uint32(1<<17), uint32(1<<7), uint64(4<<30), uint64(1<<27)) // both products wrap to 0
	f.Add(uint8(36), uint32(1<<21), uint32(1<<7), uint64(4<<30), uint64(1<<27)) // memory wraps to 0
	f.Add(uint8(63), uint32(8), uint32(1), uint64(4<<30), uint64(1<<27))
	f.Add(uint8(22), uint32(8), uint32(1), uint64(4<<30), uint64(1<<27)) // exactly the memory limit
	f.Add(uint8(255), uint32(math.MaxUint32), uint32(math.MaxUint32), uint64(math.MaxUint64), uint64(math.MaxUint64))
	f.Add(uint8(57), uint32(1), uint32(1), uint64(math.MaxUint64), uint64(math.MaxUint64)) // 2^64 bytes
	f.Fuzz(func(t *testing.T, logN uint8, r, p uint32, maxMem, maxWork uint64) {
		params := Params{LogN: logN, R: r, P: p}
		n := new(big.Int).Lsh(big.NewInt(1), uint(logN))
		mem := new(big.Int).Mul(n, new(big.Int).SetUint64(128*uint64(r)))
		work := new(big.Int).Mul(n, new(big.Int).Mul(new(big.Int).SetUint64(uint64(r)), new(big.Int).SetUint64(uint64(p))))
		saturated := func(x *big.Int) uint64 {
			if x.IsUint64() {
				return x.Uint64()
			}
			return math.MaxUint64
		}
		if got := params.Memory(); got != saturated(mem) {
			t.Fatalf("%v: Memory() = %d, want %v (saturated)", params, got, mem)
		}
		if got := params.Work(); got != saturated(work) {
			t.Fatalf("%v: Work() = %d, want %v (saturated)", params, got, work)
		}
		limits := Limits{MaxMemory: maxMem, MaxWork: maxWork}
		fits := mem.Cmp(new(big.Int).SetUint64(maxMem)) <= 0 && logN <= 40 &&
			work.Cmp(new(big.Int).SetUint64(maxWork)) <= 0
		err := limits.Check(params)
		if fits != (err == nil) {
			t.Fatalf("%v with %+v: Check = %v, but the true cost is %v bytes, N·r·p = %v", params, limits, err, mem, work)
		}
		if err != nil && !errors.Is(err, ErrTooExpensive) {
			t.Fatalf("%v: %v is not ErrTooExpensive", params, err)
		}
	})
}
