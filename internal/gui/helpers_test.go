package gui

import (
	"cmp"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/host"
)

// newApp makes the Fyne test app current for the test: windows live in
// memory and render with the software painter. It uses the real theme, so
// that what tests see and screenshots show is what a user sees.
func newApp(t *testing.T) fyne.App {
	t.Helper()
	a := test.NewTempApp(t)
	test.ApplyTheme(t, theme.DefaultTheme())
	return a
}

// demoHost makes the demo host (pedos-host demo) in a temp directory and
// returns its root.
func demoHost(t *testing.T) (string, *host.Host) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	h, err := host.Demo(root, host.InitOptions{User: "user"})
	if err != nil {
		t.Fatal(err)
	}
	return root, h
}

// walkVisible calls f on o and on every visible object under it, as
// drawn: the children of containers and the objects of widgets'
// renderers. f says whether to go into the object's own.
func walkVisible(o fyne.CanvasObject, f func(fyne.CanvasObject) bool) {
	if o == nil || !o.Visible() || !f(o) {
		return
	}
	switch o := o.(type) {
	case *fyne.Container:
		for _, k := range o.Objects {
			walkVisible(k, f)
		}
	case fyne.Widget:
		for _, k := range test.WidgetRenderer(o).Objects() {
			walkVisible(k, f)
		}
	}
}

// startVM starts vm on h and returns its filesystem's directory.
func startVM(t *testing.T, h *host.Host, vm string) string {
	t.Helper()
	if err := h.Start(vm); err != nil {
		t.Fatal(err)
	}
	fsdir, err := h.FS(vm)
	if err != nil {
		t.Fatal(err)
	}
	return fsdir
}

// uiWork is the UI goroutine's queue in tests: onUI and onUIWait put work
// on it, and the test goroutine, the tests' UI goroutine, runs it while
// it waits (wait, drainUI), as Fyne's event loop runs fyne.Do's work.
var uiWork = make(chan func(), 1<<14)

func init() {
	onUI = func(f func()) { uiWork <- f }
	onUIWait = func(f func()) {
		done := make(chan struct{})
		uiWork <- func() { defer close(done); f() }
		<-done
	}
}

// drainUI runs the UI work queued so far.
func drainUI() {
	for {
		select {
		case f := <-uiWork:
			f()
		default:
			return
		}
	}
}

// wait fails the test unless ch yields within a generous deadline: the
// event is expected at once, but the machine may be busy. Meanwhile it
// runs the UI work that comes, and before it returns what was queued.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case v := <-ch:
			drainUI()
			return v
		case f := <-uiWork:
			f()
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
			var zero T
			return zero
		}
	}
}

// seenCell is a table cell as the user sees it: its text and, in the
// label column, the colour of its swatch.
type seenCell struct {
	text   string
	swatch color.Color
	x      float32 // where the text starts in the table
}

// tableLines reads a table as the user sees it: through the renderers the
// window itself uses, the visible cells line by line from the top (the
// header first), each line left to right.
func tableLines(tbl *widget.Table) [][]seenCell {
	type placed struct {
		pos  fyne.Position
		cell seenCell
	}
	var cells []placed
	var walk func(o fyne.CanvasObject, parent fyne.Position)
	walk = func(o fyne.CanvasObject, parent fyne.Position) {
		if !o.Visible() {
			return
		}
		pos := parent.Add(o.Position())
		center := pos.Add(fyne.NewPos(0, o.Size().Height/2))
		switch o := o.(type) {
		case *widget.Label: // a header
			cells = append(cells, placed{center, seenCell{text: o.Text, x: pos.X}})
		case fyne.Widget:
			for _, k := range test.WidgetRenderer(o).Objects() {
				walk(k, pos)
			}
		case *fyne.Container:
			if c, ok := readCell(o, pos); ok {
				cells = append(cells, placed{center, c})
				return
			}
			for _, k := range o.Objects {
				walk(k, pos)
			}
		}
	}
	walk(tbl, fyne.Position{})

	slices.SortFunc(cells, func(a, b placed) int {
		if ya, yb := math.Round(float64(a.pos.Y)), math.Round(float64(b.pos.Y)); ya != yb {
			return cmp.Compare(ya, yb)
		}
		return cmp.Compare(a.pos.X, b.pos.X)
	})
	var lines [][]seenCell
	lastY := math.Inf(-1)
	for _, c := range cells {
		if y := math.Round(float64(c.pos.Y)); y != lastY {
			lines, lastY = append(lines, nil), y
		}
		lines[len(lines)-1] = append(lines[len(lines)-1], c.cell)
	}
	return lines
}

// readCell reads a cell made by newCell, placed at pos.
func readCell(c *fyne.Container, pos fyne.Position) (seenCell, bool) {
	if len(c.Objects) != 2 {
		return seenCell{}, false
	}
	box, ok1 := c.Objects[0].(*fyne.Container)
	label, ok2 := c.Objects[1].(*widget.Label)
	if !ok1 || !ok2 || len(box.Objects) != 1 {
		return seenCell{}, false
	}
	swatch, ok := box.Objects[0].(*canvas.Rectangle)
	if !ok {
		return seenCell{}, false
	}
	seen := seenCell{text: label.Text, x: pos.X + label.Position().X}
	if box.Visible() {
		seen.swatch = swatch.FillColor
	}
	return seen, true
}
