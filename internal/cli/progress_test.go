package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/progress"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                 { return c.t }
func (c *fakeClock) set(d time.Duration) *fakeClock { c.t = time.Unix(1e9, 0).Add(d); return c }

const mib = 1 << 20

// step is one event and the clock reading when it arrives.
type step struct {
	at time.Duration
	e  progress.Event
}

// A backup as the engine reports it, used by every printer's test.
var run = []step{
	{0, progress.Event{Stage: progress.Preparing}},
	{10 * time.Millisecond, progress.Event{Stage: progress.Writing, VM: "work", File: "vm3/private.img", Total: 100 * mib}},
	{50 * time.Millisecond, progress.Event{Stage: progress.Writing, VM: "work", File: "vm3/private.img", Done: 10 * mib, Total: 100 * mib, Elapsed: time.Second}},
	{110 * time.Millisecond, progress.Event{Stage: progress.Writing, VM: "work", File: "vm3/private.img", Done: 25 * mib, Total: 100 * mib, Elapsed: 5 * time.Second}},
	{300 * time.Millisecond, progress.Event{Stage: progress.Writing, VM: "personal", File: "vm4/private.img", Done: 50 * mib, Total: 100 * mib, Elapsed: 10 * time.Second}},
	{700 * time.Millisecond, progress.Event{Stage: progress.Writing, VM: "personal", File: "vm4/private.img", Done: 60 * mib, Total: 100 * mib, Elapsed: 12 * time.Second}},
	{5 * time.Second, progress.Event{Stage: progress.Writing, VM: "dom0", File: "dom0-home/user", Done: 90*mib + mib/2, Total: 100 * mib, Elapsed: 18 * time.Second}},
	{5010 * time.Millisecond, progress.Event{Stage: progress.Finishing, Done: 100 * mib, Total: 100 * mib, Elapsed: 20 * time.Second}},
	{5020 * time.Millisecond, progress.Event{Stage: progress.Done, Done: 100 * mib, Total: 100 * mib, Elapsed: 20 * time.Second}},
	{5030 * time.Millisecond, progress.Event{Stage: progress.Done, Done: 100 * mib, Total: 100 * mib, Elapsed: 20 * time.Second}},
}

// play feeds the events and returns what each one printed.
func play(r progress.Reporter, clock *fakeClock, out *bytes.Buffer, steps []step, before func(i int)) []string {
	var got []string
	for i, s := range steps {
		if before != nil {
			before(i)
		}
		clock.set(s.at)
		n := out.Len()
		r.Report(s.e)
		got = append(got, out.String()[n:])
	}
	return got
}

func checkOutputs(t *testing.T, got, want []string) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("event %d:\n got %q\nwant %q", i, g, w)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	clock := new(fakeClock)
	width := 80
	b := NewProgressBar(&out, func() int { return width })
	b.t.now = clock.now
	got := play(b, clock, &out, run, func(i int) {
		width = map[int]int{4: 40, 5: 0}[i] // 0: unknown, 80 columns
		if width == 0 {
			width = 80
		}
	})
	const el = "\x1b[K"
	checkOutputs(t, got, []string{
		"\rpreparing  0B" + el,
		"\rwriting [------------------------------]    0.0%  0B/100MiB  vm: work" + el,
		"", // 40 ms after the last redraw
		"\rwriting [####---------------]   25.0%  25MiB/100MiB  5MiB/s  ETA 0:15  vm: work" + el,
		// 40 columns: no room for the bar; cut to 39.
		"\rwriting   50.0%  50MiB/100MiB  5MiB/s" + el,
		"\rwriting [#########------]   60.0%  60MiB/100MiB  5MiB/s  ETA 0:08  vm: personal" + el,
		"\rwriting [#############--]   90.5%  90.5MiB/100MiB  5.0MiB/s  ETA 0:02  vm: dom0" + el,
		"\rfinishing [##############################]  100.0%  100MiB/100MiB  5MiB/s" + el,
		"\rdone [##############################]  100.0%  100MiB/100MiB  5MiB/s  in 0:20" + el + "\n",
		"",
	})
	for i, line := range strings.Split(out.String(), "\r") {
		if n := len(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), el)); n >= 80 {
			t.Errorf("line %d is %d columns: %q", i, n, line)
		}
	}
}

