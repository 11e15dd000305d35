// Package progress is how the backup and restore engines report progress:
// they emit Events to a Reporter, and the terminal, JSON and GUI printers
// implement Reporter.
//
// An engine never waits for its Reporter: it reports through Async, which
// queues the events and delivers them from a goroutine of its own, so a
// slow consumer (a terminal held with Ctrl-S, a busy GUI) does not slow
// the archive. Updates (Kind Update, the bytes done) are then coalesced:
// a consumer that falls behind sees the latest. The per-VM events and the
// warnings are never dropped. A GUI that redraws wants Throttle too.
package progress

import (
	"fmt"
	"strconv"
	"time"
)

// Stage names the phase an engine is in.
type Stage string

const (
	Preparing Stage = "preparing" // planning, deriving the first keys
	Writing   Stage = "writing"   // backup: storing VM data
	Reading   Stage = "reading"   // restore: reading the archive
	Verifying Stage = "verifying" // reading back or verifying only
	Finishing Stage = "finishing" // manifest, fsync, commit
	Done      Stage = "done"
)

// Kind says what an event reports.
type Kind int

const (
	// Update: the stage, and how much data is done. Only the latest
	// update matters; one may be coalesced with the next.
	Update Kind = iota
	// VMStarted: the engine begins VM's data.
	VMStarted
	// VMDone: VM is complete (backed up, verified, extracted or
	// restored, as the engine does).
	VMDone
	// VMFailed: VM failed; Err says why.
	VMFailed
	// Warning: Message is something the user should know about VM (or
	// about the whole run, VM "").
	Warning
)

func (k Kind) String() string {
	switch k {
	case Update:
		return "update"
	case VMStarted:
		return "vm-started"
	case VMDone:
		return "vm-done"
	case VMFailed:
		return "vm-failed"
	case Warning:
		return "warning"
	}
	return "unknown"
}

// Event is one report. Done and Total count uncompressed bytes of VM data
// (volume data, files, the dom0 home), so progress moves evenly however
// well the data compresses; Total is the plan's estimate and Done may
// pass it slightly. Every kind of event carries the stage and the bytes
// done so far.
type Event struct {
	Kind    Kind
	Stage   Stage
	VM      string // the VM being processed ("dom0" for the dom0 home), or ""
	File    string // the stored file, e.g. "vm3/private.img", or ""
	Done    int64
	Total   int64
	Elapsed time.Duration
	Err     error  // VMFailed: why
	Message string // Warning: what
}

// Fraction is Done/Total clamped to [0, 1] (0 when Total is unknown).
func (e Event) Fraction() float64 {
	if e.Total <= 0 {
		return 0
	}
	return min(1, float64(e.Done)/float64(e.Total))
}

// Rate is the average throughput so far, in bytes per second.
func (e Event) Rate() float64 {
	if e.Elapsed <= 0 {
		return 0
	}
	return float64(e.Done) / e.Elapsed.Seconds()
}

// ETA estimates the time left at the average rate so far; 0 when unknown.
func (e Event) ETA() time.Duration {
	rate := e.Rate()
	if rate <= 0 || e.Done >= e.Total {
		return 0
	}
	return time.Duration(float64(e.Total-e.Done) / rate * float64(time.Second))
}

// Reporter receives events. Engines call it from one goroutine at a time,
// often (every MiB of data), through Async, so implementations may take
// their time, and throttle their output.
type Reporter interface {
	Report(Event)
}

// Func adapts a function to a Reporter.
type Func func(Event)

// Report calls f.
func (f Func) Report(e Event) { f(e) }

// Discard ignores every event.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Report(Event) {}

// FormatSize writes a byte count for the engines' messages: bytes below
// 1024, else one decimal and KiB, MiB, GiB or TiB ("2.0 GiB").
func FormatSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}

// FormatSizes is FormatSize of two byte counts that a message compares
// ("needs up to A, B free"): when they differ but would read the same,
// each gets its exact count too ("1.1 MiB (1153434 bytes)").
func FormatSizes(a, b int64) (string, string) {
	fa, fb := FormatSize(a), FormatSize(b)
	if fa == fb && a != b && a >= 1024 {
		return fmt.Sprintf("%s (%d bytes)", fa, a), fmt.Sprintf("%s (%d bytes)", fb, b)
	}
	return fa, fb
}
