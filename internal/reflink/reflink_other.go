//go:build !linux

package reflink

import (
	"fmt"
	"os"
)

// CloneFile is Linux only.
func CloneFile(dst, src *os.File) error {
	return fmt.Errorf("clone %s: %w", src.Name(), ErrUnsupported)
}

// Map is Linux only.
func Map(f *os.File) ([]Extent, error) {
	return nil, fmt.Errorf("extent map of %s: %w", f.Name(), ErrUnsupported)
}
