package admintools

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// lsColumns are the columns qvm-ls knows besides properties, and how to
// fill them.
var lsColumns = map[string]func(h *host.Host, d *host.Domain) string{
	"NAME": func(_ *host.Host, d *host.Domain) string { return d.Name() },
	"STATE": func(h *host.Host, d *host.Domain) string {
		if h.IsRunning(d.Name()) {
			return "Running"
		}
		return "Halted"
	},
	"CLASS":    func(_ *host.Host, d *host.Domain) string { return d.Class() },
	"LABEL":    func(_ *host.Host, d *host.Domain) string { return d.Label() },
	"TEMPLATE": func(_ *host.Host, d *host.Domain) string { return d.Template() },
	"NETVM":    func(_ *host.Host, d *host.Domain) string { return d.NetVM() },
	"TAGS":     func(_ *host.Host, d *host.Domain) string { return strings.Join(d.Tags(), ",") },
}

var defaultLsColumns = []string{"NAME", "STATE", "CLASS", "LABEL", "TEMPLATE", "NETVM"}

// QvmLs is qvm-ls: list the VMs in a table.
func QvmLs(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-ls", stdin: stdin, stdout: stdout, stderr: stderr}
	var (
		running, halted, rawList, rawData bool
		tags, classes, exclude, fields    []string
	)
	c := newRoot(e, "[options] [VMNAME...]",
		"List VMs and their state: dom0 first, then by name. Without a VMNAME, every VM.\n"+
			"Columns for --fields: "+strings.Join(slices.Sorted(maps.Keys(lsColumns)), ", ")+
			", and any property (memory, vcpus, ...).")
	f := c.Flags()
	f.BoolVar(&running, "running", false, "show only running VMs")
	f.BoolVar(&halted, "halted", false, "show only halted VMs")
	f.StringSliceVar(&tags, "tags", nil, "show only VMs with one of these tags (`TAG`[,TAG...]; repeatable)")
	f.StringSliceVar(&classes, "class", nil, "show only VMs of these classes (`CLASS`[,CLASS...]: AppVM, TemplateVM, ...)")
	f.StringSliceVar(&exclude, "exclude", nil, "leave out these VMs (`VMNAME`[,VMNAME...])")
	f.BoolVar(&rawList, "raw-list", false, "print only the names, one per line")
	f.BoolVar(&rawData, "raw-data", false, "print the columns separated by '|', without a header")
	f.StringSliceVarP(&fields, "fields", "O", nil, "the columns to show (`FIELD`[,FIELD...], case-insensitive)")
	c.Args = nargs(0, -1, "")
	c.RunE = func(_ *cobra.Command, names []string) error {
		cols := defaultLsColumns
		if len(fields) > 0 {
			cols = nil
			for _, f := range fields {
				cols = append(cols, strings.ToUpper(strings.TrimSpace(f)))
			}
		}
		if rawList {
			cols = []string{"NAME"}
		}
		for i, cl := range classes {
			canon, ok := canonicalClass(cl, true)
			if !ok {
				return cli.WithHint(fmt.Errorf("unknown VM class %q", cl),
					"the classes are AdminVM, TemplateVM, AppVM, StandaloneVM, DispVM")
			}
			classes[i] = canon
		}
		h, err := e.host()
		if err != nil {
			return err
		}
		db, err := h.Load()
		if err != nil {
			return err
		}
		for _, col := range cols {
			if err := checkColumn(db, col); err != nil {
				return err
			}
		}
		for _, n := range append(slices.Clone(names), exclude...) {
			if _, err := db.Domain(n); err != nil {
				return err
			}
		}
		var doms []*host.Domain
		for _, d := range db.Domains() {
			run := h.IsRunning(d.Name())
			switch {
			case len(names) > 0 && !slices.Contains(names, d.Name()),
				slices.Contains(exclude, d.Name()),
				running != halted && run != running,
				len(classes) > 0 && !slices.Contains(classes, d.Class()),
				len(tags) > 0 && !slices.ContainsFunc(tags, d.HasTag):
				continue
			}
			doms = append(doms, d)
		}
		slices.SortFunc(doms, func(a, b *host.Domain) int {
			if (a.Class() == host.AdminVM) != (b.Class() == host.AdminVM) {
				if a.Class() == host.AdminVM {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Name(), b.Name())
		})
		t := cli.NewTable()
		if !rawList && !rawData {
			t.Row(cols...)
		}
		for _, d := range doms {
			row := make([]string, len(cols))
			for i, col := range cols {
				v := lsCell(h, d, col)
				if v == "" && !rawData {
					v = "-"
				}
				row[i] = v
			}
			if rawData {
				fmt.Fprintln(e.stdout, strings.Join(row, "|"))
				continue
			}
			t.Row(row...)
		}
		if rawData {
			return nil
		}
		_, err = t.WriteTo(e.stdout)
		return err
	}
	return execute(e, c, args)
}

// checkColumn fails unless col is a known column or a property of some VM.
func checkColumn(db *host.DB, col string) error {
	if _, ok := lsColumns[col]; ok {
		return nil
	}
	for _, d := range db.Domains() {
		if hasProp(d, strings.ToLower(col)) {
			return nil
		}
	}
	return cli.WithHint(fmt.Errorf("unknown column %q", col),
		"the columns are %s, and the properties 'qvm-prefs VM' lists",
		strings.Join(slices.Sorted(maps.Keys(lsColumns)), ", "))
}

// lsCell is the text of one column for d: a known column, else the
// property of that name ("" if d's class has no such property).
func lsCell(h *host.Host, d *host.Domain, col string) string {
	if fn, ok := lsColumns[col]; ok {
		return fn(h, d)
	}
	prop := strings.ToLower(col)
	if !hasProp(d, prop) {
		return ""
	}
	v, _ := d.Prop(prop)
	return v
}

// canonicalClass maps a class name in any case, with or without its "VM"
// suffix (appvm, Standalone), to its canonical spelling.
func canonicalClass(s string, adminOK bool) (string, bool) {
	for _, c := range []string{host.AdminVM, host.TemplateVM, host.AppVM, host.StandaloneVM, host.DispVM} {
		if (strings.EqualFold(s, c) || strings.EqualFold(s+"VM", c)) && (adminOK || c != host.AdminVM) {
			return c, true
		}
	}
	return "", false
}
