//go:build !linux

package chain

import (
	"errors"
	"os"
)

func punch(*os.File, int64, int64, uint32) error { return errors.ErrUnsupported }
