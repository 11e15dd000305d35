package gui

import "fyne.io/fyne/v2"

// onUI and onUIWait hand work from a goroutine to the UI goroutine:
// fyne.Do and fyne.DoAndWait. Every change to a widget or to a wizard's
// state from Enter, a progress reporter or a listing goes through them.
// The tests replace them with a queue that the test goroutine runs (see
// helpers_test.go): Fyne's test driver runs fyne.Do on the calling
// goroutine, so that work would race with the test's own taps.
var (
	onUI     = fyne.Do
	onUIWait = fyne.DoAndWait
)
