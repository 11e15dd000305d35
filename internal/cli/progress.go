package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"pedos.dev/backup/internal/progress"
)

// ProgressModes are the modes ChooseProgress accepts, for a --progress
// option's help.
var ProgressModes = []string{"auto", "bar", "lines", "json", "none"}

// Intervals between outputs; stage changes and the end are shown at once.
const (
	BarInterval   = 100 * time.Millisecond
	LinesInterval = 5 * time.Second
	JSONInterval  = 500 * time.Millisecond
)

// ChooseProgress returns the progress printer for mode: "bar" (a redrawn
// line, for terminals), "lines" (a line every few seconds, for logs),
// "json" (a JSON object per line, for programs), "none", or "auto": bar
// when w is a terminal that can redraw a line, lines otherwise.
func ChooseProgress(mode string, w *os.File) (progress.Reporter, error) {
	switch mode {
	case "auto":
		if term.IsTerminal(int(w.Fd())) && os.Getenv("TERM") != "dumb" {
			return NewProgressBar(w, terminalWidth(w)), nil
		}
		return NewProgressLines(w, LinesInterval), nil
	case "bar":
		return NewProgressBar(w, terminalWidth(w)), nil
	case "lines":
		return NewProgressLines(w, LinesInterval), nil
	case "json":
		return NewProgressJSON(w), nil
	case "none":
		return progress.Discard, nil
	}
	return nil, Usagef("unknown progress mode %q (valid: %s)", mode, strings.Join(ProgressModes, ", "))
}

// terminalWidth asks the terminal each time, so a resized window is
// followed; 80 columns when w is not a terminal.
func terminalWidth(w *os.File) func() int {
	fd := int(w.Fd())
	return func() int {
		if cols, _, err := term.GetSize(fd); err == nil && cols > 0 {
			return cols
		}
		return 80
	}
}

// throttle decides which events are shown: the first, every stage change
// (entering Done included) and then at most one per interval. The
// printers show updates only: a VM's outcome and the warnings are in the
// tools' own output.
type throttle struct {
	now     func() time.Time
	every   time.Duration
	last    time.Time
	stage   progress.Stage
	started bool
}

func (t *throttle) due(e progress.Event) bool {
	if e.Kind != progress.Update {
		return false
	}
	now := t.now()
	switch {
	case !t.started || e.Stage != t.stage:
	case e.Stage == progress.Done || now.Sub(t.last) < t.every:
		return false
	}
	t.started, t.stage, t.last = true, e.Stage, now
	return true
}

// fields are the parts of a progress line; empty ones are left out.
func fields(e progress.Event, percentWidth int) []string {
	var f []string
	if e.Total > 0 {
		f = append(f, fmt.Sprintf("%*.1f%%", percentWidth, e.Fraction()*100),
			FormatSize(e.Done)+"/"+FormatSize(e.Total))
	} else {
		f = append(f, FormatSize(e.Done))
	}
	if r := e.Rate(); r >= 1 {
		f = append(f, FormatSize(int64(r))+"/s")
	}
	if e.Stage == progress.Done {
		if e.Elapsed > 0 {
			f = append(f, "in "+FormatDuration(e.Elapsed))
		}
	} else if eta := e.ETA(); eta > 0 {
		f = append(f, "ETA "+FormatDuration(eta))
	}
	if e.VM != "" {
		f = append(f, "vm: "+e.VM)
	}
	return f
}

