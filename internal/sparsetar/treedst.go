package sparsetar

import (
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// treeDst is where a tree is extracted: a directory (through an os.Root),
// or for verification a model that keeps only each entry's kind. Both take
// the same calls from one treeExtractor, so that verifying a tree runs
// every check extracting it runs and "intact" means "will extract".
type treeDst interface {
	// kind is the type bits of rel (fs.ModeDir, fs.ModeSymlink, 0 for a
	// regular file), or an error wrapping fs.ErrNotExist.
	kind(rel string) (fs.FileMode, error)
	mkdir(rel string) error    // fs.ErrExist if rel exists
	mkdirAll(rel string) error // its missing directories
	symlink(target, rel string) error
	link(target, rel string) error
	// create makes a new regular file (fs.ErrExist if rel exists) and
	// returns where its content goes (a SparseWriter, or io.Discard) and
	// how to finish it.
	create(rel string) (w io.Writer, finish func(mode fs.FileMode, mtime time.Time) error, err error)
	finishDir(rel string, mode fs.FileMode, mtime time.Time) error
}

// rootDst extracts into a directory.
type rootDst struct{ root *os.Root }

func (d rootDst) kind(rel string) (fs.FileMode, error) {
	fi, err := d.root.Lstat(rel)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Type(), nil
}

func (d rootDst) mkdir(rel string) error           { return d.root.Mkdir(rel, 0o700) }
func (d rootDst) mkdirAll(rel string) error        { return d.root.MkdirAll(rel, 0o700) }
func (d rootDst) symlink(target, rel string) error { return d.root.Symlink(target, rel) }
func (d rootDst) link(target, rel string) error    { return d.root.Link(target, rel) }
func (d rootDst) finishDir(rel string, mode fs.FileMode, mtime time.Time) error {
	if err := d.root.Chmod(rel, mode); err != nil {
		return err
	}
	_ = d.root.Chtimes(rel, mtime, mtime) // best effort
	return nil
}

func (d rootDst) create(rel string) (io.Writer, func(fs.FileMode, time.Time) error, error) {
	// O_EXCL: never open an existing file, and above all not a symlink.
	f, err := d.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, err
	}
	sw := NewSparseWriter(f)
	finish := func(mode fs.FileMode, mtime time.Time) error {
		defer f.Close()
		if mode == ^fs.FileMode(0) { // abandoned
			return nil
		}
		if err := sw.Close(); err != nil {
			return err
		}
		if err := f.Chmod(mode); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		_ = d.root.Chtimes(rel, mtime, mtime) // best effort
		return nil
	}
	return sw, finish, nil
}

// modelDst is an extraction that writes nothing: it remembers each
// entry's kind, and fails where a directory would (an existing name, a
// missing parent, a name the kernel refuses).
type modelDst map[string]fs.FileMode

func (m modelDst) kind(rel string) (fs.FileMode, error) {
	if rel == "." {
		return fs.ModeDir, nil
	}
	if err := m.nameOK(rel); err != nil {
		return 0, err
	}
	k, ok := m[rel]
	if !ok {
		return 0, &fs.PathError{Op: "lstat", Path: rel, Err: fs.ErrNotExist}
	}
	return k, nil
}

// nameOK refuses what a Linux file system refuses: a component longer than
// 255 bytes or a path longer than 4095.
func (m modelDst) nameOK(rel string) error {
	if len(rel) > 4095 {
		return &fs.PathError{Op: "open", Path: rel, Err: syscall.ENAMETOOLONG}
	}
	for _, c := range strings.Split(rel, "/") {
		if len(c) > 255 {
			return &fs.PathError{Op: "open", Path: rel, Err: syscall.ENAMETOOLONG}
		}
	}
	return nil
}

// add makes rel an entry of kind k, as a directory's create would: its
// parent must be a directory, and rel must not exist.
func (m modelDst) add(rel string, k fs.FileMode) error {
	if err := m.nameOK(rel); err != nil {
		return err
	}
	if pk, err := m.kind(path.Dir(rel)); err != nil {
		return err
	} else if pk != fs.ModeDir {
		return &fs.PathError{Op: "open", Path: rel, Err: syscall.ENOTDIR}
	}
	if _, ok := m[rel]; ok {
		return &fs.PathError{Op: "open", Path: rel, Err: fs.ErrExist}
	}
	m[rel] = k
	return nil
}

func (m modelDst) mkdir(rel string) error { return m.add(rel, fs.ModeDir) }

func (m modelDst) mkdirAll(rel string) error {
	if rel == "." {
		return nil
	}
	if k, err := m.kind(rel); err == nil {
		if k != fs.ModeDir {
			return &fs.PathError{Op: "mkdir", Path: rel, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if err := m.mkdirAll(path.Dir(rel)); err != nil {
		return err
	}
	return m.mkdir(rel)
}

func (m modelDst) symlink(_, rel string) error { return m.add(rel, fs.ModeSymlink) }
func (m modelDst) link(_, rel string) error    { return m.add(rel, 0) }
func (m modelDst) finishDir(string, fs.FileMode, time.Time) error {
	return nil
}

func (m modelDst) create(rel string) (io.Writer, func(fs.FileMode, time.Time) error, error) {
	if err := m.add(rel, 0); err != nil {
		return nil, nil, err
	}
	return io.Discard, func(fs.FileMode, time.Time) error { return nil }, nil
}
