package sparsetar

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// AddExtents refuses runs out of order, overlapping, empty or past the
// image's size, before it writes anything.
func TestAddExtentsRejects(t *testing.T) {
	src := bytes.NewReader(make([]byte, 1<<20))
	for name, runs := range map[string][]Region{
		"overlap":      {{0, 4096}, {2048, 4096}},
		"out of order": {{8192, 4096}, {0, 4096}},
		"empty":        {{0, 0}},
		"past the end": {{1<<20 - 100, 4096}},
		"negative":     {{-4096, 4096}},
	} {
		var out bytes.Buffer
		w := NewWriter(&out)
		if _, err := w.AddExtents("vm1/private.img.delta", src, 1<<20, runs, time.Now()); err == nil || !strings.Contains(err.Error(), "out of order or past") {
			t.Errorf("%s: %v", name, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d bytes written", name, out.Len())
		}
	}
	var out bytes.Buffer
	w := NewWriter(&out)
	n, err := w.AddExtents("vm1/private.img.delta", io.NewSectionReader(src, 0, 1<<20), 1<<20, []Region{{0, 4096}, {65536, 100}}, time.Now())
	if err != nil || n != 4196 {
		t.Fatalf("good runs: %d, %v", n, err)
	}
}
