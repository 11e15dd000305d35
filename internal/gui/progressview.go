package gui

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/progress"
)

// redrawEvery is how often ProgressView redraws at most: often enough to
// look alive, rarely enough that an engine reporting every MiB does not
// keep the UI goroutine busy.
const redrawEvery = 100 * time.Millisecond

// ProgressView shows an engine's progress: a bar by bytes, rate, ETA, the VM and file at work, a log of per-VM results and warnings.
type ProgressView struct {
	bar          *widget.ProgressBar
	stage, speed *widget.Label
	list         *widget.List
	content      fyne.CanvasObject
	throttle     *progress.Throttled

	// mu guards what Log and Fraction read: tests and the finish page
	// call them from goroutines of their own. The widgets themselves are
	// changed only inside onUI (fyne.Do).
	mu       sync.Mutex
	lines    []string
	fraction float64
}

// NewProgressView makes an empty view: the bar at 0 and an empty log.
func NewProgressView() *ProgressView {
	v := &ProgressView{
		bar:   widget.NewProgressBar(),
		stage: widget.NewLabel("Preparing…"),
		speed: widget.NewLabel(""),
	}
	v.stage.Truncation = fyne.TextTruncateEllipsis
	v.list = widget.NewList(
		func() int { v.mu.Lock(); defer v.mu.Unlock(); return len(v.lines) },
		func() fyne.CanvasObject { return widget.NewLabel("") },
		func(id widget.ListItemID, o fyne.CanvasObject) {
			v.mu.Lock()
			defer v.mu.Unlock()
			if id < len(v.lines) {
				o.(*widget.Label).SetText(v.lines[id])
			}
		})
	v.content = container.NewBorder(container.NewVBox(v.bar, v.stage, v.speed), nil, nil, nil, v.list)
	// The engines put progress.Async in front of their reporter, so
	// the throttle (and onUI behind it) never holds them up.
	v.throttle = progress.Throttle(progress.Func(v.show), redrawEvery)
	return v
}

// Content is the view to put in a page.
func (v *ProgressView) Content() fyne.CanvasObject { return v.content }

// Reporter is what the engine reports to: safe from any goroutine, never blocks the caller (progress.Throttle + onUI inside).
func (v *ProgressView) Reporter() progress.Reporter { return v.throttle }

// Close flushes what the throttle holds; call when the engine has returned.
func (v *ProgressView) Close() { v.throttle.Close() }

// Log returns the per-VM lines shown so far (for tests and the finish page).
func (v *ProgressView) Log() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.lines...)
}

// Fraction is the bar's value (0..1).
func (v *ProgressView) Fraction() float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fraction
}

// show draws one event; the throttle calls it one event at a time.
func (v *ProgressView) show(e progress.Event) {
	line := logLine(e)
	onUI(func() {
		v.mu.Lock()
		// Done may pass the estimated Total slightly: the bar never goes
		// back, and is full once the engine says it is done.
		v.fraction = max(v.fraction, e.Fraction())
		if e.Stage == progress.Done {
			v.fraction = 1
		}
		fraction := v.fraction
		if line != "" {
			v.lines = append(v.lines, line)
		}
		n := len(v.lines)
		v.mu.Unlock()

		v.bar.SetValue(fraction)
		v.stage.SetText(stageText(e))
		v.speed.SetText(speedText(e))
		if line != "" {
			v.list.Refresh()
			v.list.ScrollTo(n - 1)
		}
	})
}

// logLine is the log's line for a per-VM event or a warning, else "".
func logLine(e progress.Event) string {
	switch e.Kind {
	case progress.VMDone:
		return e.VM + ": done"
	case progress.VMFailed:
		return fmt.Sprintf("%s: failed: %v", e.VM, e.Err)
	case progress.Warning:
		if e.VM == "" {
			return "Warning: " + e.Message
		}
		return e.VM + ": warning: " + e.Message
	}
	return ""
}

// stageText says what the engine is at: the stage, the VM and its file.
func stageText(e progress.Event) string {
	stage := string(e.Stage)
	if stage == "" {
		stage = string(progress.Preparing)
	}
	s := strings.ToUpper(stage[:1]) + stage[1:]
	if e.Stage == progress.Done {
		return s
	}
	if e.VM != "" {
		s += " " + e.VM
	}
	if e.File != "" {
		s += ": " + e.File
	}
	return s + "…"
}

// speedText is the bytes done of the total, the rate and the time left.
func speedText(e progress.Event) string {
	if e.Total <= 0 {
		return ""
	}
	s := fmt.Sprintf("%s of %s", progress.FormatSize(e.Done), progress.FormatSize(e.Total))
	if r := e.Rate(); r > 0 {
		s += fmt.Sprintf(", %s/s", progress.FormatSize(int64(r)))
	}
	if eta := e.ETA(); eta > 0 && e.Stage != progress.Done {
		s += ", " + cli.FormatDuration(eta) + " left"
	}
	return s
}
