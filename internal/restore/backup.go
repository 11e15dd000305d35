// Package restore is the restore engine. OpenSource opens where a backup
// is (a file, standard input, a dom0 command, a file or command in a VM, a
// format 1 directory) as a Source, which can be reopened to try another
// passphrase. Open reads an archive's header and qubes.xml (format 4, or
// the older formats 3 and 2 through package legacy; OpenDir a format 1
// directory) and lists what the backup holds; NewPlan decides, for a host
// (or for none: verify-only and extract), what will be restored and finds
// every problem first (doc/reference.md B.3, B.4, with the fixes of E.5,
// E.7 and E.9); VerifyOnly reads every selected file to its end and proves
// the backup complete (E.3, Qubes #3498); ExtractTo writes the data to a
// directory; Restore restores into a host with the same Plan.
//
// A Backup is read once, front to back: Open reads the metadata, and one
// data pass (VerifyOnly, ExtractTo or Restore) reads the rest. The archive
// reader decrypts only the files of the VMs the plan restores; it waits for
// the plan before deciding. Until a data pass begins, the same Backup can
// be planned again with other options.
//
// Problems and CheckHost's warnings list their Resolutions, which Apply
// (ApplyRun) sets in the options. The data passes report progress through
// progress.Async, with per-VM events. Open, CheckHost and the data passes
// take a context; cancelled, they return an error wrapping ErrCancelled and
// ctx.Err().
package restore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/cancel"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/legacy"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

var (
	// ErrBadMetadata: qubes.xml does not describe a usable backup (a
	// missing or malformed backup-path or backup-size, overlapping paths).
	ErrBadMetadata = errors.New("invalid backup metadata")
	// ErrUnknownVM: a VM named in the options is not in the backup.
	ErrUnknownVM = errors.New("no such VM in the backup")
	// ErrUsed: the backup's data has already been read (or it was closed).
	ErrUsed = errors.New("the backup has already been read")
	// ErrWrongPassphrase: the passphrase does not open the archive (or
	// its header is damaged). Open fails with it before anything else;
	// reopen the source (Source.Reopen) and try another.
	ErrWrongPassphrase = archive.ErrBadPassphrase
	// ErrIncrement: the archive is an increment, which holds only what
	// changed since its base; it is restored as part of its chain.
	ErrIncrement = errors.New("the backup is an increment")
)

// OpenOptions configure Open.
type OpenOptions struct {
	// Passphrase opens the archive. The reader derives the keys of the
	// chunks with it as it reads them: keep it intact (do not clear it)
	// until the data pass has ended.
	Passphrase []byte
	// Limits bound the scrypt parameters accepted from the archive; zero
	// means scryptenc.DefaultLimits.
	Limits scryptenc.Limits
	// ForceFilter is a decompression program the user named explicitly
	// (--compression-filter).
	ForceFilter string
	// KeyCost, if set, is told the scrypt cost of a format 4 archive's
	// keys before the first derivation (archive.ReaderOptions.KeyCost).
	KeyCost func(scryptenc.Params)
	// Workers: concurrent chunk decryptions; 0 means one per CPU.
	Workers int
	// MaxChunkSize bounds one chunk of a format 4 archive (held in memory
	// whole); 0 means archive.DefaultMaxChunkSize.
	MaxChunkSize int
	// MaxMemory is the memory budget in bytes of a format 4 archive's
	// chunk buffers and key derivations; 0 means half of what the machine
	// (and the process's cgroup) has available.
	MaxMemory int64
	// Lazy reads no data before the data pass begins. Otherwise the
	// reader decrypts the first chunks while the caller plans, which
	// saves a restore that time but holds their buffers (up to a few
	// hundred MiB) meanwhile: right for the archive read next, a waste
	// for an archive of a chain that waits for the ones before it.
	Lazy bool

	// buffers is the chunk buffer pool the older archives of a chain
	// share (OpenChain); nil: the reader's own.
	buffers *archive.BufferPool
}

// Ref is a property that names a VM. Set false: the property is not
// stored, its default applies. Set with Name "": explicitly none.
type Ref struct {
	Name string
	Set  bool
}

// VM is one VM of the backup, as its qubes.xml describes it. For dom0 it
// describes the dom0 home (Class AdminVM, User set).
type VM struct {
	Name, Class string
	Qid         int
	Label       string // label name; "" if unknown
	Template    string // "" for none
	NetVM       Ref
	// DefaultDispVM is the stored default_dispvm.
	DefaultDispVM      Ref
	TemplateForDispVMs bool
	ProvidesNetwork    bool
	// Properties are the stored properties in file order (label as its
	// id), without qid and uuid, which a restored VM gets anew.
	Properties []host.Property
	// Features without the backup bookkeeping (backup-content,
	// backup-path, backup-size).
	Features []host.Feature
	Tags     []string
	Devices  []host.Device
	Volumes  []host.Volume
	// Path is the backup-path: "vm<qid>/", or "dom0-home/<user>" for dom0.
	Path string
	// Size is the backup-size.
	Size int64
	// User is the dom0 user whose home is stored (dom0 only): the last
	// part of Path.
	User string
}

