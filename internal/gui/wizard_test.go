package gui

import (
	"context"
	"errors"
	"slices"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

// Next stays disabled until the page is ready; Back returns to the
// previous page as it was left; Finish on the last page calls OnFinish
// and closes the window.
func TestWizardNextWaitsForReady(t *testing.T) {
	a := newApp(t)
	name := widget.NewEntry()
	first := &Page{Title: "Name", Content: name}
	first.SetReady(false)
	name.OnChanged = func(s string) { first.SetReady(s != "") }
	second := &Page{Title: "Confirm", Content: widget.NewLabel("Go ahead?")}

	wiz := NewWizard(first, second)
	finished := 0
	wiz.OnFinish = func() { finished++ }
	win := ShowWizard(a, "Test wizard", wiz)

	if wiz.Current() != first || wiz.title.Text != "Name" || wiz.step.Text != "Step 1 of 2" {
		t.Fatalf("shows %q, %q", wiz.title.Text, wiz.step.Text)
	}
	if !wiz.next.Disabled() || !wiz.back.Disabled() || wiz.next.Text != "Next" {
		t.Fatal("on a page that is not ready: Next or Back enabled")
	}
	test.Tap(wiz.next)
	if wiz.Current() != first {
		t.Fatal("Next went on from a page that is not ready")
	}
	test.Type(name, "alice")
	if wiz.next.Disabled() {
		t.Fatal("Next disabled on a ready page")
	}
	test.Tap(wiz.next)
	if wiz.Current() != second || wiz.title.Text != "Confirm" || wiz.next.Text != "Finish" || wiz.back.Disabled() {
		t.Fatalf("after Next: %q, next %q", wiz.title.Text, wiz.next.Text)
	}
	test.Tap(wiz.back)
	if wiz.Current() != first || name.Text != "alice" || wiz.next.Disabled() || wiz.next.Text != "Next" {
		t.Fatalf("after Back: %q, entry %q", wiz.title.Text, name.Text)
	}
	name.SetText("")
	if !wiz.next.Disabled() {
		t.Fatal("Next enabled after the page said it is not ready")
	}
	name.SetText("bob")
	test.Tap(wiz.next)
	test.Tap(wiz.next)
	if finished != 1 {
		t.Fatalf("OnFinish called %d times", finished)
	}
	if slices.Contains(a.Driver().AllWindows(), win) {
		t.Fatal("the window is open after Finish")
	}
}

// A page's Enter runs off the UI goroutine: while it runs the page shows
// activity and Next is disabled; when it returns Next follows the page's
// readiness, and an error is shown and keeps Next disabled until the page
// is entered again.
func TestWizardEnter(t *testing.T) {
	a := newApp(t)
	release := make(chan error)
	entered := make(chan struct{}, 1)
	scan := &Page{Title: "Scan", Content: widget.NewLabel("Looking for backups…"),
		Enter: func(ctx context.Context) error {
			entered <- struct{}{}
			select {
			case err := <-release:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	start := &Page{Title: "Start"}
	wiz := NewWizard(start, scan, &Page{Title: "Done"})
	settled := make(chan struct{}, 1)
	wiz.testHookSettled = func() { settled <- struct{}{} }
	ShowWizard(a, "Test wizard", wiz)

	test.Tap(wiz.next)
	wait(t, entered, "Enter")
	if !wiz.next.Disabled() || !wiz.activity.Visible() || wiz.errText.Visible() {
		t.Fatal("while Enter runs: Next enabled, or no activity, or an error shown")
	}
	release <- errors.New("no backup in /media/usb")
	wait(t, settled, "the page to settle")
	if !wiz.next.Disabled() || wiz.activity.Visible() || !wiz.errText.Visible() || wiz.errText.Text != "no backup in /media/usb" {
		t.Fatalf("after an error: next disabled %v, activity %v, error %v %q",
			wiz.next.Disabled(), wiz.activity.Visible(), wiz.errText.Visible(), wiz.errText.Text)
	}
	if got, need := wiz.errText.Size().Height, wiz.errText.MinSize().Height; got < need {
		t.Errorf("the error has %v of the %v high it needs", got, need)
	}
	drv := a.Driver()
	errBottom := drv.AbsolutePositionForObject(wiz.errText).Y + wiz.errText.Size().Height
	if buttonsTop := drv.AbsolutePositionForObject(wiz.next).Y; errBottom > buttonsTop {
		t.Errorf("the error (down to %v) runs into the buttons (from %v)", errBottom, buttonsTop)
	}

	test.Tap(wiz.back)
	if wiz.errText.Visible() || wiz.next.Disabled() {
		t.Fatal("the error stayed after Back")
	}
	test.Tap(wiz.next)
	wait(t, entered, "Enter again")
	release <- nil
	wait(t, settled, "the page to settle")
	if wiz.next.Disabled() || wiz.activity.Visible() || wiz.errText.Visible() {
		t.Fatal("after Enter succeeded: Next disabled, or activity or an error shown")
	}

	// Leaving a page cancels its Enter, and what it returns then is ignored.
	test.Tap(wiz.back)
	test.Tap(wiz.next)
	wait(t, entered, "Enter a third time")
	test.Tap(wiz.back)
	if wiz.Current() != start || wiz.next.Disabled() {
		t.Fatal("Back while Enter runs")
	}
}

// A NoBack page, one that did what cannot be undone, cannot be left
// backwards.
func TestWizardNoBack(t *testing.T) {
	a := newApp(t)
	run := &Page{Title: "Writing the backup", NoBack: true}
	wiz := NewWizard(&Page{Title: "Confirm"}, run)
	ShowWizard(a, "Test wizard", wiz)
	test.Tap(wiz.next)
	if wiz.Current() != run || !wiz.back.Disabled() {
		t.Fatal("Back enabled on a NoBack page")
	}
	wiz.Back()
	if wiz.Current() != run {
		t.Fatal("Back left a NoBack page")
	}
}

// Cancel cancels the running Enter's context, calls OnCancel and closes
// the window; so does Escape.
func TestWizardCancel(t *testing.T) {
	for _, how := range []string{"button", "escape"} {
		t.Run(how, func(t *testing.T) {
			a := newApp(t)
			ctxs := make(chan context.Context, 1)
			page := &Page{Title: "Working", Enter: func(ctx context.Context) error {
				ctxs <- ctx
				<-ctx.Done()
				return ctx.Err()
			}}
			wiz := NewWizard(page, &Page{Title: "Done"})
			cancelled := 0
			wiz.OnCancel = func() { cancelled++ }
			win := ShowWizard(a, "Test wizard", wiz)
			ctx := wait(t, ctxs, "Enter")
			if how == "button" {
				test.Tap(wiz.abort)
			} else {
				win.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyEscape})
			}
			wait(t, ctx.Done(), "the page's context to be cancelled")
			if cancelled != 1 {
				t.Fatalf("OnCancel called %d times", cancelled)
			}
			if slices.Contains(a.Driver().AllWindows(), win) {
				t.Fatal("the window is open after Cancel")
			}
			wiz.Cancel() // again: nothing more
			if cancelled != 1 {
				t.Fatalf("OnCancel called %d times", cancelled)
			}
		})
	}
}
