package progress

import (
	"testing"
	"time"
)

func TestEventArithmetic(t *testing.T) {
	e := Event{Done: 25 << 20, Total: 100 << 20, Elapsed: 5 * time.Second}
	if f := e.Fraction(); f != 0.25 {
		t.Errorf("fraction %v", f)
	}
	if r := e.Rate(); r != 5<<20 {
		t.Errorf("rate %v", r)
	}
	if eta := e.ETA(); eta != 15*time.Second {
		t.Errorf("eta %v", eta)
	}
	over := Event{Done: 110, Total: 100, Elapsed: time.Second}
	if over.Fraction() != 1 || over.ETA() != 0 {
		t.Errorf("past the estimate: %v %v", over.Fraction(), over.ETA())
	}
	if (Event{}).ETA() != 0 || (Event{}).Rate() != 0 || (Event{}).Fraction() != 0 {
		t.Error("zero event")
	}
	var got []Stage
	Func(func(e Event) { got = append(got, e.Stage) }).Report(Event{Stage: Done})
	Discard.Report(Event{})
	if len(got) != 1 || got[0] != Done {
		t.Errorf("Func: %v", got)
	}
}
