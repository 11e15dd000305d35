package gui

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// Page is one step of a Wizard. A page is ready (Next enabled) unless it
// says otherwise: a page that needs input first calls SetReady(false)
// when it is built, then SetReady(true) once the input is complete.
type Page struct {
	// Title heads the page.
	Title string
	// Content is the page's body. A page that can grow long scrolls it
	// itself (container.NewVScroll).
	Content fyne.CanvasObject
	// Enter, if set, runs each time the page is shown, on a goroutine of
	// its own, so that slow work (opening an archive, planning a backup,
	// the backup itself) leaves the window responsive. ctx is cancelled
	// when the user leaves the page with Back or cancels the wizard, and
	// what Enter returns after that is ignored. While Enter runs the page
	// shows an activity indicator and Next is disabled; an error is shown
	// on the page and keeps Next disabled until the page is entered
	// again. Enter changes widgets only inside onUI (fyne.Do).
	Enter func(ctx context.Context) error
	// NoBack disables Back on the page: for a page whose Enter does what
	// cannot be undone, such as writing the backup, so that going back
	// and on again would not do it twice.
	NoBack bool

	notReady bool
	wiz      *Wizard
}

// SetReady says whether the user may go on from the page (Next, or Finish
// on the last page). Call it on the UI goroutine: in a widget's callback,
// or inside onUI (fyne.Do) from Enter.
func (p *Page) SetReady(ok bool) {
	p.notReady = !ok
	if p.wiz != nil && p.wiz.Current() == p {
		p.wiz.update()
	}
}

// Ready reports what SetReady last said (true if it was never called).
func (p *Page) Ready() bool { return !p.notReady }

// Wizard is a widget that leads through a sequence of pages, with a title
// and a Back, Next (Finish on the last page) and Cancel bar. Every method
// is for the UI goroutine. ShowWizard puts one in a window of its own.
type Wizard struct {
	widget.BaseWidget

	// OnFinish runs when the user taps Finish; OnCancel when the wizard
	// is cancelled (Cancel, or its window closed). Either is optional.
	OnFinish, OnCancel func()

	pages   []*Page
	cur     int
	cancel  context.CancelFunc // cancels the current page's Enter
	running bool               // the current page's Enter has not returned
	err     error              // what it returned
	done    bool               // finished or cancelled

	title, step       *widget.Label
	body, page, whole *fyne.Container
	activity          *widget.Activity
	errText           *widget.Label
	back, next, abort *widget.Button
	closeWindow       func() // set by ShowWizard

	// testHookSettled, when set (by tests), runs once the current page's
	// Enter has returned and the page shows its result.
	testHookSettled func()
}

// NewWizard makes a wizard over pages (at least one) and enters the first.
func NewWizard(pages ...*Page) *Wizard {
	if len(pages) == 0 {
		panic("gui.NewWizard: no pages")
	}
	w := &Wizard{pages: pages}
	for _, p := range pages {
		p.wiz = w
	}
	w.title = widget.NewLabel("")
	w.title.TextStyle.Bold = true
	w.title.SizeName = theme.SizeNameSubHeadingText
	w.step = widget.NewLabel("")
	w.body = container.NewStack()
	w.activity = widget.NewActivity()
	w.errText = widget.NewLabel("")
	w.errText.Importance = widget.DangerImportance
	w.errText.Wrapping = fyne.TextWrapWord
	w.back = widget.NewButtonWithIcon("Back", theme.NavigateBackIcon(), w.Back)
	w.next = widget.NewButtonWithIcon("Next", theme.NavigateNextIcon(), w.Next)
	w.next.IconPlacement = widget.ButtonIconTrailingText
	w.next.Importance = widget.HighImportance
	w.abort = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), w.Cancel)

	// Title bar, the page over its status, buttons.
	top := container.NewVBox(container.NewBorder(nil, nil, nil, w.step, w.title), widget.NewSeparator())
	status := container.NewVBox(w.activity, w.errText)
	w.page = container.NewBorder(nil, status, nil, nil, w.body)
	buttons := container.NewVBox(widget.NewSeparator(),
		container.NewHBox(w.abort, layout.NewSpacer(), w.back, w.next))
	w.whole = container.NewBorder(top, buttons, nil, nil, container.NewPadded(w.page))

	w.ExtendBaseWidget(w)
	w.show(0)
	return w
}

