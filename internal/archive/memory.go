package archive

import (
	"fmt"

	"pedos.dev/backup/internal/memlimit"
	"pedos.dev/backup/internal/scryptenc"
)

// A reader or writer's memory is its chunk buffers (one chunk is held
// whole while it is authenticated), its key derivations (128·r·N bytes
// each, far more than a chunk at the reference writer's default cost), and
// a rest: the Go runtime, compression state, qubes.xml, the manifest.
// Both split a memory budget between the first two, preferring concurrent
// derivations (the cost parallelism hides) and keeping a chunk buffer
// beside each, down to one of each; below that they refuse to start.

// memoryReserve is the rest, set aside from every budget (a variable for
// tests).
var memoryReserve int64 = 64 << 20

// fallbackBudget is the budget when the machine's memory cannot be read.
const fallbackBudget = 4 << 30

// defaultBudget is half the memory available to this process.
func defaultBudget() int64 {
	if b, err := memlimit.Default(); err == nil {
		return b
	}
	return fallbackBudget
}

// kdfMemory is what one derivation with p takes: its 128·r·N work area
// and its 128·r·p block, saturated far above any budget.
func kdfMemory(p scryptenc.Params) int64 {
	if p.LogN >= 50 || p.R >= 1<<30 || p.P >= 1<<30 {
		return 1 << 60
	}
	m := p.Memory() + 128*uint64(p.R)*uint64(p.P)
	return int64(min(m, 1<<60))
}

// memoryPlan is how many chunk buffers and concurrent derivations fit.
type memoryPlan struct{ buffers, kdfs int }

// planMemory fits up to wantBuffers chunk buffers of chunk bytes and up to
// wantKDFs derivations of kdf bytes into budget, or says what would not.
func planMemory(what string, budget, chunk, kdf int64, wantBuffers, wantKDFs int, p scryptenc.Params) (memoryPlan, error) {
	room := budget - memoryReserve
	for k := max(wantKDFs, 1); k >= 1; k-- {
		least := min(k+1, wantBuffers)
		if k == 1 {
			least = 1
		}
		for b := max(wantBuffers, 1); b >= least; b-- {
			if kdf <= room/int64(k) && int64(b)*chunk <= room-int64(k)*kdf {
				return memoryPlan{buffers: b, kdfs: k}, nil
			}
		}
	}
	need := memoryReserve + chunk + kdf
	if kdf >= 1<<60 {
		need = 1 << 60
	}
	return memoryPlan{}, &memlimit.BudgetError{What: what, Need: need, Budget: budget,
		Detail: fmt.Sprintf("a key derivation at %v takes %s, a chunk %s, the rest %s",
			p, memlimit.MiB(kdf), memlimit.MiB(chunk), memlimit.MiB(memoryReserve))}
}
