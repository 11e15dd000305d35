package restore

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/host"
)

// Code says what keeps a VM from being restored.
type Code string

// Problem codes, in the priority the summary shows them (doc/reference.md B.5).
const (
	Excluded         Code = "excluded"          // -x, not in the positional list, --skip-dom0-home
	AlreadyExists    Code = "already-exists"    // a host VM has the name
	MissingTemplate  Code = "missing-template"  // the template is neither on the host nor restored
	MissingNetVM     Code = "missing-netvm"     // the netvm is neither on the host nor restored
	UsernameMismatch Code = "username-mismatch" // dom0 home of another user
)

var codeOrder = []Code{Excluded, AlreadyExists, MissingTemplate, MissingNetVM, UsernameMismatch}

// Summary is the reference tool's text for the summary row.
func (c Code) Summary() string {
	switch c {
	case Excluded:
		return "Excluded from restore"
	case AlreadyExists:
		return "A VM with the same name already exists on the host!"
	case MissingTemplate:
		return "No matching template on the host or in the backup found!"
	case MissingNetVM:
		return "No matching netvm on the host or in the backup found!"
	case UsernameMismatch:
		return "username in backup and dom0 mismatch"
	}
	return string(c)
}

// Problem is why one VM is not restored.
type Problem struct {
	VM      string // original name; "dom0" for the dom0 home
	Code    Code
	Message string // names the VM and what is missing or taken
	// Resolve lists the options that would let the restore go on, each
	// set with Resolution.Apply; empty for Excluded.
	Resolve []Resolution
}

func (p Problem) Error() string { return p.Message }

// ProblemsError is the error of a data pass over a plan with unresolved
// problems.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	b.WriteString("the restore cannot go on:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s", p.Message)
		for i, r := range p.Resolve {
			if i == 0 {
				b.WriteString(" (to go on: ")
			} else {
				b.WriteString(", or ")
			}
			b.WriteString(r.String())
			if i == len(p.Resolve)-1 {
				b.WriteString(")")
			}
		}
	}
	return b.String()
}

// PlanOptions are the restore options of doc/reference.md B.1 that shape the
// plan. Unlike the reference library, everything is off by default.
type PlanOptions struct {
	// VMs restores only these VMs (original names); the dom0 home only if
	// "dom0" is among them. A name not in the backup is an error.
	VMs []string
	// Exclude leaves VMs out (original names; "dom0" is the home). A name
	// not in the backup is an error.
	Exclude []string
	// VerifyOnly: no name-conflict or username checks (nothing is created).
	VerifyOnly bool
	// SkipBroken leaves out VMs whose template or netvm is missing.
	SkipBroken bool
	// IgnoreMissing substitutes the host's default_template (default_dispvm
	// for a DispVM) for a missing template, and lets a VM whose netvm is
	// missing follow the host's default_netvm. Without such a default the
	// problem stays.
	IgnoreMissing bool
	// SkipConflicting leaves out VMs whose name exists on the host.
	SkipConflicting bool
	// RenameConflicting restores them as <name>-1, <name>-2, ...
	RenameConflicting bool
	// SkipDom0Home leaves the dom0 home out.
	SkipDom0Home bool
	// IgnoreUsernameMismatch restores a home of another user.
	IgnoreUsernameMismatch bool
	// IgnoreSizeLimit turns off the bound that backup-size sets on the
	// data read for each VM (--ignore-size-limit).
	IgnoreSizeLimit bool
	// LocalUser is the dom0 user to compare with; "" means the host's.
	LocalUser string

	// syncProgress makes the data passes report on the data path, not
	// through progress.Async, so that an event marks a precise moment.
	// Only tests set it.
	syncProgress bool
}

// PlannedVM is what the plan does with one VM of the backup.
type PlannedVM struct {
	VM *VM
	// Target is the name on the host (the original, or its rename).
	Target string
	// Template is the template the restored VM gets: the target name of a
	// restored template, a host template, or the substituted default.
	Template string
	// TemplateChanged: Template is the host's default, not the original.
	TemplateChanged bool
	// NetVM and DefaultDispVM are the planned references (target names);
	// Set false means the VM follows the host default.
	NetVM, DefaultDispVM Ref
	// Problems, by priority; none means the VM is restored.
	Problems []Problem
	// Skipped: left out by --skip-conflicting or --skip-broken (or
	// excluded), so its problems do not block the restore.
	Skipped bool
}

// Restored reports whether the VM is restored.
func (p *PlannedVM) Restored() bool { return len(p.Problems) == 0 }

