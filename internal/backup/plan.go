package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/cancel"
	"pedos.dev/backup/internal/compress"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/qrexec"
	"pedos.dev/backup/internal/scryptenc"
)

// Plan is what a backup will do, worked out by NewPlan without writing
// anything: the VMs and files, the destination, estimates, and the
// problems that keep it from running.
type Plan struct {
	// VMs to back up: dom0 (its home) first, then by name. The archive
	// holds them by name with the dom0 home last.
	VMs []PlannedVM
	// NotSelected are the host's other VMs, by name (dom0 included).
	NotSelected []string
	// Problems block the backup; Run refuses a plan that has any.
	Problems []Problem
	// Warnings do not block it.
	Warnings []string
	// Target is where the archive goes.
	Target Target
	// Compression is the filter as the header will name it ("none": off).
	Compression string
	Scrypt      scryptenc.Params
	// EstimatedArchiveSize bounds the archive's size: data as if it did
	// not compress, plus every framing and encryption overhead.
	EstimatedArchiveSize int64
	// EstimatedDuration is a rough guess (see the package documentation).
	EstimatedDuration time.Duration
	// Chain is set when the backup was asked to be incremental: whether it
	// is an increment, and of what. The estimates are those of a full
	// backup, the most an increment can store.
	Chain *Chain

	h    *host.Host
	opts Options
}

// PlannedVM is one VM to back up (for dom0: the dom0 user's home).
type PlannedVM struct {
	Name, Class string
	Qid         int
	// Path is the backup-path: "vm<qid>/", or "dom0-home/<user>".
	Path string
	// Size is the backup-size: an upper bound of the bytes the VM's .enc
	// members will hold (see the package documentation). Run measures
	// again and stores the value of that moment.
	Size int64
	// Data is the uncompressed length of its files' tar streams: content
	// plus tar headers. Progress counts these bytes.
	Data  int64
	Files []PlannedFile
	// Running: the backup holds the VM's state from before its start.
	Running bool
	// Note is a remark for the summary: for dom0, NoDom0UserNote when
	// the home is the running user's.
	Note string
}

// PlannedFile is one stored file.
type PlannedFile struct {
	// Name is the stored name: "vm3/private.img", "vm3/firewall.xml",
	// "vm3/empty", "dom0-home/user".
	Name string
	// Source is what is read: a volume image, a file, the home directory;
	// "" for the empty marker.
	Source string
	// Data is its inner tar stream's length, uncompressed.
	Data int64
	// Stored bounds the bytes of its .enc chunks.
	Stored int64

	bound int64 // bounds its compressed stream
}

// RunningWarning is the reference system's note on a running VM.
const RunningWarning = "The VM is running, backup will contain its state from before its start!"

// NoDom0UserNote is the note on the dom0 home of a host that names no
// dom0 user (a database written by another system): the home backed up
// is the running user's, named by the %s (user, home).
const NoDom0UserNote = "This host names no dom0 user: the home of the running user %s, %s"

// NewPlan resolves the selection and the destination, measures what will be
// stored and checks that the backup can run. It reads the host but changes
// nothing. Problems are reported in the plan; the error is for a host that
// cannot be read at all, or a cancel: when ctx is cancelled, NewPlan
// returns at once with an error wrapping ErrCancelled and ctx.Err(), and
// the measuring stops at its next file.
func NewPlan(ctx context.Context, h *host.Host, opts Options) (*Plan, error) {
	return cancel.Abandonable(ctx, ErrCancelled, func() (*Plan, error) { return newPlan(ctx, h, opts) }, nil)
}

func newPlan(ctx context.Context, h *host.Host, opts Options) (*Plan, error) {
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	p := &Plan{h: h, opts: opts}
	p.checkOptions()
	selected := p.selectVMs(db)
	home, err := p.measureSelected(ctx, db, selected)
	if err != nil {
		return nil, err
	}
	spaceDir := p.resolveTarget(ctx, db, home)
	p.planChain()
	if err := p.estimate(db); err != nil {
		return nil, err
	}
	if spaceDir != "" {
		p.checkSpace(spaceDir)
	}
	return p, nil
}