// volume returns the volume-config entry of the volume stored as file
// base name "<name>.img".
func (v *VM) volume(name string) (host.Volume, bool) {
	for _, vol := range v.Volumes {
		if vol.Name == name {
			return vol, true
		}
	}
	return host.Volume{}, false
}

// owns reports whether a stored file belongs to the VM.
func (v *VM) owns(file string) bool {
	if v.Class == host.AdminVM {
		return file == v.Path
	}
	return strings.HasPrefix(file, v.Path)
}

// Backup is an opened archive: its header, database and VMs, and the
// reader positioned before the data.
type Backup struct {
	Header archive.Header
	// QubesXML is the archive's qubes.xml as stored.
	QubesXML []byte
	// DB is the parsed qubes.xml, with the backup bookkeeping features
	// removed from the backed-up VMs.
	DB *host.DB
	// VMs are the backed-up VMs other than dom0, by qid.
	VMs []*VM
	// Dom0 is the dom0 home, or nil when the backup holds none.
	Dom0 *VM
	// Chain is an increment's map (Header.Base names its base); nil for a
	// full backup. An increment is restored with its chain (RestoreChain).
	Chain *chain.Map

	reader stream
	// inputRead is closed once the reader has read its whole input
	// (archive.Reader.InputRead); nil for formats 1 to 3.
	inputRead <-chan struct{}
	buffers   *archive.BufferPool // OpenOptions.buffers
	opened    atomic.Bool         // Open has returned
	lazy      bool                // OpenOptions.Lazy

	mu       sync.Mutex
	ready    chan struct{} // closed once the selection is known
	closed   chan struct{}
	started  bool
	isClosed bool
	selected map[*VM]bool
}

// Open reads the header and qubes.xml of an archive of format 4, 3 or 2
// and lists the backed-up VMs. It fails with ErrWrongPassphrase before
// anything else when the passphrase is wrong. The Backup must be closed.
//
// When ctx is cancelled, Open returns at once with an error wrapping
// ErrCancelled and ctx.Err(); a key derivation under way cannot be
// interrupted and ends in the background, as does a read of r, which the
// caller may close to end it (Source.Open does).
func Open(ctx context.Context, r io.Reader, opts OpenOptions) (*Backup, error) {
	return cancel.Abandonable(ctx, ErrCancelled, func() (*Backup, error) { return open(r, opts) }, func(b *Backup) { b.Close() })
}

func open(r io.Reader, opts OpenOptions) (*Backup, error) {
	b := &Backup{ready: make(chan struct{}), closed: make(chan struct{}), lazy: opts.Lazy, buffers: opts.buffers}
	br := bufio.NewReaderSize(r, 64<<10)
	version, err := legacy.Detect(br)
	if err != nil {
		return nil, err
	}
	if version == 4 {
		ar, err := archive.NewReader(br, archive.ReaderOptions{
			Passphrase:   opts.Passphrase,
			Limits:       opts.Limits,
			ForceFilter:  opts.ForceFilter,
			Workers:      opts.Workers,
			MaxChunkSize: opts.MaxChunkSize,
			MaxMemory:    opts.MaxMemory,
			KeyCost:      opts.KeyCost,
			Buffers:      opts.buffers,
			Select:       b.selectFile,
		})
		if err != nil {
			return nil, err
		}
		b.reader = format4{ar}
		b.inputRead = ar.InputRead()
		b.Header = ar.Header()
		if b.Header.Base != "" {
			b.Chain, err = readMap(ar, b.Header.Base)
		} else if c := ar.Companion(); c != nil {
			err = fmt.Errorf("%w: a full backup with %s stored after qubes.xml", ErrBadMetadata, elide.Quote(c.Name))
		}
		if err != nil {
			b.Close()
			return nil, err
		}
		b.QubesXML = ar.QubesXML()
	} else {
		lr, err := legacy.NewReader(br, legacy.Options{Passphrase: opts.Passphrase, ForceFilter: opts.ForceFilter, Select: b.selectFile})
		if err != nil {
			return nil, err
		}
		b.reader = format23{lr}
		h := lr.Header()
		b.Header = archive.Header{Version: h.Version, Encrypted: h.Encrypted, Compressed: h.Compressed,
			CompressionFilter: h.Compression, HMACAlgorithm: h.HMACAlgorithm, CryptoAlgorithm: h.CryptoAlgorithm}
		b.QubesXML = lr.QubesXML()
	}
	return b.finishOpen()
}