// Plan is what a restore will do.
type Plan struct {
	// VMs are every VM of the backup by qid, the dom0 home last.
	VMs []*PlannedVM
	// Warnings do not block the restore (a default_dispvm left at its
	// default, say).
	Warnings []string

	backup  *Backup
	opts    PlanOptions
	hasHost bool
	chained bool // RestoreChain runs it: the backup is an increment
}

// Row is one line of the restore summary (doc/reference.md B.5). Values come
// from the backup; the caller formats the table.
type Row struct {
	Name, Type, Template, NetVM, Label string
	// Problem is the summary text of the VM's first problem, or "".
	Problem string
	// Info holds "Template change to 'X'" and "Will be renamed to 'X'"
	// when there is no problem.
	Info []string
}

// NewPlan decides what a restore of b into h does. h may be nil (verify-only,
// extract): then only the selection applies, with no host checks. Problems
// are recorded in the plan; the error is for bad options (an unknown VM name)
// or an unreadable host.
func NewPlan(h *host.Host, b *Backup, opts PlanOptions) (*Plan, error) {
	if b == nil {
		return nil, errors.New("restore: no backup")
	}
	var db *host.DB
	if h != nil {
		var err error
		if db, err = h.Load(); err != nil {
			return nil, err
		}
	}
	var unknown []string
	for _, n := range append(slices.Clone(opts.VMs), opts.Exclude...) {
		if b.VM(n) == nil && !slices.Contains(unknown, n) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownVM, strings.Join(unknown, ", "))
	}
	p := &Plan{backup: b, opts: opts, hasHost: db != nil}
	byName := p.selectVMs()
	if db != nil && !opts.VerifyOnly {
		p.conflicts(db)
	}
	p.references(db, byName)
	if err := p.home(h); err != nil {
		return nil, err
	}
	p.skip()
	return p, nil
}

// excluded reports whether the options leave the VM of that name out.
func (p *Plan) excluded(name string) bool {
	return slices.Contains(p.opts.Exclude, name) || (len(p.opts.VMs) > 0 && !slices.Contains(p.opts.VMs, name))
}

// selectVMs plans every VM of the backup but the dom0 home, the excluded
// ones with that problem, and returns them by name.
func (p *Plan) selectVMs() map[string]*PlannedVM {
	byName := map[string]*PlannedVM{}
	for _, v := range p.backup.VMs {
		pv := &PlannedVM{VM: v, Target: v.Name}
		if p.excluded(v.Name) {
			pv.Problems = []Problem{{VM: v.Name, Code: Excluded, Message: fmt.Sprintf("VM %s is excluded from the restore", v.Name)}}
		}
		p.VMs = append(p.VMs, pv)
		byName[v.Name] = pv
	}
	return byName
}

// conflicts finds the VMs whose name the host has, in qid order, and
// renames them when asked.
func (p *Plan) conflicts(db *host.DB) {
	taken := map[string]bool{}
	for _, d := range db.Domains() {
		taken[d.Name()] = true
	}
	for _, v := range p.backup.VMs {
		taken[v.Name] = true
	}
	for _, pv := range p.VMs {
		if len(pv.Problems) > 0 {
			continue
		}
		if _, err := db.Domain(pv.VM.Name); err != nil {
			continue
		}
		if p.opts.RenameConflicting {
			if n := freeName(pv.VM.Name, taken); n != "" {
				pv.Target = n
				taken[n] = true
				continue
			}
		}
		pr := Problem{VM: pv.VM.Name, Code: AlreadyExists, Resolve: []Resolution{SkipConflicting, RenameConflicting, ExcludeVM},
			Message: fmt.Sprintf("VM %s: a VM of that name already exists on the host", pv.VM.Name)}
		if p.opts.RenameConflicting {
			pr.Message += " (and no free name was found)"
			pr.Resolve = []Resolution{SkipConflicting, ExcludeVM}
		}
		pv.Problems = append(pv.Problems, pr)
	}
}

// references plans the templates, netvms and default_dispvms against the
// final set of restored VMs: it starts with every VM that has no problem
// yet as restored and drops those whose template or netvm is missing
// until nothing changes (each round only removes VMs, so this ends).
func (p *Plan) references(db *host.DB, byName map[string]*PlannedVM) {
	base := map[*PlannedVM][]Problem{}
	in := map[*PlannedVM]bool{}
	for _, pv := range p.VMs {
		base[pv] = pv.Problems
		in[pv] = len(pv.Problems) == 0
	}
	for range len(p.VMs) + 1 {
		changed := false
		for _, pv := range p.VMs {
			if len(base[pv]) > 0 {
				continue
			}
			probs, _ := p.resolve(pv, db, byName, in)
			if ok := len(probs) == 0; ok != in[pv] {
				in[pv], changed = ok, true
			}
		}
		if !changed {
			break
		}
	}
	for _, pv := range p.VMs {
		if len(base[pv]) > 0 {
			pv.NetVM, pv.DefaultDispVM, pv.Template = pv.VM.NetVM, pv.VM.DefaultDispVM, pv.VM.Template
			continue
		}
		probs, warns := p.resolve(pv, db, byName, in)
		pv.Problems = probs
		p.Warnings = append(p.Warnings, warns...)
	}
}

