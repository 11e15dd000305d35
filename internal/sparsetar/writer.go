package sparsetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Writer writes one inner tar stream. Regular entries go through
// archive/tar; sparse members are written as raw blocks because archive/tar
// cannot write them (golang.org/issue/22735).
//
// All entries are stored with uid/gid 0 and no user or group names: the
// restoring side owns the files, and the output stays reproducible.
//
// After an error that may have left a partial entry in the stream, every
// later call returns that error.
type Writer struct {
	w   io.Writer
	tw  *tar.Writer
	err error
}

// NewWriter returns a Writer that writes the tar stream to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, tw: tar.NewWriter(w)}
}

// fail records err as sticky: the stream may hold a partial entry.
func (w *Writer) fail(err error) error {
	if err != nil && w.err == nil {
		w.err = err
	}
	return err
}

// header returns a regular-file header in the fixed ownership used here.
func header(typ byte, name string, mode fs.FileMode, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     int64(mode.Perm()),
		// Whole seconds: fits the ustar field, so no PAX mtime record.
		ModTime: mtime.Truncate(time.Second),
		// PAX (not GNU) when a name does not fit ustar, as GNU tar --posix.
		Format: tar.FormatPAX,
	}
}

// AddBytes stores data as a regular file called name.
func (w *Writer) AddBytes(name string, data []byte, mode fs.FileMode, mtime time.Time) error {
	if w.err != nil {
		return w.err
	}
	if err := checkName(name); err != nil {
		return err
	}
	hdr := header(tar.TypeReg, name, mode, mtime)
	hdr.Size = int64(len(data))
	if err := w.tw.WriteHeader(hdr); err != nil {
		return w.fail(err)
	}
	_, err := w.tw.Write(data)
	return w.fail(err)
}

// AddFile stores the regular file at path (a symlink at path itself is
// followed, like tar --dereference) as name.
func (w *Writer) AddFile(name, path string) error {
	if w.err != nil {
		return w.err
	}
	if err := checkName(name); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("sparsetar: %s is not a regular file", path)
	}
	return w.addOpenFile(name, f, fi)
}

// addOpenFile copies the open regular file f, whose metadata is fi.
func (w *Writer) addOpenFile(name string, f *os.File, fi fs.FileInfo) error {
	hdr := header(tar.TypeReg, name, fi.Mode(), fi.ModTime())
	hdr.Size = fi.Size()
	if err := w.tw.WriteHeader(hdr); err != nil {
		return w.fail(err)
	}
	// A file that grows is cut at the size in the header (tar does the
	// same); one that shrinks cannot be completed and is an error.
	if _, err := io.CopyN(w.tw, f, hdr.Size); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("sparsetar: %s shrank while being read", f.Name())
		}
		return w.fail(err)
	}
	return nil
}

// AddTree stores the directory dir recursively under name: the directory as
// "name/", then its entries depth first in lexical order. Symlinks are stored
// as symlinks, hard links as separate copies, and sockets, devices and fifos
// are skipped. A symlink at dir itself is followed.
func (w *Writer) AddTree(name, dir string) error {
	if w.err != nil {
		return w.err
	}
	return walkTree(name, dir, func(hdr *tar.Header, p string) error {
		if hdr.Typeflag != tar.TypeReg {
			return w.fail(w.tw.WriteHeader(hdr))
		}
		// If the file was swapped since the walk saw it: O_NOFOLLOW fails
		// rather than back up a symlink's target, O_NONBLOCK keeps a fifo
		// from hanging the backup (the type check below then refuses it).
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("sparsetar: %s changed type while being read", p)
		}
		return w.addOpenFile(hdr.Name, f, fi)
	})
}

// walkTree calls fn with the header AddTree stores for each entry of dir
// (regular files with the size the walk saw) and the entry's path.
func walkTree(name, dir string, fn func(hdr *tar.Header, path string) error) error {
	if err := checkName(name); err != nil {
		return err
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err // an unreadable directory must not silently vanish from a backup
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		arc := name
		if rel != "." {
			arc = name + "/" + filepath.ToSlash(rel)
		}
		if p == root && !d.IsDir() {
			return fmt.Errorf("sparsetar: %s is not a directory", dir)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch fi.Mode().Type() {
		case fs.ModeDir:
			return fn(header(tar.TypeDir, arc+"/", fi.Mode(), fi.ModTime()), p)
		case fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr := header(tar.TypeSymlink, arc, 0o777, fi.ModTime())
			hdr.Linkname = target
			return fn(hdr, p)
		case 0:
			hdr := header(tar.TypeReg, arc, fi.Mode(), fi.ModTime())
			hdr.Size = fi.Size()
			return fn(hdr, p)
		default:
			return nil // sockets, devices, fifos: nothing a restore could use
		}
	})
}

// Close writes the end-of-archive marker (two zero blocks). It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	return w.fail(w.tw.Close())
}

// Errors returned by the readers and, for bad names, by the Writer.
var (
	// ErrUnexpectedMember: a member with another name, of a type that is
	// not allowed, a duplicate, or a member where none may follow.
	ErrUnexpectedMember = errors.New("sparsetar: unexpected member")
	// ErrTooLarge: content beyond the caller's size limit.
	ErrTooLarge = errors.New("sparsetar: content exceeds size limit")
	// ErrUnsafeName: an absolute name, a ".." or empty component, a control
	// character, or a path outside the expected prefix or through a symlink.
	ErrUnsafeName = errors.New("sparsetar: unsafe name")
)

// checkName accepts only clean relative slash-separated names, so a name
// means the same thing to every reader and can never climb out of a
// destination directory.
func checkName(name string) error {
	if name == "" || name[0] == '/' {
		return fmt.Errorf("%w: %q", ErrUnsafeName, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return fmt.Errorf("%w: control character in %q", ErrUnsafeName, name)
		}
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%w: %q", ErrUnsafeName, name)
		}
	}
	return nil
}
