package gui

import (
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
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

// wait fails the test unless ch yields within a generous deadline: the
// event is expected at once, but the machine may be busy.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