// FormatDuration writes d rounded to the second as m:ss, or h:mm:ss from
// an hour on.
func FormatDuration(d time.Duration) string {
	s := int64(math.Round(d.Seconds()))
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// ProgressBar shows progress on a terminal as one line redrawn in place:
// stage, bar, percentage, bytes done and total, rate, ETA and VM.
type ProgressBar struct {
	mu    sync.Mutex
	w     io.Writer
	width func() int
	t     throttle
	open  bool // a line is shown and not yet ended
}

// NewProgressBar returns a bar that writes to w, fitting the line into
// width() columns (asked at each redraw). It redraws at most every
// BarInterval, and at once on a stage change; at Done it ends the line.
func NewProgressBar(w io.Writer, width func() int) *ProgressBar {
	return &ProgressBar{w: w, width: width, t: throttle{now: time.Now, every: BarInterval}}
}

// Report implements progress.Reporter.
func (b *ProgressBar) Report(e progress.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.t.due(e) {
		return
	}
	// \r and "erase to end of line" (EL): a shorter line leaves no tail.
	line := "\r" + b.render(e) + "\x1b[K"
	if e.Stage == progress.Done {
		line += "\n"
	}
	io.WriteString(b.w, line)
	b.open = e.Stage != progress.Done
}

// Clear erases the bar's line, so that a message can be printed; the next
// event draws it again.
func (b *ProgressBar) Clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		io.WriteString(b.w, "\r\x1b[K")
		b.open = false
		b.t.started = false
	}
}

const maxBar = 30

func (b *ProgressBar) render(e progress.Event) string {
	width := 80
	if b.width != nil {
		if w := b.width(); w > 0 {
			width = w
		}
	}
	// Writing into the last column makes some terminals wrap.
	width--
	text := strings.Join(fields(e, 5), "  ")
	line := string(e.Stage) + "  " + text
	if e.Total > 0 {
		if n := min(maxBar, width-utf8.RuneCountInString(line)-3); n >= 10 {
			fill := int(e.Fraction() * float64(n))
			line = fmt.Sprintf("%s [%s%s]  %s", e.Stage, strings.Repeat("#", fill), strings.Repeat("-", n-fill), text)
		}
	}
	if utf8.RuneCountInString(line) > width {
		line = strings.TrimRight(string([]rune(line)[:max(width, 0)]), " ")
	}
	return line
}

// ProgressLines shows progress as plain lines, for logs and pipes:
//
//	progress: writing 45.1% 1.2GiB/2.7GiB 85MiB/s ETA 0:19 vm: work
type ProgressLines struct {
	mu sync.Mutex
	w  io.Writer
	t  throttle
}

// NewProgressLines returns a printer that writes a line to w at most every
// interval, and at once on a stage change and at Done.
func NewProgressLines(w io.Writer, every time.Duration) *ProgressLines {
	return &ProgressLines{w: w, t: throttle{now: time.Now, every: every}}
}

// Report implements progress.Reporter.
func (l *ProgressLines) Report(e progress.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t.due(e) {
		fmt.Fprintf(l.w, "progress: %s %s\n", e.Stage, strings.Join(fields(e, 0), " "))
	}
}

// ProgressJSON writes one JSON object per line, for programs:
//
//	{"stage":"writing","vm":"work","file":"vm3/private.img","done":123,"total":456,"elapsed_ms":2000,"rate":62,"eta_ms":5414}
//
// done and total are bytes, rate is bytes per second (the average so far),
// eta_ms is 0 when unknown. The keys are always present.
type ProgressJSON struct {
	mu  sync.Mutex
	enc *json.Encoder
	t   throttle
}

// NewProgressJSON returns a printer that writes to w at most every
// JSONInterval, and at once on a stage change and at Done.
func NewProgressJSON(w io.Writer) *ProgressJSON {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &ProgressJSON{enc: enc, t: throttle{now: time.Now, every: JSONInterval}}
}

type jsonEvent struct {
	Stage     progress.Stage `json:"stage"`
	VM        string         `json:"vm"`
	File      string         `json:"file"`
	Done      int64          `json:"done"`
	Total     int64          `json:"total"`
	ElapsedMS int64          `json:"elapsed_ms"`
	Rate      int64          `json:"rate"`
	ETAMS     int64          `json:"eta_ms"`
}

// Report implements progress.Reporter.
func (j *ProgressJSON) Report(e progress.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.t.due(e) {
		return
	}
	j.enc.Encode(jsonEvent{
		Stage: e.Stage, VM: e.VM, File: e.File, Done: e.Done, Total: e.Total,
		ElapsedMS: e.Elapsed.Milliseconds(), Rate: int64(math.Round(e.Rate())), ETAMS: e.ETA().Milliseconds(),
	})
}
