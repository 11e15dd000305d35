package progress

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder records the events it gets.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Report(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) got() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// vmEvents lists the events other than updates, as "kind vm".
func vmEvents(events []Event) []string {
	var out []string
	for _, e := range events {
		if e.Kind != Update {
			out = append(out, e.Kind.String()+" "+e.VM)
		}
	}
	return out
}

// A consumer that does not take its events does not hold up Report: the
// updates it missed are coalesced, every per-VM event and stage reaches
// it, in order, and the last update is the latest.
func TestAsyncNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	first := make(chan struct{})
	var once sync.Once
	rec := &recorder{}
	a := Async(Func(func(e Event) {
		once.Do(func() { close(first) })
		<-release // a consumer stuck until the engine is done
		rec.Report(e)
	}))
	a.Report(Event{Stage: Preparing})
	<-first // the consumer holds the first event and waits
	var want []string
	for i := range 10000 {
		a.Report(Event{Stage: Writing, Done: int64(i)})
		if i%1000 == 0 {
			vm := string(rune('a' + i/1000))
			a.Report(Event{Kind: VMStarted, Stage: Writing, VM: vm})
			a.Report(Event{Kind: VMDone, Stage: Writing, VM: vm})
			want = append(want, "vm-started "+vm, "vm-done "+vm)
		}
	}
	a.Report(Event{Kind: VMFailed, Stage: Writing, VM: "z", Err: errors.New("broken")})
	a.Report(Event{Kind: Warning, Stage: Writing, Message: "careful"})
	a.Report(Event{Stage: Done, Done: 10000})
	want = append(want, "vm-failed z", "warning ")
	close(release)
	a.Close()
	got := rec.got()
	if v := vmEvents(got); !slices.Equal(v, want) {
		t.Errorf("per-VM events %q, want %q", v, want)
	}
	if len(got) > 100 {
		t.Errorf("%d events delivered: the updates were not coalesced", len(got))
	}
	var stages []Stage
	for _, e := range got {
		if e.Kind == Update && (len(stages) == 0 || stages[len(stages)-1] != e.Stage) {
			stages = append(stages, e.Stage)
		}
	}
	if !slices.Equal(stages, []Stage{Preparing, Writing, Done}) {
		t.Errorf("stages %v", stages)
	}
	if last := got[len(got)-1]; last.Stage != Done || last.Done != 10000 {
		t.Errorf("last event %+v", last)
	}
	for _, e := range got {
		if e.Kind == VMFailed && e.Err == nil {
			t.Error("a failure without its reason")
		}
	}
	a.Report(Event{Stage: Done}) // after Close: dropped, no panic
	a.Close()
}

func TestAsyncDiscard(t *testing.T) {
	for _, r := range []Reporter{nil, Discard} {
		a := Async(r)
		a.Report(Event{Stage: Writing})
		a.Close()
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestThrottle(t *testing.T) {
	rec := &recorder{}
	clock := &fakeClock{t: time.Unix(1000, 0)}
	th := Throttle(rec, time.Hour) // the timer never fires here
	th.now = clock.now
	th.Report(Event{Stage: Writing, Done: 1})                       // first: passed
	th.Report(Event{Stage: Writing, Done: 2})                       // held
	th.Report(Event{Stage: Writing, Done: 3})                       // held, replaces 2
	th.Report(Event{Kind: VMDone, Stage: Writing, VM: "a"})         // passes 3, then itself
	th.Report(Event{Stage: Writing, Done: 4})                       // held (3 was just passed)
	th.Report(Event{Stage: Verifying, Done: 5})                     // a stage change: passed
	clock.t = clock.t.Add(time.Hour)                                //
	th.Report(Event{Stage: Verifying, Done: 6})                     // an hour later: passed
	th.Report(Event{Stage: Verifying, Done: 7})                     // held
	th.Report(Event{Kind: Warning, Stage: Verifying, Message: "w"}) // passes 7, then itself
	th.Report(Event{Stage: Verifying, Done: 8})                     // held ...
	th.Close()                                                      // ... until Close
	var got []string
	for _, e := range rec.got() {
		if e.Kind == Update {
			got = append(got, string(e.Stage)+" "+string(rune('0'+e.Done)))
		} else {
			got = append(got, e.Kind.String())
		}
	}
	want := []string{"writing 1", "writing 3", "vm-done", "verifying 5", "verifying 6", "verifying 7", "warning", "verifying 8"}
	if !slices.Equal(got, want) {
		t.Errorf("passed %q, want %q", got, want)
	}
}

// The update held back reaches the consumer once the interval has passed,
// with no other event to carry it.
func TestThrottleTimer(t *testing.T) {
	ch := make(chan Event, 10)
	th := Throttle(Func(func(e Event) { ch <- e }), 10*time.Millisecond)
	defer th.Close()
	th.Report(Event{Stage: Writing, Done: 1})
	th.Report(Event{Stage: Writing, Done: 2})
	if e := <-ch; e.Done != 1 {
		t.Fatalf("first %+v", e)
	}
	if e := <-ch; e.Done != 2 {
		t.Fatalf("held %+v", e)
	}
}
