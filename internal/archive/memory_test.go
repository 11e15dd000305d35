package archive

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"pedos.dev/backup/internal/memlimit"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

func TestPlanMemory(t *testing.T) {
	const chunk, kdf = 100 << 20, 1 << 30
	p := scryptenc.Params{LogN: 20, R: 8, P: 1}
	for _, tc := range []struct {
		budget int64
		want   memoryPlan
	}{
		{memoryReserve + 5*chunk + 2*kdf, memoryPlan{5, 2}},
		{memoryReserve + 3*chunk + 2*kdf, memoryPlan{3, 2}},
		// Two derivations would leave room for fewer buffers than they
		// need: one derivation, buffers to spare.
		{memoryReserve + 2*chunk + 2*kdf, memoryPlan{5, 1}},
		{memoryReserve + chunk + kdf, memoryPlan{1, 1}},
	} {
		got, err := planMemory("x", tc.budget, chunk, kdf, 5, 2, p)
		if err != nil || got != tc.want {
			t.Errorf("budget %d MiB: %+v, %v; want %+v", tc.budget>>20, got, err, tc.want)
		}
	}
	_, err := planMemory("reading this backup", memoryReserve+chunk+kdf-1, chunk, kdf, 5, 2, p)
	var be *memlimit.BudgetError
	if !errors.As(err, &be) || be.Need != memoryReserve+chunk+kdf || !strings.Contains(err.Error(), "logN=20") {
		t.Errorf("budget one byte short: %v", err)
	}
	// Costs beyond any budget neither wrap nor pass.
	huge := scryptenc.Params{LogN: 63, R: 1 << 29, P: 1}
	if _, err := planMemory("x", 1<<50, chunk, kdfMemory(huge), 5, 2, huge); !errors.Is(err, memlimit.ErrBudget) {
		t.Errorf("logN 63: %v", err)
	}
}

// readWithBudget reads an archive whole under a memory budget and returns
// the most key-derivation memory it held at once.
func readWithBudget(t *testing.T, data []byte, budget int64) (map[string]string, int64, error) {
	t.Helper()
	opts := testReaderOptions()
	opts.Workers, opts.MaxMemory = 2, budget
	r, err := NewReader(bytes.NewReader(data), opts)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	got := map[string]string{QubesXMLName: digest(r.QubesXML())}
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		var buf bytes.Buffer
		if strings.HasPrefix(f.Name, "dom0-home/") {
			_, err = sparsetar.ReadTree(f, f.Name, 1<<30)
		} else {
			_, err = sparsetar.ExtractFile(f, f.Name, &buf, 1<<30)
		}
		if err != nil {
			return nil, 0, err
		}
		got[f.Name] = digest(buf.Bytes())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return got, r.peakKDFMiB << 20, nil
}

// The budget bounds the derivations running at once: with room for one,
// no more than one's memory is ever held; with room for two, the same
// archive reads the same; with room for none, the reader refuses before
// deriving anything, saying what it needs.
func TestReaderMemoryBudget(t *testing.T) {
	fx := newFixture(t)
	opts := testWriterOptions()
	opts.Params = scryptenc.Params{LogN: 14, R: 8, P: 1} // 16 MiB a derivation
	data := fx.archive(t, opts)
	kdf := kdfMemory(opts.Params)
	kdfMiB := (kdf + 1<<20 - 1) &^ (1<<20 - 1)
	chunk := int64(ChunkSize + scryptenc.Overhead)

	one := memoryReserve + 2*chunk + kdfMiB + 1<<20
	want, peak, err := readWithBudget(t, data, one)
	if err != nil {
		t.Fatal(err)
	}
	if peak == 0 || peak > kdfMiB {
		t.Errorf("budget for one derivation: %d MiB of derivations held at once, want at most %d", peak>>20, kdfMiB>>20)
	}
	two := memoryReserve + 5*chunk + 2*kdfMiB
	got, peak, err := readWithBudget(t, data, two)
	if err != nil {
		t.Fatal(err)
	}
	compareDigests(t, got, want)
	if peak > two-memoryReserve-chunk {
		t.Errorf("budget for two derivations: %d MiB held at once", peak>>20)
	}

	_, _, err = readWithBudget(t, data, memoryReserve+chunk)
	var be *memlimit.BudgetError
	if !errors.As(err, &be) || be.Budget != memoryReserve+chunk || be.Need < memoryReserve+chunk+kdf {
		t.Errorf("budget for no derivation: %v", err)
	}
}

// The writer obeys the same budget, and refuses one too small before
// writing a byte.
func TestWriterMemoryBudget(t *testing.T) {
	fx := newFixture(t)
	opts := testWriterOptions()
	opts.Params = scryptenc.Params{LogN: 14, R: 8, P: 1}
	opts.Workers = 2
	kdf := kdfMemory(opts.Params)
	chunk := int64(opts.ChunkSize)
	opts.MaxMemory = memoryReserve + chunk + kdf
	var small bytes.Buffer
	w, err := NewWriter(&small, opts)
	if err != nil {
		t.Fatal(err)
	}
	if cap(w.kdfSlots) != 1 || w.spare != 1 {
		t.Errorf("budget for one of each: %d derivations, %d buffers", cap(w.kdfSlots), w.spare)
	}
	w.Abort(nil)
	w.Close()
	data := fx.archive(t, opts)
	got, err := readArchive(t, bytes.NewReader(data), testReaderOptions())
	if err != nil {
		t.Fatal(err)
	}
	compareDigests(t, got, fx.expected(t))

	opts.MaxMemory = memoryReserve + kdf
	var out bytes.Buffer
	if _, err := NewWriter(&out, opts); !errors.Is(err, memlimit.ErrBudget) || out.Len() != 0 {
		t.Errorf("budget for no chunk: %v, %d bytes written", err, out.Len())
	}
}
