package gui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"
)

// Window titles of the two wizards; the desktop entries name them alike.
const (
	BackupTitle  = "Backup PedOS"
	RestoreTitle = "Restore Backup"
)

// PlaceholderHooks are hooks that open a window saying which wizard will
// go there.
//
// TODO: replace with the Backup and Restore wizards (built on Wizard)
// once their engine calls are settled; until then the placeholders keep
// the main window, pedos-manager backup/restore and the desktop entries
// working end to end.
func PlaceholderHooks(a fyne.App) Hooks {
	return Hooks{
		Backup:  func() { showPlaceholder(a, BackupTitle, "The Backup wizard will go here.") },
		Restore: func() { showPlaceholder(a, RestoreTitle, "The Restore wizard will go here.") },
	}
}

// showPlaceholder is the TODO window of PlaceholderHooks.
func showPlaceholder(a fyne.App, title, text string) fyne.Window {
	win := a.NewWindow(title)
	msg := widget.NewLabel(text)
	msg.Alignment = fyne.TextAlignCenter
	win.SetContent(container.NewBorder(nil,
		container.NewHBox(layout.NewSpacer(), widget.NewButton("Close", win.Close)),
		nil, nil, container.NewCenter(msg)))
	win.Resize(fyne.NewSize(480, 240))
	closeOnEscape(win, win.Close)
	win.Show()
	return win
}