// home plans the dom0 home, if the backup has one: excluded, or another
// user's.
func (p *Plan) home(h *host.Host) error {
	v := p.backup.Dom0
	if v == nil {
		return nil
	}
	opts := p.opts
	pv := &PlannedVM{VM: v, Target: "dom0"}
	if opts.SkipDom0Home || p.excluded("dom0") {
		pv.Problems = []Problem{{VM: "dom0", Code: Excluded, Message: "the dom0 home is excluded from the restore"}}
	} else if h != nil && !opts.VerifyOnly && !opts.IgnoreUsernameMismatch {
		local := opts.LocalUser
		if local == "" {
			d0, err := h.Dom0()
			if err != nil {
				return err
			}
			local = d0.User
		}
		if local != "" && local != v.User {
			pv.Problems = []Problem{{VM: "dom0", Code: UsernameMismatch, Resolve: []Resolution{IgnoreUsernameMismatch, SkipDom0Home},
				Message: fmt.Sprintf("the dom0 home in the backup is of user %s, not %s", elide.String(v.User), local)}}
		}
	}
	p.VMs = append(p.VMs, pv)
	return nil
}

// skip orders each VM's problems by priority and marks the VMs that the
// options leave out (excluded, or skipped for a problem they resolve
// that way), whose problems then block nothing.
func (p *Plan) skip() {
	for _, pv := range p.VMs {
		slices.SortStableFunc(pv.Problems, func(a, b Problem) int {
			return slices.Index(codeOrder, a.Code) - slices.Index(codeOrder, b.Code)
		})
		for _, pr := range pv.Problems {
			switch {
			case pr.Code == Excluded,
				pr.Code == AlreadyExists && p.opts.SkipConflicting,
				(pr.Code == MissingTemplate || pr.Code == MissingNetVM) && p.opts.SkipBroken:
				pv.Skipped = true
			}
		}
	}
}

// freeName finds <name>-N, cutting name so that the result is a valid name.
func freeName(name string, taken map[string]bool) string {
	for i := 1; i < 1000; i++ {
		suffix := "-" + strconv.Itoa(i)
		base := name
		if len(base)+len(suffix) > 31 {
			base = base[:31-len(suffix)]
		}
		n := base + suffix
		if !taken[n] && host.ValidateName(n) == nil {
			return n
		}
	}
	return ""
}

// refKind is what a reference must point at.
type refKind int

const (
	refTemplate refKind = iota // a TemplateVM
	refDVM                     // template_for_dispvms
	refNet                     // provides_network
)

func (k refKind) fits(class string, dvm, net bool) bool {
	switch k {
	case refTemplate:
		return class == host.TemplateVM
	case refDVM:
		return dvm
	default:
		return net
	}
}

// find resolves a reference by name: the target name of a restored VM of
// the backup, else the host VM of that name, if it is of the right kind.
func find(name string, k refKind, db *host.DB, byName map[string]*PlannedVM, in map[*PlannedVM]bool) (string, bool) {
	if pv := byName[name]; pv != nil && in[pv] && k.fits(pv.VM.Class, pv.VM.TemplateForDispVMs, pv.VM.ProvidesNetwork) {
		return pv.Target, true
	}
	if db == nil {
		return name, true // no host to check against
	}
	if d, err := db.Domain(name); err == nil && k.fits(d.Class(), d.PropBool("template_for_dispvms"), d.PropBool("provides_network")) {
		return name, true
	}
	return "", false
}