// OpenDir opens a format 1 backup: a directory holding qubes.xml and the
// VMs' directories (no encryption, no integrity check: format 1 had none).
func OpenDir(dir string) (*Backup, error) {
	v1, err := legacy.OpenV1(dir)
	if err != nil {
		return nil, err
	}
	b := &Backup{ready: make(chan struct{}), closed: make(chan struct{})}
	b.reader = &format1{files: v1.Files(), choose: b.selectFile}
	b.Header = archive.Header{Version: 1}
	b.QubesXML = v1.QubesXML()
	return b.finishOpen()
}

// opened1 finishes Open: the data pass may begin choosing files.
func (b *Backup) finishOpen() (*Backup, error) {
	b.opened.Store(true)
	if err := b.parse(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close stops reading the archive. It does not close the input.
func (b *Backup) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.isClosed {
		b.isClosed = true
		close(b.closed)
		b.reader.Close()
	}
	return nil
}

// VM returns the backed-up VM of that (original) name; "dom0" is the
// dom0 home.
func (b *Backup) VM(name string) *VM {
	if name == "dom0" {
		return b.Dom0
	}
	for _, v := range b.VMs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// all lists the VMs with the dom0 home last.
func (b *Backup) all() []*VM {
	out := append([]*VM(nil), b.VMs...)
	if b.Dom0 != nil {
		out = append(out, b.Dom0)
	}
	return out
}

// owner finds the backed-up VM a stored file belongs to.
func (b *Backup) owner(file string) *VM {
	for _, v := range b.all() {
		if v.owns(file) {
			return v
		}
	}
	return nil
}

// selectFile is the archive reader's Select. Once Open has returned it
// waits until a data pass has chosen the VMs, so that nothing is decrypted
// that will not be used; before (the reader runs ahead while qubes.xml is
// read) it takes the file, and the data pass drops it. A lazy backup takes
// only what Open itself reads (qubes.xml, an increment's map stored alone)
// and lets the rest wait too.
func (b *Backup) selectFile(file string) bool {
	if !b.opened.Load() && (!b.lazy || file == archive.QubesXMLName || file == chain.MapName) {
		return true
	}
	select {
	case <-b.ready:
	case <-b.closed:
		return false
	}
	v := b.owner(file)
	return v != nil && b.selected[v]
}

// start begins the one data pass with the selected VMs.
func (b *Backup) start(sel map[*VM]bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.isClosed {
		return ErrUsed
	}
	b.started = true
	b.selected = sel
	close(b.ready)
	return nil
}

// Bookkeeping features the backup writer adds.
var bookkeeping = []string{"backup-content", "backup-path", "backup-size"}

func (b *Backup) parse() error {
	db, err := host.ParseDB(b.QubesXML)
	if err != nil {
		return fmt.Errorf("%w: qubes.xml: %v", ErrBadMetadata, err)
	}
	b.DB = db
	for _, d := range db.Domains() {
		content, _ := d.Feature("backup-content")
		if content == "" && !b.chainHolds(d) { // Python truthiness of a string
			continue
		}
		v, err := describe(d)
		if err != nil {
			return err
		}
		for _, f := range bookkeeping {
			d.DeleteFeature(f)
		}
		v.Features = d.Features()
		if v.Class == host.AdminVM {
			b.Dom0 = v
		} else {
			b.VMs = append(b.VMs, v)
		}
	}
	if err := b.checkVMs(); err != nil {
		return err
	}
	// Paths must tell the VMs' files apart.
	all := b.all()
	for i, v := range all {
		for _, w := range all[i+1:] {
			if strings.HasPrefix(v.Path, w.Path) || strings.HasPrefix(w.Path, v.Path) {
				return fmt.Errorf("%w: backup-path %s of %s and %s of %s overlap", ErrBadMetadata, elide.Quote(v.Path), v.Name, elide.Quote(w.Path), w.Name)
			}
		}
	}
	return nil
}

// chainHolds reports whether an increment holds a VM that it does not
// store whole: its map changes or keeps some of its files.
func (b *Backup) chainHolds(d *host.Domain) bool {
	p, _ := d.Feature("backup-path")
	if b.Chain == nil || p == "" || !strings.HasSuffix(p, "/") {
		return false
	}
	for _, name := range b.Chain.Files() {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// readMap reads an increment's map, stored with qubes.xml or as the file
// after it, and checks that it names the header's base.
func readMap(ar *archive.Reader, base string) (*chain.Map, error) {
	var text []byte
	if c := ar.Companion(); c != nil {
		if c.Name != chain.MapName {
			return nil, fmt.Errorf("%w: %s stored after qubes.xml where the increment's map %s belongs", ErrBadMetadata, elide.Quote(c.Name), chain.MapName)
		}
		text = c.Data
	} else {
		f, err := ar.Next()
		if err != nil {
			return nil, fmt.Errorf("reading the increment's map: %w", err)
		}
		if f.Name != chain.MapName {
			return nil, fmt.Errorf("%w: the increment's map %s is missing (found %s)", ErrBadMetadata, chain.MapName, elide.Quote(f.Name))
		}
		var buf bytes.Buffer
		if _, err := sparsetar.ExtractFile(f, chain.MapName, &buf, chain.MaxMapSize); err != nil {
			return nil, fmt.Errorf("reading the increment's map: %w", err)
		}
		text = buf.Bytes()
	}
	m, err := chain.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMetadata, err)
	}
	if m.Base != base {
		return nil, fmt.Errorf("%w: the header names base %s, the map %s", ErrBadMetadata, elide.Quote(base), elide.Quote(m.Base))
	}
	return m, nil
}

// checkVMs refuses what no restore could add, so that verify refuses it
// too: a class a host does not have, a second VM of a name (or one named
// dom0), templates that lead round in a circle.
func (b *Backup) checkVMs() error {
	names := map[string]*VM{}
	for _, v := range b.VMs {
		switch v.Class {
		case host.TemplateVM, host.AppVM, host.StandaloneVM, host.DispVM:
		default:
			return fmt.Errorf("%w: VM %s is of unknown class %q", ErrBadMetadata, v.Name, v.Class)
		}
		if v.Name == "dom0" {
			return fmt.Errorf("%w: a VM of class %s is named dom0, the admin VM's name", ErrBadMetadata, v.Class)
		}
		if names[v.Name] != nil {
			return fmt.Errorf("%w: two VMs are named %s (qids %d and %d)", ErrBadMetadata, v.Name, names[v.Name].Qid, v.Qid)
		}
		names[v.Name] = v
	}
	for _, v := range b.VMs {
		seen := map[*VM]bool{}
		for w := v; w != nil && w.Template != ""; w = names[w.Template] {
			if seen[w] {
				return fmt.Errorf("%w: the templates of VM %s lead round in a circle", ErrBadMetadata, v.Name)
			}
			seen[w] = true
		}
	}
	return nil
}

func describe(d *host.Domain) (*VM, error) {
	v := &VM{Name: d.Name(), Class: d.Class(), Qid: d.Qid(), Label: d.Label(), Template: d.Template()}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: VM %s: %s", ErrBadMetadata, v.Name, fmt.Sprintf(format, args...))
	}
	// Names and labels reach file paths (--extract-to) and the terminal:
	// a backup's, format 1's above all, are not trusted.
	if v.Class != host.AdminVM {
		if err := host.ValidateName(v.Name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMetadata, err)
		}
	}
	if strings.ContainsFunc(v.Label, unicode.IsControl) || len(v.Label) > 64 {
		return nil, bad("label %s is not a label name", elide.Quote(v.Label))
	}
	p, _ := d.Feature("backup-path")
	size, _ := d.Feature("backup-size")
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 {
		return nil, bad("backup-size %s is not a size", elide.Quote(size))
	}
	v.Size = n
	v.Path = p
	if v.Class == host.AdminVM {
		user, ok := strings.CutPrefix(p, "dom0-home/")
		if !ok || user == "" || strings.Contains(user, "/") || archive.CheckFileName(p) != nil {
			return nil, bad("backup-path %s is not dom0-home/<user>", elide.Quote(p))
		}
		v.User = path.Base(p)
	} else {
		dir, ok := strings.CutSuffix(p, "/")
		if !ok || archive.CheckFileName(dir) != nil || dir == "dom0-home" || dir == archive.QubesXMLName {
			return nil, bad("backup-path %s is not a directory name", elide.Quote(p))
		}
	}
	if val, isDefault := d.Prop("netvm"); !isDefault {
		v.NetVM = Ref{Name: val, Set: true}
	}
	if val, isDefault := d.Prop("default_dispvm"); !isDefault {
		v.DefaultDispVM = Ref{Name: val, Set: true}
	}
	v.TemplateForDispVMs = d.PropBool("template_for_dispvms")
	v.ProvidesNetwork = d.PropBool("provides_network")
	for _, prop := range d.Props() {
		if prop.Name != "qid" && prop.Name != "uuid" {
			v.Properties = append(v.Properties, prop)
		}
	}
	v.Tags = d.Tags()
	v.Devices = d.Devices()
	v.Volumes = d.Volumes()
	return v, nil
}
