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

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1023: "1023", 1024: "1.0 KiB", 1536: "1.5 KiB", 2 << 30: "2.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// Two sizes a message compares are told apart: "needs up to 1.1 MiB, 1.1
// MiB free" said nothing.
func TestFormatSizes(t *testing.T) {
	for _, c := range []struct {
		a, b   int64
		wa, wb string
	}{
		{1153434, 1150000, "1.1 MiB (1153434 bytes)", "1.1 MiB (1150000 bytes)"},
		{2 << 20, 1 << 20, "2.0 MiB", "1.0 MiB"},
		{1 << 20, 1 << 20, "1.0 MiB", "1.0 MiB"},
		{100, 90, "100", "90"},
	} {
		if a, b := FormatSizes(c.a, c.b); a != c.wa || b != c.wb {
			t.Errorf("FormatSizes(%d, %d) = %q, %q; want %q, %q", c.a, c.b, a, b, c.wa, c.wb)
		}
	}
}
