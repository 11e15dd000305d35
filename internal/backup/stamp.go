package backup

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// Stamps spare an increment the reading of volumes nobody touched: the
// record keeps, beside each volume's digests, which file the backup read
// (device and inode) and its size and change and modification times. An
// image with the same stamp now is the same file, unchanged, so its
// digests are the record's. A committed image changes by being replaced
// (a new inode, a new change time) or grown in place (a new size and
// change time); a write in place sets the change time, which no one can
// set back. The clock that stamps a file is coarse (a tick of a few
// milliseconds), so a write just after the backup read the time could
// leave it as it was: a file changed less than stampSettle before the
// backup gets no stamp and is hashed, now and at the next backup. Every
// checkEvery-th increment hashes all volumes whatever their stamps.
const stampSettle = 2 * time.Second

// fileStamp is the stamp of the open file f, or "" when it has none: not
// a regular file, or changed too recently to tell a later change.
func fileStamp(f *os.File, now time.Time) string {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	ctime := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if now.Sub(ctime) < stampSettle || now.Sub(mtime) < stampSettle {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d:%d", st.Dev, st.Ino, st.Size, ctime.UnixNano(), mtime.UnixNano())
}
