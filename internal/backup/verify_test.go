package backup

import (
	"context"
	"errors"
	"os"
	"testing"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/progress"
)

// Reading a written backup back reports every VM with its files, and a
// damaged byte anywhere in the data makes it fail.
func TestVerify(t *testing.T) {
	h := demoHost(t)
	p, res := mustRun(t, h, testOptions(Destination{Path: t.TempDir()}), nil)
	var last progress.Event
	checks, err := Verify(context.Background(), p, res, progress.Func(func(e progress.Event) { last = e }))
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != len(p.VMs) {
		t.Fatalf("%d checks for %d VMs", len(checks), len(p.VMs))
	}
	for i, c := range checks {
		if c.Name != p.VMs[i].Name || c.Files != len(p.VMs[i].Files) {
			t.Errorf("%s: %d files read back, %d planned", c.Name, c.Files, len(p.VMs[i].Files))
		}
	}
	if last.Stage != progress.Done || last.Done != res.Data {
		t.Errorf("last event %+v, want done at %d", last, res.Data)
	}

	data, err := os.ReadFile(res.Location)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1 // inside the largest member, a volume's chunk
	if err := os.WriteFile(res.Location, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), p, res, nil); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("damaged backup: %v", err)
	}
	if _, err := Verify(context.Background(), p, &Result{Target: res.Target}, nil); err == nil {
		t.Fatal("verify without a file succeeded")
	}
}