// measureSelected measures the files of the selected VMs (closing them
// again: Run measures anew) and fills VMs. It returns the dom0 home when
// it is selected; its error is a cancel.
func (p *Plan) measureSelected(ctx context.Context, db *host.DB, selected []string) (home string, err error) {
	m := p.measurer(ctx, false)
	for _, name := range selected {
		v, items, dom0, err := measureVM(m, db, name)
		if ctx.Err() != nil {
			closeItems(items)
			return "", cancelled(ctx)
		}
		if err != nil {
			p.problem(UnreadableSource, name, unreadableHint(name), "cannot back up %s: %v", name, err)
			continue
		}
		if dom0 != nil {
			home = dom0.Home
		}
		p.VMs = append(p.VMs, v)
		closeItems(items)
	}
	return home, nil
}

// SetPassphrase sets the passphrase of a plan made without one (the
// summary is usually shown before the passphrase is asked for).
func (p *Plan) SetPassphrase(pass []byte) error {
	if err := archive.CheckPassphrase(pass); err != nil {
		return err
	}
	p.opts.Passphrase = pass
	return nil
}

// Err returns a *ProblemsError listing the plan's problems, or nil.
func (p *Plan) Err() error {
	if len(p.Problems) == 0 {
		return nil
	}
	return &ProblemsError{Problems: p.Problems}
}

// Summary is the content of the reference summary table (doc/reference.md A.7).
type Summary struct {
	Rows        []SummaryRow
	Total       int64
	NotSelected []string
}

// SummaryRow is one VM of the summary.
type SummaryRow struct {
	VM string
	// Type is "User home" (dom0), "Template VM", "VM + Sys" (a standalone
	// VM, which updates its own system) or "VM".
	Type string
	Size int64
	// Note is RunningWarning for a running VM, the PlannedVM's own Note
	// (dom0), else "".
	Note string
	// Resolve acts on the note: ShutDownVM for a running VM.
	Resolve []Resolution
}

// Summary returns the data of the summary table; the caller formats it.
func (p *Plan) Summary() Summary {
	s := Summary{NotSelected: p.NotSelected}
	for _, v := range p.VMs {
		row := SummaryRow{VM: v.Name, Size: v.Size, Type: "VM"}
		switch v.Class {
		case host.AdminVM:
			row.Type = "User home"
		case host.TemplateVM:
			row.Type = "Template VM"
		case host.StandaloneVM:
			row.Type = "VM + Sys"
		}
		row.Note = v.Note
		if v.Running {
			row.Note = RunningWarning
			row.Resolve = []Resolution{ShutDownVM}
		}
		s.Rows = append(s.Rows, row)
		s.Total += v.Size
	}
	return s
}

func (p *Plan) problem(code ProblemCode, subject, hint, format string, a ...any) {
	p.Problems = append(p.Problems, problem(code, subject, hint, format, a...))
}

func (p *Plan) has(codes ...ProblemCode) bool {
	for _, pr := range p.Problems {
		if slices.Contains(codes, pr.Code) {
			return true
		}
	}
	return false
}

func (p *Plan) now() time.Time {
	if p.opts.Now != nil {
		return p.opts.Now()
	}
	return time.Now()
}

func (p *Plan) chunkSize() int64 {
	if p.opts.chunkSize > 0 {
		return int64(p.opts.chunkSize)
	}
	return archive.ChunkSize
}

func (p *Plan) measurer(ctx context.Context, keep bool) *measurer {
	return &measurer{ctx: ctx, h: p.h, keep: keep, compressed: p.Compression != "none", chunk: p.chunkSize()}
}

func unreadableHint(vm string) string {
	if vm == "dom0" {
		return "leave the dom0 home out"
	}
	return "leave it out"
}

