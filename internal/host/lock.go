package host

import (
	"errors"
	"os"
	"syscall"
)

// locked runs fn holding an exclusive flock on $ROOT/pedos.xml.lock. flock
// locks belong to the open file, so this also serialises goroutines of one
// process; it is not reentrant. The lock dies with the process, so a
// killed writer never leaves the host locked.
func (h *Host) locked(fn func() error) error {
	f, err := os.OpenFile(h.path(lockFile), os.O_RDWR|os.O_CREATE, 0o660)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return err
	}
	return fn() // closing f releases the lock
}
