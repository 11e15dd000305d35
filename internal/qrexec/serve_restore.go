package qrexec

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"pedos.dev/backup/internal/objstore"
)

// serveRestore is the VM side of qubes.Restore: the stream goes to stdout.
func serveRestore(h *handler, root *os.Root, loc string) int {
	if objstore.IsURL(loc) {
		return restoreFromObject(h, loc)
	}
	name := inVM(loc)
	info, err := root.Stat(name)
	if err == nil && info.Mode().IsRegular() {
		return restoreFromFile(h, root, name)
	}
	cmd, err := command(loc, "a file", err)
	if err != nil {
		return h.fail(err)
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		return h.fail(err)
	}
	h.setUndo(killOwnGroup)
	err = cmd.Wait()
	h.setUndo(nil)
	if err != nil {
		return exitStatus(err)
	}
	return 0
}

func restoreFromFile(h *handler, root *os.Root, name string) int {
	// O_NONBLOCK: should the file have become a FIFO since the check, we
	// must not hang opening it; the check below then refuses it.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return h.fail(err)
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return h.fail(fmt.Errorf("%s is not a regular file", name))
	}
	if _, err := io.Copy(os.Stdout, f); err != nil {
		return h.fail(err)
	}
	return 0
}
