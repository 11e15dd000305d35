package gui

import (
	"context"
	"fmt"
	"path"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/qrexec"
)

// vmBrowser is the "…" dialog for a location in a VM: dom0 cannot open a
// file dialog on a VM's filesystem, so it lists the VM's directories
// through the VM-side pedos.Browse service (qrexec.Browse) and lets the
// user walk them. It picks a directory (a backup's destination) or a file
// (a backup to restore). Names come from the VM: they are shown as text
// and joined to the path, never run. Its fields belong to the UI
// goroutine: a listing's result reaches them through onUI.
type vmBrowser struct {
	t        qrexec.Transport
	vm       string
	wantFile bool
	pick     func(string)

	dlg     dialog.Dialog
	where   *widget.Label
	status  *widget.Label
	list    *widget.List
	choose  *widget.Button
	dir     string
	entries []qrexec.BrowseEntry
	chosen  string // the file selected, when wantFile
	cancel  context.CancelFunc

	// listed runs after each listing is shown (tests wait on it); may be nil.
	listed func()
}

// browseVM opens the dialog on win, starting in start when that is an
// absolute path in the VM (its directory, for a file), else in the VM
// user's home; pick gets the chosen path.
func browseVM(win fyne.Window, t qrexec.Transport, vm, start string, wantFile bool, pick func(string), listed func()) *vmBrowser {
	vb := &vmBrowser{t: t, vm: vm, wantFile: wantFile, pick: pick, listed: listed}
	vb.where = widget.NewLabel("")
	vb.where.Wrapping = fyne.TextWrapBreak
	vb.status = widget.NewLabel("")
	vb.status.Wrapping = fyne.TextWrapWord
	vb.list = widget.NewList(vb.length, func() fyne.CanvasObject { return widget.NewLabel("") }, vb.show)
	vb.list.OnSelected = vb.selected
	what := "directory"
	if wantFile {
		what = "backup file"
	}
	vb.choose = widget.NewButton("Choose", vb.done)
	vb.choose.Importance = widget.HighImportance
	cancel := widget.NewButton("Cancel", func() { vb.close() })
	buttons := container.NewHBox(cancel, vb.choose)
	content := container.NewBorder(container.NewVBox(vb.where, vb.status), container.NewCenter(buttons), nil, nil, vb.list)
	vb.dlg = dialog.NewCustomWithoutButtons(fmt.Sprintf("Choose a %s in %s", what, vm), content, win)
	vb.dlg.Resize(fyne.NewSize(600, 440))
	vb.dlg.Show()
	dir := "/home/user"
	if start = strings.TrimSpace(start); strings.HasPrefix(start, "/") {
		dir = path.Clean(start)
		if wantFile {
			dir = path.Dir(dir)
		}
	}
	vb.open(dir)
	return vb
}

// open lists dir in the background; the list shows it when it comes.
func (vb *vmBrowser) open(dir string) {
	if vb.cancel != nil {
		vb.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	vb.cancel = cancel
	vb.status.SetText("Reading " + dir + "…")
	vb.choose.Disable()
	go func() {
		entries, err := qrexec.Browse(ctx, vb.t, vb.vm, dir)
		onUI(func() {
			if ctx.Err() != nil {
				return // superseded, or the dialog closed
			}
			if err != nil {
				// Stay where we were: the user can go elsewhere.
				vb.status.SetText(err.Error())
			} else {
				vb.dir, vb.chosen = dir, ""
				vb.entries = entries
				if dir != "/" {
					vb.entries = append([]qrexec.BrowseEntry{{Name: "..", Dir: true}}, entries...)
				}
				vb.status.SetText(vb.hint(len(entries)))
				vb.where.SetText(vb.vm + ": " + dir)
				vb.list.UnselectAll()
				vb.list.Refresh()
				vb.list.ScrollToTop()
				if !vb.wantFile {
					vb.choose.Enable()
				}
			}
			if vb.listed != nil {
				vb.listed()
			}
		})
	}()
}

func (vb *vmBrowser) hint(n int) string {
	if n == 0 {
		return "This directory is empty."
	}
	if vb.wantFile {
		return "Open a directory, or select the backup file."
	}
	return "Open a directory, then Choose: the backup is written into the directory shown."
}

func (vb *vmBrowser) length() int { return len(vb.entries) }

func (vb *vmBrowser) show(i widget.ListItemID, o fyne.CanvasObject) {
	if i >= len(vb.entries) {
		return
	}
	e := vb.entries[i]
	text := e.Name + "/"
	if !e.Dir {
		text = fmt.Sprintf("%s   (%s)", e.Name, progress.FormatSize(e.Size))
	}
	o.(*widget.Label).SetText(text)
}

// selected opens a directory, or selects a file.
func (vb *vmBrowser) selected(i widget.ListItemID) {
	if i >= len(vb.entries) {
		return
	}
	e, dir := vb.entries[i], vb.dir
	switch {
	case e.Dir && e.Name == "..":
		vb.open(path.Dir(dir))
	case e.Dir:
		vb.open(path.Join(dir, e.Name))
	case vb.wantFile:
		vb.chosen = path.Join(dir, e.Name)
		vb.choose.Enable()
	default:
		vb.list.Unselect(i) // a file is not a directory to back up into
	}
}

// done hands the choice over and closes the dialog.
func (vb *vmBrowser) done() {
	choice := vb.dir
	if vb.wantFile {
		choice = vb.chosen
	}
	if choice == "" {
		return
	}
	vb.close()
	vb.pick(choice)
}

func (vb *vmBrowser) close() {
	if vb.cancel != nil {
		vb.cancel()
	}
	vb.dlg.Hide()
}
