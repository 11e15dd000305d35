package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

// What a stored file is made from.
type fileKind int

const (
	volumeFile fileKind = iota // a volume image, AddVolume
	smallFile                  // firewall.xml, notes.txt: read whole, AddBytes
	emptyFile                  // the placeholder of a VM with nothing else
	homeTree                   // the dom0 home, AddTree
	deltaFile                  // an increment's changed blocks of a volume, AddExtents
)

// maxSmallFile bounds firewall.xml and notes.txt, which are read whole.
const maxSmallFile = 16 << 20

// item is one file to store, measured, with what Run needs to store it.
type item struct {
	PlannedFile
	vm   string // the VM it belongs to ("dom0" for the home)
	kind fileKind
	// volumeFile: the committed image, opened when measured and kept open
	// until stored, so what is stored is what was measured.
	f *os.File
	// volumeFile: the directory of the image's pool, where the reflink
	// snapshots of a chain are kept (snapshot.go), and the image's stamp
	// when it was opened (stamp.go).
	pool, stamp string
	// smallFile: the content, mode and time, read when measured.
	content []byte
	mode    fs.FileMode
	mtime   time.Time
	// deltaFile: the volume's size now and its changed runs, read from f.
	size int64
	runs []sparsetar.Region
}

func (it *item) close() {
	if it.f != nil {
		it.f.Close()
		it.f = nil
	}
}

// measurer lists and measures the files of VMs. keep says whether volumes
// stay open (Run) or are closed at once (NewPlan). A cancelled ctx stops
// it before its next file.
type measurer struct {
	ctx        context.Context
	h          *host.Host
	keep       bool
	compressed bool
	chunk      int64
}

// vmSubdir is the directory of a VM's files in the archive, its
// backup-path: always with a trailing slash.
func vmSubdir(d *host.Domain) string { return fmt.Sprintf("vm%d/", d.Qid()) }

// homeName is the stored file (and backup-path) of the dom0 home.
func homeName(d host.Dom0) string { return "dom0-home/" + filepath.Base(d.Home) }

// vm lists a VM's files in the reference order: save_on_stop volumes in
// volume-config order, firewall.xml, notes.txt, else the empty marker.
func (m *measurer) vm(d *host.Domain) (items []*item, err error) {
	defer func() {
		if err != nil {
			closeItems(items)
			items = nil
		}
	}()
	name, subdir := d.Name(), vmSubdir(d)
	vols, err := m.h.Volumes(name)
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		if !v.SaveOnStop {
			continue
		}
		if err := m.ctx.Err(); err != nil {
			return items, cancelled(m.ctx)
		}
		it, err := m.volume(name, v.Name, subdir+v.Name+".img")
		if err != nil {
			return items, err
		}
		items = append(items, it)
	}
	dir, err := m.h.VMDir(name)
	if err != nil {
		return items, err
	}
	for _, file := range []string{host.FirewallFile, host.NotesFile} {
		it, err := m.small(name, filepath.Join(dir, file), subdir+file)
		if err != nil {
			return items, err
		}
		if it != nil {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		it := &item{vm: name, kind: emptyFile, mtime: time.Now()}
		it.Name = subdir + "empty"
		m.finish(it, tarFileSize(it.Name, 0, 0o644, it.mtime))
		items = append(items, it)
	}
	return items, nil
}

func (m *measurer) volume(vm, vol, name string) (*item, error) {
	f, info, err := m.h.OpenVolume(vm, vol)
	if err != nil {
		return nil, err
	}
	member, _, err := sparsetar.VolumeSize(name, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("VM %s volume %s: finding its data: %w", vm, vol, err)
	}
	it := &item{vm: vm, kind: volumeFile, f: f, pool: info.PoolDir, stamp: fileStamp(f, time.Now())}
	it.Name, it.Source = name, info.Path
	// A volume that only grows meanwhile (the one in-place change of a
	// committed image) lengthens the sparse map and size record by a few
	// digits: one block each.
	m.finish(it, member+sparsetar.EndSize, 2*blockSize)
	if !m.keep {
		it.close()
	}
	return it, nil
}

// small reads a VM's firewall.xml or notes.txt; nil if it has none.
func (m *measurer) small(vm, path, name string) (*item, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSmallFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSmallFile)
	}
	it := &item{vm: vm, kind: smallFile, content: data, mode: fi.Mode().Perm(), mtime: fi.ModTime()}
	it.Name, it.Source = name, path
	m.finish(it, tarFileSize(name, int64(len(data)), fi.Mode().Perm(), fi.ModTime()))
	return it, nil
}

// home measures the dom0 home as sparsetar.Writer.AddTree will store it.
func (m *measurer) home(d host.Dom0) (*item, error) {
	name := homeName(d)
	root, err := filepath.EvalSymlinks(d.Home)
	if err != nil {
		return nil, fmt.Errorf("dom0 home: %w", err)
	}
	size, err := sparsetar.TreeSize(name, root)
	if err != nil {
		return nil, fmt.Errorf("dom0 home: %w", err)
	}
	size += sparsetar.EndSize
	it := &item{vm: "dom0", kind: homeTree}
	it.Name, it.Source = name, root
	m.finish(it, size)
	return it, nil
}

// finish sets the item's sizes from its exact tar stream size; slack is
// added to the bound only.
func (m *measurer) finish(it *item, tarSize int64, slack ...int64) {
	it.Data = tarSize
	for _, s := range slack {
		tarSize += s
	}
	it.bound = archive.CompressedBound(tarSize, m.compressed)
	it.Stored = storedBound(it.bound, m.chunk)
}

func closeItems(items []*item) {
	for _, it := range items {
		it.close()
	}
}

// Tar framing, as sparsetar (and archive/tar under it) writes it.
const (
	blockSize = 512
)

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// tarFileSize is the length of an inner tar stream holding one regular
// file of size bytes.
func tarFileSize(name string, size int64, mode fs.FileMode, mtime time.Time) int64 {
	n, err := sparsetar.FileSize(name, size, mode, mtime)
	if err != nil {
		// Only an unusable name fails, and then writing fails the same way;
		// a generous bound keeps the estimate safe meanwhile.
		n = 3*blockSize + size + 4096
	}
	return n + sparsetar.EndSize
}

// storedBound is the size of the .enc members of a compressed stream of at
// most c bytes: a new chunk starts whenever one is full (so an exact
// multiple ends with an empty chunk), each with the scrypt overhead.
func storedBound(c, chunk int64) int64 {
	return c + scryptenc.Overhead*(c/chunk+1)
}
