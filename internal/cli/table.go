package cli

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Table prints rows the way the reference tools do (they pipe through
// `column -t`): every column but the last padded to its widest cell, two
// spaces between columns, no trailing blanks.
type Table struct {
	rows [][]string
}

// NewTable starts a table; a header, if given, is its first row.
func NewTable(header ...string) *Table {
	t := &Table{}
	if len(header) > 0 {
		t.Row(header...)
	}
	return t
}

// Row adds a row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Len is the number of rows, the header included.
func (t *Table) Len() int { return len(t.rows) }

// WriteTo writes the table.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		var line strings.Builder
		for i, c := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			line.WriteString(c)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