// checkOptions checks compression, scrypt cost and passphrase.
func (p *Plan) checkOptions() {
	p.Compression = p.opts.Compression
	if p.Compression == "" {
		p.Compression = "gzip"
	}
	if p.Compression != "none" {
		if _, err := compress.ForWriting(p.Compression); errors.Is(err, compress.ErrFilterNotFound) {
			p.problem(FilterNotInstalled, p.Compression, "install it, or choose gzip (the default), zstd or none",
				"compression program %q is not installed", p.Compression)
		} else if err != nil {
			p.problem(BadCompression, p.Compression, "a filter is a program name such as gzip, zstd, bzip2 or xz",
				"invalid compression filter %q: %v", p.Compression, err)
		}
	}
	p.Scrypt = scryptenc.DefaultParams
	if p.opts.ScryptLogN != 0 {
		p.Scrypt.LogN = p.opts.ScryptLogN
	}
	if err := p.Scrypt.ValidateForWriting(); err != nil {
		p.problem(BadScryptParameters, strconv.Itoa(int(p.Scrypt.LogN)), "", "%v", err)
	} else if err := archive.CheckWriterMemory(archive.WriterOptions{Params: p.Scrypt, ChunkSize: int(p.chunkSize()), MaxMemory: p.opts.MaxMemory}); err != nil {
		p.problem(NotEnoughMemory, "", "raise the memory budget, or lower the scrypt cost", "%v", err)
	}
	if len(p.opts.Passphrase) > 0 {
		if err := archive.CheckPassphrase(p.opts.Passphrase); err != nil {
			p.problem(BadPassphrase, "", "choose another passphrase", "%v", err)
		}
	}
}

var vmClasses = []string{host.AdminVM, host.TemplateVM, host.AppVM, host.StandaloneVM, host.DispVM}

// selectVMs applies Options.VMs and Exclude and returns the selection, dom0
// first, then by name; it fills NotSelected.
func (p *Plan) selectVMs(db *host.DB) []string {
	in := map[string]bool{}
	if len(p.opts.VMs) == 0 {
		for _, d := range db.Domains() {
			if d.IncludeInBackups() {
				in[d.Name()] = true
			}
		}
	}
	for _, sel := range p.opts.VMs {
		names, ok := p.match(db, sel, false)
		if ok && len(names) == 0 {
			p.problem(NoMatch, sel, "check the host's VMs and their tags", "%s matches no VM", sel)
		}
		for _, n := range names {
			in[n] = true
		}
	}
	for _, sel := range p.opts.Exclude {
		names, ok := p.match(db, sel, true)
		if ok && len(names) == 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("exclusion %s matches no VM", sel))
		}
		for _, n := range names {
			delete(in, n)
		}
	}
	var selected []string
	for _, d := range db.Domains() {
		if in[d.Name()] {
			selected = append(selected, d.Name())
		} else {
			p.NotSelected = append(p.NotSelected, d.Name())
		}
	}
	slices.SortFunc(selected, dom0First)
	slices.Sort(p.NotSelected)
	if len(selected) == 0 && !p.has(UnknownVM, BadSelector, NoMatch) {
		p.problem(EmptySelection, "", "name the VMs to back up, or set include_in_backups on those a default backup takes",
			"no VMs selected for backup")
	}
	return selected
}

func dom0First(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "dom0":
		return -1
	case b == "dom0":
		return 1
	}
	return strings.Compare(a, b)
}

