package gui

import (
	"errors"
	"slices"
	"testing"

	"fyne.io/fyne/v2/test"

	"pedos.dev/backup/internal/progress"
)

// The view shows the bytes done on the bar, the VM and file at work, and
// logs each VM's result and every warning in order; Close delivers the
// update the throttle held back.
func TestProgressView(t *testing.T) {
	newApp(t)
	v := NewProgressView()
	w := test.NewWindow(v.Content())
	defer w.Close()
	r := v.Reporter()
	r.Report(progress.Event{Kind: progress.Update, Stage: progress.Writing, VM: "work", File: "vm3/private.img", Total: 400})
	r.Report(progress.Event{Kind: progress.VMStarted, Stage: progress.Writing, VM: "work", Total: 400})
	for done := int64(1); done <= 100; done++ {
		r.Report(progress.Event{Kind: progress.Update, Stage: progress.Writing, VM: "work", File: "vm3/private.img", Done: done, Total: 400})
	}
	r.Report(progress.Event{Kind: progress.VMDone, Stage: progress.Writing, VM: "work", Done: 100, Total: 400})
	r.Report(progress.Event{Kind: progress.Warning, Stage: progress.Writing, VM: "vault", Message: "odd"})
	r.Report(progress.Event{Kind: progress.VMFailed, Stage: progress.Writing, VM: "vault", Err: errors.New("device unplugged"), Done: 150, Total: 400})
	r.Report(progress.Event{Kind: progress.Update, Stage: progress.Writing, VM: "vault", File: "vm4/private.img", Done: 200, Total: 400})
	v.Close()
	drainUI()

	want := []string{"work: done", "vault: warning: odd", "vault: failed: device unplugged"}
	if got := v.Log(); !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
	if f := v.Fraction(); f != 0.5 || v.bar.Value != 0.5 {
		t.Errorf("fraction %v, bar %v, want 0.5", f, v.bar.Value)
	}
	if v.stage.Text != "Writing vault: vm4/private.img…" {
		t.Errorf("stage %q", v.stage.Text)
	}
	if v.list.Length() != 3 {
		t.Errorf("the log list shows %d lines", v.list.Length())
	}
}
