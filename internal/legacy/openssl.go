package legacy

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"fmt"
	"io"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// `openssl enc -e -aes-256-cbc -pass pass:P` as formats 2 and 3 ran it
// (OpenSSL 1.0, whose key derivation was MD5): the output is "Salted__",
// an 8-byte salt, then AES-CBC with PKCS#7 padding under the key and IV
// of EVP_BytesToKey(MD5, count 1) over the passphrase and salt.

const (
	saltMagic  = "Salted__"
	saltHeader = len(saltMagic) + 8
)

// cipherKeyLen returns the key length of a header's crypto-algorithm.
func cipherKeyLen(name string) (int, error) {
	switch strings.ToLower(name) {
	case "aes-128-cbc":
		return 16, nil
	case "aes-192-cbc":
		return 24, nil
	case "aes-256-cbc":
		return 32, nil
	}
	return 0, fmt.Errorf("%w: cipher %s", ErrUnsupported, elide.Quote(name))
}

// bytesToKey is OpenSSL's EVP_BytesToKey with MD5 and one iteration:
// D1 = MD5(pass‖salt), Di = MD5(Di-1‖pass‖salt), cut into key and IV.
func bytesToKey(pass, salt []byte, keyLen int) (key, iv []byte) {
	var d, prev []byte
	for len(d) < keyLen+aes.BlockSize {
		h := md5.New()
		h.Write(prev)
		h.Write(pass)
		h.Write(salt)
		prev = h.Sum(nil)
		d = append(d, prev...)
	}
	return d[:keyLen], d[keyLen : keyLen+aes.BlockSize]
}

// newDecrypter reads the 16-byte "Salted__" header of an openssl output.
func newDecrypter(pass, head []byte, keyLen int, name string) (cipher.BlockMode, error) {
	if !bytes.HasPrefix(head, []byte(saltMagic)) {
		return nil, fmt.Errorf("%w: %s does not start with OpenSSL's %q header", ErrCorrupt, name, saltMagic)
	}
	key, iv := bytesToKey(pass, head[len(saltMagic):saltHeader], keyLen)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewCBCDecrypter(block, iv), nil
}

// unpad returns the length of a decrypted stream whose last block is last
// without its PKCS#7 padding, checked byte by byte.
func unpad(total int, last []byte, name string) (int, error) {
	n := int(last[len(last)-1])
	if n == 0 || n > aes.BlockSize {
		return 0, fmt.Errorf("%w: %s: bad padding after decryption (damaged data, or chunks missing at its end)", ErrCorrupt, name)
	}
	for _, b := range last[len(last)-n:] {
		if int(b) != n {
			return 0, fmt.Errorf("%w: %s: bad padding after decryption (damaged data, or chunks missing at its end)", ErrCorrupt, name)
		}
	}
	return total - n, nil
}

// decryptAll decrypts one whole openssl output in place (format 2 encrypts
// every chunk separately) and returns the plaintext.
func decryptAll(pass []byte, keyLen int, data []byte, name string) ([]byte, error) {
	if len(data) < saltHeader+aes.BlockSize || (len(data)-saltHeader)%aes.BlockSize != 0 {
		if !bytes.HasPrefix(data, []byte(saltMagic)) {
			return nil, fmt.Errorf("%w: %s does not start with OpenSSL's %q header", ErrCorrupt, name, saltMagic)
		}
		return nil, fmt.Errorf("%w: %s: %d bytes is not an OpenSSL header and whole cipher blocks", ErrCorrupt, name, len(data))
	}
	mode, err := newDecrypter(pass, data[:saltHeader], keyLen, name)
	if err != nil {
		return nil, err
	}
	ct := data[saltHeader:]
	mode.CryptBlocks(ct, ct)
	n, err := unpad(len(ct), ct[len(ct)-aes.BlockSize:], name)
	if err != nil {
		return nil, err
	}
	return ct[:n], nil
}

// cbcReader decrypts one openssl output read from src as a stream (format
// 3 encrypts a file's whole compressed stream once, then cuts it). The
// last block is held back until src ends, because only it has padding.
type cbcReader struct {
	src    io.Reader
	pass   []byte
	keyLen int
	name   string
	mode   cipher.BlockMode
	buf    []byte
	pend   []byte // ciphertext not yet decrypted: at most one held-back block and a partial one
	out    []byte // plaintext ready to hand out
	err    error  // after out: io.EOF at a correct end
}

const cbcBufSize = 256 << 10

func (c *cbcReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.err = c.fill()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// fill decrypts the next piece of src into out; its error (io.EOF at the
// end) applies once out has been read.
func (c *cbcReader) fill() error {
	if c.mode == nil {
		head := make([]byte, saltHeader)
		if _, err := io.ReadFull(c.src, head); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: %s: stream ends inside its OpenSSL header", ErrTruncated, c.name)
			}
			return err
		}
		mode, err := newDecrypter(c.pass, head, c.keyLen, c.name)
		if err != nil {
			return err
		}
		c.mode, c.buf = mode, make([]byte, cbcBufSize)
	}
	k := copy(c.buf, c.pend)
	m, err := io.ReadFull(c.src, c.buf[k:])
	k += m
	end := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !end {
		return err
	}
	if !end {
		// More may follow, so the last whole block might be the final one:
		// keep it (and any partial block) for the next round.
		keep := aes.BlockSize + k%aes.BlockSize
		ct := c.buf[:k-keep]
		c.mode.CryptBlocks(ct, ct)
		c.out, c.pend = ct, c.buf[k-keep:k]
		return nil
	}
	if k == 0 || k%aes.BlockSize != 0 {
		return fmt.Errorf("%w: %s: the ciphertext is not a whole number of cipher blocks (truncated?)", ErrCorrupt, c.name)
	}
	ct := c.buf[:k]
	c.mode.CryptBlocks(ct, ct)
	n, err := unpad(k, ct[k-aes.BlockSize:], c.name)
	if err != nil {
		return err
	}
	c.out, c.pend = ct[:n], nil
	return io.EOF
}
