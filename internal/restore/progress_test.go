package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/progress"
)

// recorder records the events it gets.
type recorder struct {
	mu     sync.Mutex
	events []progress.Event
}

func (r *recorder) Report(e progress.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// of lists the events of a kind, by VM.
func (r *recorder) of(kind progress.Kind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e.VM)
		}
	}
	return out
}

// A restore reports each VM as its files begin and as it is added, and
// each warning its result holds; the last update is Done.
func TestRestoreProgressEvents(t *testing.T) {
	data, _ := goodArchive(t)
	h := emptyHost(t, "user")
	rec := &recorder{}
	res, err := restoreInto(t, h, data, PlanOptions{}, Options{}, rec)
	if err != nil {
		t.Fatal(err)
	}
	var names, warned []string
	for _, v := range res.VMs {
		names = append(names, v.Name)
		for range v.Warnings {
			warned = append(warned, v.Name)
		}
	}
	started, done := rec.of(progress.VMStarted), rec.of(progress.VMDone)
	slices.Sort(started)
	slices.Sort(done)
	slices.Sort(names)
	if !slices.Equal(started, names) || !slices.Equal(done, names) {
		t.Errorf("started %q, done %q, want %q", started, done, names)
	}
	if f := rec.of(progress.VMFailed); len(f) != 0 {
		t.Errorf("failed %q", f)
	}
	warnings := rec.of(progress.Warning)
	slices.Sort(warnings)
	slices.Sort(warned)
	if !slices.Equal(warnings, warned) {
		t.Errorf("warnings reported for %q, results hold them for %q", warnings, warned)
	}
	// Each VM is done after it started, and the end comes last.
	seen := map[string]bool{}
	for _, e := range rec.events {
		switch e.Kind {
		case progress.VMStarted:
			seen[e.VM] = true
		case progress.VMDone:
			if !seen[e.VM] {
				t.Errorf("%s done before it started", e.VM)
			}
		}
	}
	if last := rec.events[len(rec.events)-1]; last.Kind != progress.Update || last.Stage != progress.Done {
		t.Errorf("last event %+v", last)
	}
}

// A verification reports the VM a damaged file belongs to as failed, with
// the damage, and the VMs after it as not checked.
func TestVerifyProgressFailure(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	work := b.VM("work").Path
	var flipped []byte
	for _, m := range splitArchive(t, data) {
		c := bytes.Clone(m.data)
		if strings.HasPrefix(m.name, work+"private.img.000") {
			c[512+len(m.body)/2] ^= 0x40
		}
		flipped = append(flipped, c...)
	}
	b = openBackup(t, flipped)
	p, err := NewPlan(nil, b, PlanOptions{VMs: []string{"work", "dom0"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := VerifyOnly(t.Context(), b, p, rec); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("verify: %v", err)
	}
	failed := map[string]error{}
	for _, e := range rec.events {
		if e.Kind == progress.VMFailed {
			failed[e.VM] = e.Err
		}
	}
	if !errors.Is(failed["work"], archive.ErrCorrupt) || !errors.Is(failed["dom0"], ErrNotReached) || len(failed) != 2 {
		t.Errorf("failed %v", failed)
	}
	if d := rec.of(progress.VMDone); len(d) != 0 {
		t.Errorf("done %q", d)
	}
}

// Cancelled as it goes, a pass stops with ErrCancelled and the context's
// error.
func TestVerifyCancelled(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	p, err := NewPlan(nil, b, PlanOptions{syncProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err = VerifyOnly(ctx, b, p, progress.Func(func(e progress.Event) {
		if e.Kind == progress.VMStarted {
			cancel()
		}
	}))
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("verify: %v", err)
	}
}

// eofReader closes atEOF once its reader has been read to the end.
type eofReader struct {
	r     io.Reader
	atEOF chan struct{}
	once  sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(func() { close(e.atEOF) })
	}
	return n, err
}

// A consumer that takes no event until the whole archive has been read
// does not hold the verification up; it then gets every event.
func TestVerifySlowConsumer(t *testing.T) {
	data, _ := goodArchive(t)
	in := &eofReader{r: bytes.NewReader(data), atEOF: make(chan struct{})}
	b, err := Open(t.Context(), in, OpenOptions{Passphrase: testPass})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := NewPlan(nil, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	rep, err := VerifyOnly(t.Context(), b, p, progress.Func(func(e progress.Event) {
		<-in.atEOF // would never come if the data path waited for us
		rec.Report(e)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if d := rec.of(progress.VMDone); len(d) != len(rep.VMs) {
		t.Errorf("done %q for %d VMs", d, len(rep.VMs))
	}
	if last := rec.events[len(rec.events)-1]; last.Stage != progress.Done {
		t.Errorf("last event %+v", last)
	}
}
