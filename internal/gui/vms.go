package gui

import (
	"image/color"
	"slices"
	"strconv"
	"strings"
	"time"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// VMRow is one line of the main window's table.
type VMRow struct {
	Name, State, Class string
	Label              string      // label name ("" if unset)
	Color              color.Color // the label's colour; nil if unknown
	Template, NetVM    string
	// Usage is the space the VM's own images take on disk; -1 when it
	// has none (dom0, a DispVM) or one cannot be read (a pool PedOS
	// cannot use, a missing file).
	Usage int64
	// LastBackup is backup_timestamp; zero if the VM was never backed up.
	LastBackup time.Time
}

// columns are the table's columns, in order, with how to show a row in
// each; the label column also draws the colour swatch.
var columns = []struct {
	title string
	text  func(VMRow) string
}{
	{"Name", func(r VMRow) string { return r.Name }},
	{"State", func(r VMRow) string { return r.State }},
	{"Class", func(r VMRow) string { return r.Class }},
	{"Label", func(r VMRow) string { return orDash(r.Label) }},
	{"Template", func(r VMRow) string { return orDash(r.Template) }},
	{"NetVM", func(r VMRow) string { return orDash(r.NetVM) }},
	{"Disk", func(r VMRow) string {
		if r.Usage < 0 {
			return "-"
		}
		return cli.FormatSize(r.Usage)
	}},
	{"Last backup", func(r VMRow) string {
		if r.LastBackup.IsZero() {
			return "never"
		}
		return r.LastBackup.Local().Format("2006-01-02 15:04")
	}},
}

const labelColumn = 3

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ReadVMs reads the host's VMs in qvm-ls order: dom0 first, then by name.
func ReadVMs(h *host.Host) ([]VMRow, error) {
	db, err := h.Load()
	if err != nil {
		return nil, err
	}
	var rows []VMRow
	for _, d := range db.Domains() {
		r := VMRow{
			Name: d.Name(), State: "Halted", Class: d.Class(),
			Label: d.Label(), Template: d.Template(), NetVM: d.NetVM(),
		}
		if h.IsRunning(r.Name) {
			r.State = "Running"
		}
		if l, err := db.Label(r.Label); err == nil {
			r.Color = parseColor(l.Color)
		}
		if ts, _ := d.Prop("backup_timestamp"); ts != "" {
			if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
				r.LastBackup = time.Unix(sec, 0)
			}
		}
		r.Usage = usage(h, r.Name)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b VMRow) int {
		if (a.Class == host.AdminVM) != (b.Class == host.AdminVM) {
			if a.Class == host.AdminVM {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rows, nil
}

// usage adds up the disk usage of a VM's images. One unreadable image
// makes the whole figure unknown rather than too small.
func usage(h *host.Host, vm string) int64 {
	vols, err := h.Volumes(vm)
	if err != nil {
		return -1
	}
	sum := int64(-1)
	for _, v := range vols {
		if v.Path != "" {
			sum = max(sum, 0) + v.Usage
		}
	}
	return sum
}

// parseColor reads a label colour as pedos.xml writes it, 0xRRGGBB.
func parseColor(s string) color.Color {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
	if err != nil || v > 0xffffff {
		return nil
	}
	return color.NRGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}
