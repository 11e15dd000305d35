package legacy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"pedos.dev/backup/internal/sparsetar"
)

// Format 1 (R1 to R2-beta2) is a directory: qubes.xml and a copy
// (cp -rp, so sparse files and symlinks survive) of /var/lib/qubes's
// appvms/<name>/, servicevms/<name>/, vm-templates/<name>/, plus
// dom0-home/<user>/. A VM is in the backup when its directory is. There is
// no integrity check at all.

// qubesBaseDir is where core2 VMs lived; dir_path is below it.
const qubesBaseDir = "/var/lib/qubes/"

// IsV1Dir reports whether dir is a format 1 backup: a directory holding
// qubes.xml.
func IsV1Dir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "qubes.xml"))
	return err == nil && fi.Mode().IsRegular()
}

// V1Backup is an opened format 1 directory.
type V1Backup struct {
	dir   string
	orig  []byte
	xml   []byte
	files []V1File
}

// V1File is one stored file of a format 1 backup, named as Reader.Next
// would name it: each entry of a VM's directory ("appvms/work/private.img",
// "vm-templates/fedora-14/apps.templates"), and the dom0 home as one
// tree ("dom0-home/user").
type V1File struct {
	Name string
	// Path is where it is on disk.
	Path string
	// Dir: a directory, read as a tree of members below Name.
	Dir bool
	// Size is the exact length of the tar stream Open returns (as the file
	// is now).
	Size int64
}

// OpenV1 reads the format 1 backup in dir: its qubes.xml and which VMs'
// directories it holds. The backup-size of each VM in QubesXML is the
// total of its files' Size.
func OpenV1(dir string) (*V1Backup, error) {
	orig, err := readLimited(filepath.Join(dir, "qubes.xml"), maxQubesXML)
	if err != nil {
		return nil, err
	}
	db, err := parseCore2(orig)
	if err != nil {
		return nil, err
	}
	b := &V1Backup{dir: dir, orig: orig}
	var dom0 []V1File
	b.xml, _, err = convert(db, func(vm *core2VM) (backupInfo, bool, error) {
		files, p, err := b.vmFiles(vm)
		if err != nil || files == nil {
			return backupInfo{}, false, err
		}
		var size int64
		for _, f := range files {
			size += f.Size
		}
		if vm.qid == 0 {
			dom0 = files // the home comes last, as in the other formats
		} else {
			b.files = append(b.files, files...)
		}
		return backupInfo{path: p, size: size}, true, nil
	})
	if err != nil {
		return nil, err
	}
	b.files = append(b.files, dom0...)
	return b, nil
}

// QubesXML returns the backup's database converted to the R4 schema.
func (b *V1Backup) QubesXML() []byte { return b.xml }

// OriginalXML returns the core2 qubes.xml as stored.
func (b *V1Backup) OriginalXML() []byte { return b.orig }

// Files lists the stored files, VM by VM in qubes.xml order, the dom0 home
// last.
func (b *V1Backup) Files() []V1File { return slices.Clone(b.files) }

// vmFiles lists a VM's files and its backup-path; nil files when the VM
// is not in the backup.
func (b *V1Backup) vmFiles(vm *core2VM) ([]V1File, string, error) {
	if vm.qid == 0 {
		return b.homeFiles()
	}
	rel, ok := strings.CutPrefix(path.Clean(vm.attr("dir_path")), qubesBaseDir)
	if !ok || checkFileName(rel) != nil || strings.HasSuffix(rel, "/.") || rel == "dom0-home" || rel == "qubes.xml" {
		return nil, "", nil // not a directory this backup can hold
	}
	if err := realDir(b.dir, rel); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil
		}
		return nil, "", err
	}
	entries, err := os.ReadDir(filepath.Join(b.dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, "", err
	}
	files := []V1File{}
	for _, e := range entries {
		// Symlinks (icon.png pointed into the host's /usr/share) and
		// special files are not the VM's data.
		if !e.Type().IsRegular() && !e.IsDir() {
			continue
		}
		f, err := newV1File(rel+"/"+e.Name(), filepath.Join(b.dir, filepath.FromSlash(rel), e.Name()), e.IsDir())
		if err != nil {
			return nil, "", err
		}
		files = append(files, f)
	}
	return files, rel + "/", nil
}

// homeFiles finds dom0-home/<user>: the reference restore took the first
// entry of dom0-home; here there must be exactly one directory.
func (b *V1Backup) homeFiles() ([]V1File, string, error) {
	if err := realDir(b.dir, "dom0-home"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil
		}
		return nil, "", err
	}
	entries, err := os.ReadDir(filepath.Join(b.dir, "dom0-home"))
	if err != nil {
		return nil, "", err
	}
	var users []string
	for _, e := range entries {
		if e.IsDir() {
			users = append(users, e.Name())
		}
	}
	if len(users) != 1 {
		return nil, "", fmt.Errorf("%w: dom0-home holds %d user directories, want one", ErrUnexpectedMember, len(users))
	}
	name := "dom0-home/" + users[0]
	if err := checkFileName(name); err != nil {
		return nil, "", err
	}
	f, err := newV1File(name, filepath.Join(b.dir, "dom0-home", users[0]), true)
	if err != nil {
		return nil, "", err
	}
	return []V1File{f}, name, nil
}

// realDir checks that every component of rel below base is a directory
// and none a symlink: a symlinked VM directory would make the restore read
// files of this machine (another VM's image, say) as the backup's. Entries
// inside are checked by their listing (symlinks are skipped or kept as
// links). The backup directory must not change during the restore.
func realDir(base, rel string) error {
	p := base
	for _, c := range strings.Split(rel, "/") {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory (a symlink?)", ErrUnexpectedMember, p)
		}
	}
	return nil
}

func newV1File(name, p string, dir bool) (V1File, error) {
	if err := checkFileName(name); err != nil {
		return V1File{}, err
	}
	f := V1File{Name: name, Path: p, Dir: dir}
	var err error
	switch {
	case dir:
		f.Size, err = sparsetar.TreeSize(name, p)
	case isImage(name):
		var fh *os.File
		if fh, err = os.Open(p); err == nil {
			f.Size, _, err = sparsetar.VolumeSize(name, fh)
			fh.Close()
		}
	default:
		var fi fs.FileInfo
		if fi, err = os.Stat(p); err == nil {
			f.Size, err = sparsetar.FileSize(name, fi.Size(), fi.Mode(), fi.ModTime())
		}
	}
	f.Size += sparsetar.EndSize
	return f, err
}

// isImage tells disk images, which are stored sparsely.
func isImage(name string) bool { return strings.HasSuffix(name, ".img") }

// Open returns the file as an inner tar stream, like a File of
// Reader.Next: one member Name (sparse for images), or for a directory the
// tree under Name. Close it to stop early.
func (f V1File) Open() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		w := sparsetar.NewWriter(pw)
		var err error
		switch {
		case f.Dir:
			err = w.AddTree(f.Name, f.Path)
		case isImage(f.Name):
			var fh *os.File
			if fh, err = os.Open(f.Path); err == nil {
				_, err = w.AddVolume(f.Name, fh)
				fh.Close()
			}
		default:
			err = w.AddFile(f.Name, f.Path)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// readLimited reads a file of at most limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, name, limit)
	}
	return b, err
}
