package host

import (
	"errors"
	"fmt"
	"strings"
)

// Every lookup in this package (a VM by name, a pool, a label, a
// property, a volume) takes the first entry that matches. An entry
// declared twice, by a hand edit or another program, would make the
// tools disagree on which one they act on: qvm-ls would show both VMs,
// qvm-volume one of them, and qvm-remove delete the other with its
// files. So a database with such entries is refused when it is read,
// before any tool acts, naming both entries.

// checkIdentity reports every entry of db that another one of its kind
// makes ambiguous: a top-level section given twice; two VMs with one
// name, qid or uuid; two AdminVMs; a VM called dom0 that is not the
// AdminVM; two labels with one id or name; two pools with one name; a
// property, feature or volume declared twice in one place.
func (db *DB) checkIdentity() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, errorf(ErrInvalid, format, a...)) }

	for _, sec := range topOrder {
		if all := db.root.children(sec); len(all) > 1 {
			bad("<%s> appears %d times; only the first would be read", sec, len(all))
		}
	}

	labelIDs, labelNames := map[string]string{}, map[string]string{}
	if ls := db.root.child("labels"); ls != nil {
		for i, n := range ls.children("label") {
			id, name := n.attr("id"), strings.TrimSpace(n.Text)
			me := fmt.Sprintf("<label> #%d (%s, %s)", i+1, id, name)
			if prev, ok := labelIDs[id]; ok {
				bad("two labels with id %q: %s and %s", id, prev, me)
			} else {
				labelIDs[id] = me
			}
			if prev, ok := labelNames[name]; ok {
				bad("two labels named %q: %s and %s", name, prev, me)
			} else {
				labelNames[name] = me
			}
		}
	}

	pools := map[string]string{}
	if ps := db.root.child("pools"); ps != nil {
		for i, n := range ps.children("pool") {
			name := n.attr("name")
			me := fmt.Sprintf("<pool> #%d (driver %s)", i+1, n.attr("driver"))
			if prev, ok := pools[name]; ok {
				bad("two storage pools named %q: %s and %s", name, prev, me)
			} else {
				pools[name] = me
			}
		}
	}

	if ps := db.root.child("properties"); ps != nil {
		errs = append(errs, uniqueKeys(ps.children("property"), "name", "global property"))
	}

	names, qids, uuids := map[string]string{}, map[int]string{}, map[string]string{}
	admin := ""
	for i, n := range db.domainNodes() {
		d := &Domain{db: db, n: n}
		name, class, qid := d.Name(), d.Class(), d.Qid()
		me := fmt.Sprintf("<domain> #%d (%s, qid %d)", i+1, name, qid)
		if class == AdminVM {
			if admin != "" {
				// Its name and qid would only add consequences ("two VMs
				// named dom0") after the cause.
				bad("two AdminVM entries: %s and %s; there is one dom0", admin, me)
				continue
			}
			admin = me
		} else if name == "dom0" {
			bad("%s is %s called dom0; only the AdminVM is dom0", me, withArticle(class))
			continue // not also as a duplicate name
		}
		if prev, ok := names[name]; ok {
			bad("two VMs named %s: %s and %s", name, prev, me)
		} else {
			names[name] = me
		}
		if prev, ok := qids[qid]; ok {
			bad("two VMs with qid %d: %s and %s", qid, prev, me)
		} else {
			qids[qid] = me
		}
		if u, _ := d.stored("uuid"); strings.TrimSpace(u) != "" {
			u = strings.ToLower(strings.TrimSpace(u))
			if prev, ok := uuids[u]; ok {
				bad("two VMs with uuid %s: %s and %s", u, prev, me)
			} else {
				uuids[u] = me
			}
		}
		for _, sec := range domainOrder {
			if sec == "devices" { // one <devices> per bus
				continue
			}
			if all := n.children(sec); len(all) > 1 {
				bad("%s: <%s> appears %d times; only the first would be read", me, sec, len(all))
			}
		}
		if ps := n.child("properties"); ps != nil {
			errs = append(errs, uniqueKeys(ps.children("property"), "name", me+": property"))
		}
		if fs := n.child("features"); fs != nil {
			errs = append(errs, uniqueKeys(fs.children("feature"), "name", me+": feature"))
		}
		if vc := n.child("volume-config"); vc != nil {
			errs = append(errs, uniqueKeys(vc.children("volume"), "name", me+": volume"))
		}
	}
	return errors.Join(errs...)
}

// uniqueKeys reports the first repeat of each key among nodes, with the
// positions of both.
func uniqueKeys(nodes []*node, key, what string) error {
	var errs []error
	seen := map[string]int{}
	for i, n := range nodes {
		k := n.attr(key)
		if first, ok := seen[k]; ok {
			if first > 0 {
				errs = append(errs, errorf(ErrInvalid, "%s %s is declared twice (entries #%d and #%d)", what, k, first, i+1))
				seen[k] = -1 // once is enough
			}
			continue
		}
		seen[k] = i + 1
	}
	return errors.Join(errs...)
}

// checkHost adds what a host's database, with its files under root,
// needs besides checkIdentity: its dom0, and an image file of each VM's
// own (checkImages).
func (db *DB) checkHost(root string) error {
	for _, n := range db.domainNodes() {
		if n.attr("class") == AdminVM {
			return db.checkImages(root)
		}
	}
	return errorf(ErrInvalid, "no AdminVM entry (dom0)")
}
