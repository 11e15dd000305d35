package admintools

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/backup"
)

// Column widths of the reference summary table (doc/reference.md A.7): each
// cell holds its value right-aligned in width+1 characters and ends in " |".
const (
	summaryVMWidth   = 16
	summaryTypeWidth = 12
	summarySizeWidth = 12
)

// writeSummaryTable prints the backup summary exactly as the reference
// qvm-backup does: a separator, the header, a separator, a row per VM
// (a running VM's row followed by its note), a separator, the total
// (spanning the type and size columns), a separator, then the VMs left
// out, sorted.
func writeSummaryTable(w io.Writer, s backup.Summary) error {
	var b strings.Builder
	sep := strings.Repeat("-", summaryVMWidth+2) + "+" +
		strings.Repeat("-", summaryTypeWidth+2) + "+" +
		strings.Repeat("-", summarySizeWidth+2) + "+\n"
	row := func(vm, typ, size string) string {
		return fmt.Sprintf("%*s |%*s |%*s |", summaryVMWidth+1, vm, summaryTypeWidth+1, typ, summarySizeWidth+1, size)
	}
	b.WriteString(sep)
	b.WriteString(row("VM", "type", "size") + "\n")
	b.WriteString(sep)
	for _, r := range s.Rows {
		b.WriteString(row(r.VM, r.Type, summarySize(r.Size)))
		if r.Note != "" {
			b.WriteString(" <-- " + r.Note)
		}
		b.WriteString("\n")
	}
	b.WriteString(sep)
	fmt.Fprintf(&b, "%*s |%*s |\n", summaryVMWidth+1, "Total size:",
		summaryTypeWidth+1+2+summarySizeWidth+1, summarySize(s.Total))
	b.WriteString(sep)
	if len(s.NotSelected) > 0 {
		b.WriteString("VMs not selected for backup:\n")
		for _, n := range s.NotSelected {
			b.WriteString(" - " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// summarySize writes a size as the reference summary does: the bare
// number below 1024, else one decimal and KiB, MiB or GiB.
func summarySize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}
