package restore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
)

// Checking a restore against the host before anything is touched, and the
// host-wide settings a restore may apply when asked.

// CheckHost tries the restore's changes to the VM database on a copy:
// every VM is added in restore order and every reference set. It returns
// what would be left at a default (with the options that would apply it
// instead, if any), and an error when a VM cannot be
// added at all or the host lacks space for the data. Restore calls it
// first; a front end calls it to show the warnings before asking. It
// stops, with an error wrapping ErrCancelled, when ctx is cancelled.
func CheckHost(ctx context.Context, h *host.Host, plan *Plan, opts Options) ([]Warning, error) {
	if h == nil || !plan.hasHost || plan.opts.VerifyOnly {
		return nil, errors.New("restore: the plan was not made for restoring into a host")
	}
	if ctx.Err() != nil {
		return nil, cancelled(ctx)
	}
	if err := plan.Err(); err != nil {
		return nil, err
	}
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	hr := newHostRun(h, plan, opts)
	if hr.pool, err = restorePool(db, plan, opts); err != nil {
		return nil, err
	}
	var warns []Warning
	var need int64
	for _, pv := range plan.Restored() {
		need += pv.VM.Size
	}
	for _, pv := range plan.Restored() { // restore order, a VM after its template
		if pv.VM.Class == host.AdminVM {
			continue
		}
		if ctx.Err() != nil {
			return warns, cancelled(ctx)
		}
		err := hr.queue(pv, func(q *PlannedVM) error {
			w, err := hr.add(db, q, nil)
			if err != nil {
				return fmt.Errorf("VM %s cannot be restored: %w", q.VM.Name, err)
			}
			for _, m := range w {
				warns = append(warns, Warning{Message: m})
			}
			return nil
		})
		if err != nil {
			return warns, err
		}
	}
	if len(hr.ready) > 0 {
		q := hr.ready[0]
		return warns, fmt.Errorf("VM %s cannot be restored: its template %s cannot be restored first", q.VM.Name, q.Template)
	}
	if err := db.Validate(); err != nil {
		return warns, fmt.Errorf("the restored VMs would not fit this host's VM database: %w", err)
	}
	if globals := unsetGlobals(db, plan.backup.DB); len(globals) > 0 && !opts.GlobalDefaults {
		var list []string
		for _, p := range globals {
			list = append(list, p.Name+"="+p.Value)
		}
		warns = append(warns, Warning{Message: fmt.Sprintf("the backup's global settings this host leaves unset (%s) are not applied", strings.Join(list, ", ")),
			Resolve: []Resolution{RestoreGlobalDefaults}})
	}
	if d0 := plan.backup.DB; d0 != nil {
		if dom0, err := d0.Domain("dom0"); err == nil {
			v, isDefault := dom0.Prop("default_dispvm")
			switch {
			case isDefault:
			case !opts.Dom0DefaultDispVM:
				warns = append(warns, Warning{Message: fmt.Sprintf("the backup's dom0 default_dispvm %s is not applied", elide.Quote(v)),
					Resolve: []Resolution{RestoreDom0DefaultDispVM}})
			default:
				// Tried on the copy, where every restored VM now exists.
				here, _ := db.Domain("dom0")
				if err := here.SetProp("default_dispvm", hr.mapName(v)); err != nil {
					return warns, fmt.Errorf("the backup's dom0 default_dispvm cannot be applied: %w", err)
				}
			}
		}
	}
	// The images go to the pool's file system; the rest (firewall, notes)
	// is small. (Only a dom0 home: the space is the home's, unchecked.)
	if hr.pool.Name == "" {
		return warns, nil
	}
	if dir, free, ok := freeSpace(hr.pool.DirPath); ok && free < need {
		n, f := progress.FormatSizes(need, free)
		return warns, fmt.Errorf("not enough space in %s (pool %s): the restore needs up to %s, %s free",
			dir, hr.pool.Name, n, f)
	}
	return warns, nil
}

// restorePool is the file pool the restored VMs go to; none (no error)
// when the plan restores no VM, only the dom0 home.
func restorePool(db *host.DB, plan *Plan, opts Options) (host.Pool, error) {
	vms := 0
	for _, pv := range plan.Restored() {
		if pv.VM.Class != host.AdminVM {
			vms++
		}
	}
	if vms == 0 {
		return host.Pool{}, nil
	}
	p, err := db.FilePool(opts.Pool)
	if err != nil {
		which := "the default pool"
		if opts.Pool != "" {
			which = "pool " + opts.Pool
		}
		return p, fmt.Errorf("the VMs cannot be restored into %s: %w", which, err)
	}
	return p, nil
}

// freeSpace measures the space free to unprivileged users on the file
// system of dir, or of its nearest existing parent (a pool directory not
// made yet).
func freeSpace(dir string) (at string, free int64, ok bool) {
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			return dir, int64(st.Bavail) * int64(st.Bsize), true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", 0, false
		}
		dir = parent
	}
}

// unsetGlobals lists the backup's global VM settings that db leaves unset.
func unsetGlobals(db, backed *host.DB) []host.Property {
	var out []host.Property
	if backed == nil {
		return nil
	}
	for _, p := range backed.GlobalProps() {
		if _, isDefault := db.GlobalProp(p.Name); isDefault && host.IsRefGlobal(p.Name) && p.Value != "" {
			out = append(out, p)
		}
	}
	return out
}

// applyGlobals sets the backup's global VM settings this host leaves
// unset, each on its own (one that names a VM not here is left out).
func (hr *hostRun) applyGlobals() []string {
	db, err := hr.h.Load()
	if err != nil {
		return []string{err.Error()}
	}
	var warns []string
	for _, p := range unsetGlobals(db, hr.plan.backup.DB) {
		v := hr.mapName(p.Value)
		if err := hr.h.Update(func(db *host.DB) error { return db.SetGlobalProp(p.Name, v) }); err != nil {
			warns = append(warns, fmt.Sprintf("global %s left unset: %v", p.Name, err))
		}
	}
	return warns
}

// applyDom0DefaultDispVM sets the backup's dom0 default_dispvm here (E.23,
// only when asked).
func (hr *hostRun) applyDom0DefaultDispVM() error {
	bd, err := hr.plan.backup.DB.Domain("dom0")
	if err != nil {
		return nil
	}
	v, isDefault := bd.Prop("default_dispvm")
	if isDefault {
		return nil
	}
	return hr.h.Update(func(db *host.DB) error {
		d, err := db.Domain("dom0")
		if err != nil {
			return err
		}
		return d.SetProp("default_dispvm", hr.mapName(v))
	})
}