// resolve plans pv's template, netvm and default_dispvm given the VMs
// currently restored, and returns its problems.
func (p *Plan) resolve(pv *PlannedVM, db *host.DB, byName map[string]*PlannedVM, in map[*PlannedVM]bool) (probs []Problem, warns []string) {
	v := pv.VM
	pv.Template, pv.TemplateChanged = v.Template, false
	pv.NetVM, pv.DefaultDispVM = v.NetVM, v.DefaultDispVM
	global := func(name string) string {
		if db == nil {
			return ""
		}
		val, _ := db.GlobalProp(name)
		return val
	}
	missing := func(code Code, what, name, def string) Problem {
		pr := Problem{VM: v.Name, Code: code, Resolve: []Resolution{SkipBroken, IgnoreMissing, ExcludeVM},
			Message: fmt.Sprintf("VM %s: its %s %s is neither on the host nor restored from the backup", v.Name, what, elide.String(name))}
		if p.opts.IgnoreMissing {
			pr.Message += fmt.Sprintf(", and the host has no usable %s to use instead", def)
			pr.Resolve = []Resolution{SkipBroken, ExcludeVM}
		}
		return pr
	}
	if v.Template != "" {
		k, def := refTemplate, "default_template"
		if v.Class == host.DispVM {
			k, def = refDVM, "default_dispvm"
		}
		if t, ok := find(v.Template, k, db, byName, in); ok {
			pv.Template = t
		} else if d := global(def); p.opts.IgnoreMissing && d != "" && func() bool { _, ok := find(d, k, db, nil, nil); return ok }() {
			pv.Template, pv.TemplateChanged = d, true
		} else {
			probs = append(probs, missing(MissingTemplate, "template", v.Template, def))
		}
	}
	if v.NetVM.Set && v.NetVM.Name != "" {
		if n, ok := find(v.NetVM.Name, refNet, db, byName, in); ok {
			pv.NetVM.Name = n
		} else if d := global("default_netvm"); p.opts.IgnoreMissing && d != "" {
			pv.NetVM = Ref{} // follow the host's default_netvm
		} else {
			probs = append(probs, missing(MissingNetVM, "netvm", v.NetVM.Name, "default_netvm"))
		}
	}
	if v.DefaultDispVM.Set && v.DefaultDispVM.Name != "" {
		if n, ok := find(v.DefaultDispVM.Name, refDVM, db, byName, in); ok {
			pv.DefaultDispVM.Name = n
		} else {
			pv.DefaultDispVM = Ref{}
			warns = append(warns, fmt.Sprintf("VM %s: its default_dispvm %s is neither on the host nor restored; it will use the default", v.Name, elide.String(v.DefaultDispVM.Name)))
		}
	}
	return probs, warns
}

// VM returns the planned VM of that original name ("dom0": the home).
func (p *Plan) VM(name string) *PlannedVM {
	for _, pv := range p.VMs {
		if pv.VM.Name == name {
			return pv
		}
	}
	return nil
}

// Problems lists the problems that block the restore: those of VMs that
// are neither excluded nor skipped by an option.
func (p *Plan) Problems() []Problem {
	var out []Problem
	for _, pv := range p.VMs {
		if !pv.Skipped {
			out = append(out, pv.Problems...)
		}
	}
	return out
}

// Err returns a *ProblemsError when the plan has unresolved problems.
func (p *Plan) Err() error {
	if probs := p.Problems(); len(probs) > 0 {
		return &ProblemsError{Problems: probs}
	}
	return nil
}

// Restored lists the VMs that will be restored, in restore order:
// templates, then disposable templates, then the others, then the dom0 home.
func (p *Plan) Restored() []*PlannedVM {
	rank := func(pv *PlannedVM) int {
		switch {
		case pv.VM.Class == host.AdminVM:
			return 3
		case pv.VM.Class == host.TemplateVM:
			return 0
		case pv.VM.TemplateForDispVMs:
			return 1
		}
		return 2
	}
	var out []*PlannedVM
	for _, pv := range p.VMs {
		if pv.Restored() {
			out = append(out, pv)
		}
	}
	slices.SortStableFunc(out, func(a, b *PlannedVM) int { return rank(a) - rank(b) })
	return out
}

// Rows returns the summary table (doc/reference.md B.5).
func (p *Plan) Rows() []Row {
	var rows []Row
	for _, pv := range p.VMs {
		v := pv.VM
		// The backup's words, shortened: a table cell of 100 KB would
		// bury the table.
		r := Row{Name: v.Name, Type: elide.String(v.Class), Template: elide.String(v.Template), Label: v.Label}
		if r.Template == "" {
			r.Template = "n/a"
		}
		switch {
		case !pv.NetVM.Set:
			r.NetVM = "(default)"
		case v.NetVM.Name == "":
			r.NetVM = "-"
		default:
			r.NetVM = elide.String(v.NetVM.Name)
		}
		if len(pv.Problems) > 0 {
			r.Problem = pv.Problems[0].Code.Summary()
		} else {
			if pv.TemplateChanged {
				r.Info = append(r.Info, fmt.Sprintf("Template change to '%s'", pv.Template))
			}
			if pv.Target != v.Name && v.Class != host.AdminVM {
				r.Info = append(r.Info, fmt.Sprintf("Will be renamed to '%s'", pv.Target))
			}
		}
		rows = append(rows, r)
	}
	return rows
}