// match resolves one selector; ok is false after a problem was recorded.
func (p *Plan) match(db *host.DB, sel string, exclude bool) (names []string, ok bool) {
	s := sel
	if strings.HasPrefix(s, "$") { // the reference system's legacy prefix
		s = "@" + s[1:]
	}
	option := ""
	if exclude {
		option = "exclusion "
	}
	switch {
	case strings.HasPrefix(s, "@tag:"):
		tag := strings.TrimPrefix(s, "@tag:")
		if tag == "" {
			p.problem(BadSelector, sel, "write @tag:NAME", "%s%s names no tag", option, sel)
			return nil, false
		}
		for _, d := range db.Domains() {
			if d.HasTag(tag) {
				names = append(names, d.Name())
			}
		}
	case strings.HasPrefix(s, "@type:"):
		class := strings.TrimPrefix(s, "@type:")
		if !slices.Contains(vmClasses, class) {
			p.problem(BadSelector, sel, "classes are "+strings.Join(vmClasses, ", "),
				"%s%s: unknown VM class %q", option, sel, class)
			return nil, false
		}
		for _, d := range db.Domains() {
			if d.Class() == class {
				names = append(names, d.Name())
			}
		}
	case strings.HasPrefix(s, "@"):
		p.problem(BadSelector, sel, "selectors are @tag:NAME and @type:CLASS", "%s%s: unknown selector", option, sel)
		return nil, false
	default:
		if _, err := db.Domain(s); err != nil {
			if exclude {
				p.problem(UnknownVM, sel, "check the name against the host's VMs", "cannot exclude %q: no such VM", sel)
			} else {
				p.problem(UnknownVM, sel, "check the name against the host's VMs", "no such VM: %q", sel)
			}
			return nil, false
		}
		names = []string{s}
	}
	return names, true
}

// measureVM lists and measures the files of one selected VM. For dom0 it
// also returns the dom0 user.
func measureVM(m *measurer, db *host.DB, name string) (PlannedVM, []*item, *host.Dom0, error) {
	d, err := db.Domain(name)
	if err != nil {
		return PlannedVM{}, nil, nil, err
	}
	v := PlannedVM{Name: name, Class: d.Class(), Qid: d.Qid()}
	var items []*item
	var dom0 *host.Dom0
	if d.Class() == host.AdminVM {
		u, stored, err := m.h.Dom0Stored()
		if err != nil {
			return v, nil, nil, err
		}
		if !stored {
			v.Note = fmt.Sprintf(NoDom0UserNote, u.User, u.Home)
		}
		it, err := m.home(u)
		if err != nil {
			return v, nil, nil, err
		}
		items, dom0, v.Path = []*item{it}, &u, homeName(u)
	} else {
		if items, err = m.vm(d); err != nil {
			return v, nil, nil, err
		}
		v.Path = vmSubdir(d)
		v.Running = m.h.IsRunning(name)
	}
	for _, it := range items {
		v.Files = append(v.Files, it.PlannedFile)
		v.Size += it.Stored
		v.Data += it.Data
	}
	return v, items, dom0, nil
}

