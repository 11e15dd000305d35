package gui

import (
	"fmt"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/host"
)

// Title is the main window's title.
const Title = "PedOS VM Manager"

// Hooks are what the main window's Backup and Restore actions do. The
// caller supplies them, so that the wizards plug in without the window
// knowing them. A nil hook leaves its action disabled.
type Hooks struct {
	Backup, Restore func()
}

// MainWindow is the VM Manager's main window: the host's VMs in a table
// as qvm-ls lists them, and the actions on them.
type MainWindow struct {
	Window fyne.Window

	root  string
	hooks Hooks
	rows  []VMRow

	table                    *widget.Table
	status                   *widget.Label
	backup, restore, refresh *widget.Button
}

// NewMainWindow makes the main window of a for the host in root, reads
// the host and returns the window, not yet shown. Closing it quits a.
// A host that cannot be read shows its error in the window, and Refresh
// tries again.
func NewMainWindow(a fyne.App, root string, hooks Hooks) *MainWindow {
	m := &MainWindow{Window: a.NewWindow(Title), root: root, hooks: hooks}
	m.Window.SetMaster()

	m.table = widget.NewTable(m.length, newCell, m.updateCell)
	m.table.ShowHeaderRow = true
	m.table.CreateHeader = func() fyne.CanvasObject {
		l := widget.NewLabel("")
		l.TextStyle.Bold = true
		return l
	}
	m.table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		o.(*widget.Label).SetText(columns[id.Col].title)
	}
	m.status = widget.NewLabel("")
	m.status.Truncation = fyne.TextTruncateEllipsis

	m.backup = widget.NewButtonWithIcon("Backup", theme.DocumentSaveIcon(), m.callBackup)
	m.restore = widget.NewButtonWithIcon("Restore", theme.HistoryIcon(), m.callRestore)
	m.refresh = widget.NewButtonWithIcon("Refresh", theme.ViewRefreshIcon(), m.Refresh)
	enable(m.backup, hooks.Backup != nil)
	enable(m.restore, hooks.Restore != nil)
	toolbar := container.NewHBox(m.backup, m.restore, widget.NewSeparator(), m.refresh)

	backupItem := fyne.NewMenuItem("Backup…", m.callBackup)
	backupItem.Disabled = hooks.Backup == nil
	restoreItem := fyne.NewMenuItem("Restore…", m.callRestore)
	restoreItem.Disabled = hooks.Restore == nil
	refreshItem := fyne.NewMenuItem("Refresh", m.Refresh)
	refreshItem.Shortcut = &desktop.CustomShortcut{KeyName: fyne.KeyR, Modifier: fyne.KeyModifierShortcutDefault}
	quitItem := fyne.NewMenuItem("Quit", a.Quit)
	quitItem.IsQuit = true
	quitItem.Shortcut = &desktop.CustomShortcut{KeyName: fyne.KeyQ, Modifier: fyne.KeyModifierShortcutDefault}
	m.Window.SetMainMenu(fyne.NewMainMenu(fyne.NewMenu("File",
		backupItem, restoreItem, refreshItem, fyne.NewMenuItemSeparator(), quitItem)))

	m.Window.SetContent(container.NewBorder(
		container.NewVBox(toolbar, widget.NewSeparator()),
		container.NewVBox(widget.NewSeparator(), m.status),
		nil, nil, m.table))
	m.Window.Resize(fyne.NewSize(960, 560))
	m.Refresh()
	return m
}

func (m *MainWindow) callBackup() {
	if m.hooks.Backup != nil {
		m.hooks.Backup()
	}
}

func (m *MainWindow) callRestore() {
	if m.hooks.Restore != nil {
		m.hooks.Restore()
	}
}

// Refresh reads the host again. Reading takes milliseconds (pedos.xml
// and a stat per image), so it runs on the UI goroutine, and the table
// never shows a host half read.
func (m *MainWindow) Refresh() {
	rows, err := m.read()
	m.rows = rows
	if err != nil {
		m.status.SetText(err.Error())
		m.status.Importance = widget.DangerImportance
	} else {
		running := 0
		for _, r := range rows {
			if r.State == "Running" {
				running++
			}
		}
		m.status.SetText(fmt.Sprintf("%d VMs, %d running", len(rows), running))
		m.status.Importance = widget.MediumImportance
	}
	m.status.Refresh()
	m.fitColumns()
	m.table.Refresh()
}

func (m *MainWindow) read() ([]VMRow, error) {
	h, err := host.Open(m.root)
	if err != nil {
		return nil, err
	}
	return ReadVMs(h)
}

func (m *MainWindow) length() (int, int) { return len(m.rows), len(columns) }

// A cell is a colour swatch, shown in the label column only, and a text.
func newCell() fyne.CanvasObject {
	swatch := canvas.NewRectangle(color.Transparent)
	swatch.SetMinSize(fyne.NewSquareSize(theme.IconInlineSize()))
	swatch.CornerRadius = theme.InputRadiusSize()
	return container.NewHBox(container.NewCenter(swatch), widget.NewLabel(""))
}

func (m *MainWindow) updateCell(id widget.TableCellID, o fyne.CanvasObject) {
	if id.Row >= len(m.rows) {
		return
	}
	row := m.rows[id.Row]
	c := o.(*fyne.Container)
	swatchBox, label := c.Objects[0].(*fyne.Container), c.Objects[1].(*widget.Label)
	label.SetText(columns[id.Col].text(row))
	if id.Col == labelColumn && row.Color != nil {
		swatch := swatchBox.Objects[0].(*canvas.Rectangle)
		swatch.FillColor = row.Color
		swatch.StrokeColor = theme.Color(theme.ColorNameForeground)
		swatch.StrokeWidth = 1
		swatchBox.Show()
	} else {
		swatchBox.Hide()
	}
	// The table reuses cells across columns: lay the cell out again, or
	// a text keeps the place of a swatch it no longer has.
	c.Refresh()
}

// fitColumns makes each column as wide as its widest text, so that no
// name is cut short.
func (m *MainWindow) fitColumns() {
	pad := 2 * theme.InnerPadding()
	for i, col := range columns {
		w := fyne.MeasureText(col.title, theme.TextSize(), fyne.TextStyle{Bold: true}).Width
		for _, r := range m.rows {
			w = max(w, fyne.MeasureText(col.text(r), theme.TextSize(), fyne.TextStyle{}).Width)
		}
		if i == labelColumn {
			w += theme.IconInlineSize() + theme.Padding()
		}
		m.table.SetColumnWidth(i, w+pad+theme.Padding())
	}
}
