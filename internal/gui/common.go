package gui

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
)

// Window titles of the two wizards; the desktop entries name them alike.
const (
	BackupTitle  = "Backup PedOS"
	RestoreTitle = "Restore Backup"
)

// warningLabel shows text in the theme's warning colour, wrapped.
func warningLabel(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Importance = widget.WarningImportance
	l.Wrapping = fyne.TextWrapWord
	return l
}

// capitalize makes an engine's message, which starts in lower case to fit
// inside a sentence, start a line of its own.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