// CreateRenderer draws the layout NewWizard made.
func (w *Wizard) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(w.whole)
}

// Current is the page shown.
func (w *Wizard) Current() *Page { return w.pages[w.cur] }

// Next goes to the next page, or finishes on the last one, if the current
// page lets the user go on.
func (w *Wizard) Next() {
	if w.done || !w.canGoOn() {
		return
	}
	if w.cur == len(w.pages)-1 {
		w.end()
		if w.OnFinish != nil {
			w.OnFinish()
		}
		w.close()
		return
	}
	w.show(w.cur + 1)
}

// Back returns to the previous page, cancelling the current page's Enter.
func (w *Wizard) Back() {
	if !w.canGoBack() {
		return
	}
	w.show(w.cur - 1)
}

// Cancel ends the wizard: it cancels the current page's Enter, calls
// OnCancel and closes the wizard's window.
func (w *Wizard) Cancel() {
	if w.done {
		return
	}
	w.end()
	if w.OnCancel != nil {
		w.OnCancel()
	}
	w.close()
}

func (w *Wizard) end() {
	w.done = true
	if w.cancel != nil {
		w.cancel()
	}
}

func (w *Wizard) close() {
	if w.closeWindow != nil {
		w.closeWindow()
	}
}

func (w *Wizard) canGoOn() bool { return !w.running && w.err == nil && w.Current().Ready() }

func (w *Wizard) canGoBack() bool { return !w.done && w.cur > 0 && !w.Current().NoBack }

// show enters page i: the previous page's Enter is cancelled, and this
// page's starts.
func (w *Wizard) show(i int) {
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	}
	w.cur, w.err, w.running = i, nil, false
	p := w.pages[i]
	w.title.SetText(p.Title)
	w.step.SetText(fmt.Sprintf("Step %d of %d", i+1, len(w.pages)))
	w.body.Objects = nil
	if p.Content != nil {
		w.body.Objects = []fyne.CanvasObject{p.Content}
	}
	w.body.Refresh()
	if p.Enter != nil {
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel, w.running = cancel, true
		go func() {
			err := p.Enter(ctx)
			onUI(func() {
				// Leaving the page or ending the wizard cancelled ctx:
				// then the result is no longer the page's to show.
				if ctx.Err() == nil {
					w.settle(err)
				}
			})
		}()
	}
	w.update()
}

// settle shows what the current page's Enter returned.
func (w *Wizard) settle(err error) {
	w.running, w.err = false, err
	w.update()
	if w.testHookSettled != nil {
		w.testHookSettled()
	}
}

// update makes the status and buttons agree with the state.
func (w *Wizard) update() {
	if w.running {
		w.activity.Show()
		w.activity.Start()
	} else {
		w.activity.Stop()
		w.activity.Hide()
	}
	if w.err != nil {
		w.errText.SetText(w.err.Error())
		w.errText.Show()
	} else {
		w.errText.Hide()
	}
	w.page.Refresh() // the status took or gave back room: lay the page out again
	enable(w.back, w.canGoBack())
	enable(w.next, !w.done && w.canGoOn())
	if w.cur == len(w.pages)-1 {
		w.next.SetText("Finish")
		w.next.SetIcon(theme.ConfirmIcon())
	} else {
		w.next.SetText("Next")
		w.next.SetIcon(theme.NavigateNextIcon())
	}
}

func enable(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

// ShowWizard opens wiz in a new window of a and returns it. Finishing or
// cancelling the wizard closes the window; closing the window cancels the
// wizard.
func ShowWizard(a fyne.App, title string, wiz *Wizard) fyne.Window {
	win := a.NewWindow(title)
	win.SetContent(wiz)
	// Sized before it is shown: resizing a shown window raced with GLFW's
	// first pointer event and crashed Fyne 2.7.1 (a nil window in
	// processMouseMoved) in about one start of three under Xvfb.
	win.Resize(fyne.NewSize(720, 560))
	wiz.closeWindow = win.Close
	win.SetCloseIntercept(wiz.Cancel)
	closeOnEscape(win, wiz.Cancel)
	win.Show()
	return win
}

// closeOnEscape makes Escape, when no widget takes it, do what the
// window's Cancel or Close button does.
func closeOnEscape(win fyne.Window, cancel func()) {
	win.Canvas().SetOnTypedKey(func(ev *fyne.KeyEvent) {
		if ev.Name == fyne.KeyEscape {
			cancel()
		}
	})
}
