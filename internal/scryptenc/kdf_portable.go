package scryptenc

import "golang.org/x/crypto/scrypt"

// portableKDF is the reference implementation, used where there is no
// SIMD BlockMix and in tests as the oracle.
func portableKDF(password, salt []byte, logN uint8, r, p int) []byte {
	dk, err := scrypt.Key(password, salt, 1<<logN, r, p, 64)
	if err != nil {
		panic(err) // parameters were checked by the caller
	}
	return dk
}