func TestProgressBarClear(t *testing.T) {
	var out bytes.Buffer
	clock := new(fakeClock)
	b := NewProgressBar(&out, func() int { return 60 })
	b.t.now = clock.now
	b.Clear() // nothing shown yet: nothing to erase
	b.Report(progress.Event{Stage: progress.Writing, Done: 1, Total: 2})
	b.Clear()
	b.Report(progress.Event{Stage: progress.Writing, Done: 1, Total: 2}) // same instant, drawn again
	b.Report(progress.Event{Stage: progress.Done, Done: 2, Total: 2})
	b.Clear() // the finished line stays
	want := "\rwriting [###############---------------]   50.0%  1B/2B\x1b[K" +
		"\r\x1b[K" +
		"\rwriting [###############---------------]   50.0%  1B/2B\x1b[K" +
		"\rdone [##############################]  100.0%  2B/2B\x1b[K\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}

func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	clock := new(fakeClock)
	l := NewProgressLines(&out, 5*time.Second)
	l.t.now = clock.now
	got := play(l, clock, &out, run, nil)
	checkOutputs(t, got, []string{
		"progress: preparing 0B\n",
		"progress: writing 0.0% 0B/100MiB vm: work\n",
		"", "", "", "",
		"", // 4.99 s after the last line
		"progress: finishing 100.0% 100MiB/100MiB 5MiB/s\n",
		"progress: done 100.0% 100MiB/100MiB 5MiB/s in 0:20\n",
		"",
	})
	// Then one line every interval.
	out.Reset()
	clock.set(10 * time.Second)
	l.Report(progress.Event{Stage: progress.Reading, VM: "work", Done: 1 << 30, Total: 3 << 30, Elapsed: 10 * time.Second})
	clock.set(14 * time.Second)
	l.Report(progress.Event{Stage: progress.Reading, VM: "work", Done: 1 << 30, Total: 3 << 30, Elapsed: 14 * time.Second})
	clock.set(15 * time.Second)
	l.Report(progress.Event{Stage: progress.Reading, VM: "work", Done: 1288490189, Total: 2899102925, Elapsed: 15 * time.Second})
	clock.set(21 * time.Second)
	l.Report(progress.Event{Stage: progress.Reading, VM: "work", Done: 3 << 30, Total: 3 << 30, Elapsed: 3600 * time.Second})
	want := "progress: reading 33.3% 1GiB/3GiB 102.4MiB/s ETA 0:20 vm: work\n" +
		"progress: reading 44.4% 1.2GiB/2.7GiB 81.9MiB/s ETA 0:19 vm: work\n" +
		"progress: reading 100.0% 3GiB/3GiB 873.8KiB/s vm: work\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestProgressJSON(t *testing.T) {
	var out bytes.Buffer
	clock := new(fakeClock)
	j := NewProgressJSON(&out)
	j.t.now = clock.now
	got := play(j, clock, &out, run, nil)
	checkOutputs(t, got, []string{
		`{"stage":"preparing","vm":"","file":"","done":0,"total":0,"elapsed_ms":0,"rate":0,"eta_ms":0}` + "\n",
		`{"stage":"writing","vm":"work","file":"vm3/private.img","done":0,"total":104857600,"elapsed_ms":0,"rate":0,"eta_ms":0}` + "\n",
		"", "", "", // within 500 ms of the last line
		`{"stage":"writing","vm":"personal","file":"vm4/private.img","done":62914560,"total":104857600,"elapsed_ms":12000,"rate":5242880,"eta_ms":8000}` + "\n",
		`{"stage":"writing","vm":"dom0","file":"dom0-home/user","done":94896128,"total":104857600,"elapsed_ms":18000,"rate":5272007,"eta_ms":1889}` + "\n",
		`{"stage":"finishing","vm":"","file":"","done":104857600,"total":104857600,"elapsed_ms":20000,"rate":5242880,"eta_ms":0}` + "\n",
		`{"stage":"done","vm":"","file":"","done":104857600,"total":104857600,"elapsed_ms":20000,"rate":5242880,"eta_ms":0}` + "\n",
		"",
	})
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0:00", 499 * time.Millisecond: "0:00", 500 * time.Millisecond: "0:01", 19 * time.Second: "0:19",
		61 * time.Second: "1:01", time.Hour - time.Second: "59:59", time.Hour: "1:00:00", 100*time.Hour + 62*time.Second: "100:01:02",
		-time.Second: "0:00",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestChooseProgress(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for mode, want := range map[string]any{
		"auto": &ProgressLines{}, "lines": &ProgressLines{}, "bar": &ProgressBar{}, "json": &ProgressJSON{}, "none": progress.Discard,
	} {
		r, err := ChooseProgress(mode, f)
		if err != nil {
			t.Errorf("%s: %v", mode, err)
			continue
		}
		if gotT, wantT := typeName(r), typeName(want); gotT != wantT {
			t.Errorf("%s: %s, want %s", mode, gotT, wantT)
		}
	}
	// A file is no terminal: the bar falls back to 80 columns.
	r, _ := ChooseProgress("bar", f)
	if w := r.(*ProgressBar).width(); w != 80 {
		t.Errorf("width of a file: %d", w)
	}
	if _, err := ChooseProgress("fancy", f); !IsUsage(err) || !strings.Contains(err.Error(), `unknown progress mode "fancy" (valid: auto, bar, lines, json, none)`) {
		t.Errorf("bad mode: %v", err)
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// The printers show updates only: the per-VM events and warnings that an
// engine reports between them change nothing in their output.
func TestProgressIgnoresVMEvents(t *testing.T) {
	var mixed []step
	for i, s := range run {
		mixed = append(mixed, s)
		kind := []progress.Kind{progress.VMStarted, progress.VMDone, progress.VMFailed, progress.Warning}[i%4]
		mixed = append(mixed, step{s.at, progress.Event{Kind: kind, Stage: s.e.Stage, VM: "work", Done: s.e.Done, Err: fmt.Errorf("x"), Message: "x"}})
	}
	for _, mk := range []func(out *bytes.Buffer, clock *fakeClock) progress.Reporter{
		func(out *bytes.Buffer, clock *fakeClock) progress.Reporter {
			b := NewProgressBar(out, nil)
			b.t.now = clock.now
			return b
		},
		func(out *bytes.Buffer, clock *fakeClock) progress.Reporter {
			l := NewProgressLines(out, LinesInterval)
			l.t.now = clock.now
			return l
		},
		func(out *bytes.Buffer, clock *fakeClock) progress.Reporter {
			j := NewProgressJSON(out)
			j.t.now = clock.now
			return j
		},
	} {
		var plain, withVMs bytes.Buffer
		clock := new(fakeClock)
		play(mk(&plain, clock), clock, &plain, run, nil)
		play(mk(&withVMs, clock), clock, &withVMs, mixed, nil)
		if plain.String() != withVMs.String() {
			t.Errorf("%T: with per-VM events\n%q\nwithout\n%q", mk(&plain, clock), withVMs.String(), plain.String())
		}
	}
}