// resolveTarget classifies the destination and checks it. It returns the
// dom0 directory whose free space must hold the archive, if any.
func (p *Plan) resolveTarget(ctx context.Context, db *host.DB, home string) (spaceDir string) {
	dst := p.opts.Destination
	if dst.VM != "" && dst.VM != "dom0" {
		p.Target = Target{Kind: ToVM, Path: dst.Path, VM: dst.VM}
		if strings.TrimSpace(dst.Path) == "" {
			p.problem(NoDestination, dst.VM, "give a directory in the VM, or a command to run there",
				"no backup location in VM %s given", dst.VM)
		}
		if _, err := db.Domain(dst.VM); err != nil {
			p.problem(DestVMUnknown, dst.VM, "check the name against the host's VMs", "destination VM %q does not exist", dst.VM)
		} else if !p.h.IsRunning(dst.VM) {
			p.problem(DestVMNotRunning, dst.VM, "start it first",
				"destination VM %s is not running", dst.VM)
		} else if qrexec.IsObjectStorage(dst.Path) {
			p.checkObjectStorage(ctx, dst)
		}
		return ""
	}
	path := dst.Path
	switch {
	case path == "":
		p.problem(NoDestination, "", "give a directory, a file name, - for standard output, or a command", "no backup destination given")
		return ""
	case path == "-":
		p.Target = Target{Kind: ToStdout}
		return ""
	case !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "."):
		p.Target = Target{Kind: ToCommand, Path: path}
		prog := strings.Fields(path)
		if len(prog) == 0 {
			p.problem(NoDestination, "", "give a directory, a file name, - for standard output, or a command", "no backup destination given")
		} else if _, err := exec.LookPath(prog[0]); err != nil {
			p.problem(CommandNotFound, prog[0],
				"a path must be absolute or start with ./ ; a command must start with an installed program",
				"destination %q is not a path, and %s is not an installed program", path, prog[0])
		}
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		p.problem(DirMissing, path, "", "destination %s: %v", path, err)
		return ""
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		p.Target = Target{Kind: ToDirectory, Path: abs}
		spaceDir = abs
	} else if _, lerr := os.Lstat(abs); lerr == nil {
		p.Target = Target{Kind: ToFile, Path: abs}
		p.problem(DestinationExists, abs, "name a new file, or a directory to make a new "+backupFilePrefix+"… file in it",
			"%s already exists; a backup never overwrites a file", abs)
		return ""
	} else if !errors.Is(lerr, fs.ErrNotExist) {
		p.problem(DirMissing, abs, "", "destination %s: %v", abs, lerr)
		return ""
	} else {
		p.Target = Target{Kind: ToFile, Path: abs}
		parent := filepath.Dir(abs)
		if strings.HasSuffix(path, "/") {
			parent = abs // a directory was meant
		}
		if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
			p.problem(DirMissing, parent, "create it first, or name an existing directory",
				"the backup directory %s does not exist", parent)
			return ""
		}
		spaceDir = parent
	}
	if home != "" && inside(spaceDir, home) {
		p.problem(DestinationInHome, home, "choose a destination outside "+home+", or leave the home out",
			"cannot back up the dom0 home directory into itself: %s is inside %s", p.Target.Path, home)
		return ""
	}
	return spaceDir
}

// checkObjectStorage asks the destination VM whether its object storage
// takes the backup (endpoint, credentials, bucket), so that a backup that
// cannot land there fails in the plan, before any VM data is read.
func (p *Plan) checkObjectStorage(ctx context.Context, dst Destination) {
	tr := p.opts.Transport
	if tr == nil {
		tr = qrexec.NewLocal(p.h)
	}
	err := qrexec.CheckDestination(ctx, tr, dst.VM, dst.Path)
	var cp *qrexec.CheckProblem
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// NewPlan reports the cancel.
	case errors.As(err, &cp):
		code, hint := StorageProblem, "check the S3 configuration in VM "+dst.VM+" (doc/object-storage.md)"
		switch cp.Kind {
		case "no-bucket":
			code, hint = BucketMissing, "create the bucket, or name an existing one"
		case "refused":
			code, hint = CredentialsRefused, "check the access key and secret in VM "+dst.VM+" (~/.aws/credentials or AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
		case "unreachable":
			code, hint = EndpointUnreachable, "check that the endpoint runs and that VM "+dst.VM+" has a network path to it (AWS_ENDPOINT_URL, endpoint_url in ~/.aws/config)"
		case "untrusted":
			hint = "give VM " + dst.VM + " the certificate authority that signed the endpoint's certificate: a PEM file named by ca_bundle in ~/.aws/config or AWS_CA_BUNDLE"
		}
		p.problem(code, dst.Path, hint, "%s: %s", dst.Path, cp.Message)
	default:
		p.problem(StorageProblem, dst.Path, "check VM "+dst.VM, "checking %s in VM %s failed: %v", dst.Path, dst.VM, err)
	}
}

// inside reports whether dir is home or below it, symlinks resolved.
func inside(dir, home string) bool {
	real := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	rel, err := filepath.Rel(real(home), real(dir))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func (p *Plan) checkSpace(dir string) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		p.Warnings = append(p.Warnings, fmt.Sprintf("cannot check the free space in %s: %v", dir, err))
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < p.EstimatedArchiveSize {
		f, need := progress.FormatSizes(free, p.EstimatedArchiveSize)
		p.problem(NoSpace, dir, "free some space, choose another destination or back up fewer VMs (the estimate assumes the data does not compress)",
			"not enough free space in %s: %s available, the backup may need up to %s", dir, f, need)
	}
}
