package scryptenc

import (
	"sync"
	"time"
)

// Lanes is how many key derivations one core runs at once: 2 with AVX2
// (kdf2), else 1. Callers that derive many keys (one per chunk) run
// Lanes × cores derivations concurrently, so that each core gets a pair.
var Lanes = func() int {
	if haveBlockMix2 {
		return 2
	}
	return 1
}()

// pairWait is how long a derivation waits for a partner with the same
// parameters before it runs alone: short against the derivation itself.
const pairWait = 20 * time.Millisecond

// A derivation waiting for a partner. The partner that finds it runs both
// (kdf2) and hands it its key.
type waiter struct {
	pass, salt []byte
	p          Params
	done       chan struct{}
	dk         []byte
}

var pairing struct {
	mu      sync.Mutex
	waiting *waiter
}

// pairedKDF is kdf, run together with a concurrent derivation of the same
// parameters when there is one (the chunk keys of a backup all share
// their parameters).
func pairedKDF(pass, salt []byte, p Params) []byte {
	logN, r, par := p.LogN, int(p.R), int(p.P)
	if Lanes < 2 {
		return kdf(pass, salt, logN, r, par)
	}
	pairing.mu.Lock()
	if w := pairing.waiting; w != nil && w.p == p {
		pairing.waiting = nil
		pairing.mu.Unlock()
		dkW, dk := kdf2(w.pass, w.salt, pass, salt, logN, r, par)
		w.dk = dkW
		close(w.done)
		return dk
	}
	if pairing.waiting != nil { // someone with other parameters waits
		pairing.mu.Unlock()
		return kdf(pass, salt, logN, r, par)
	}
	me := &waiter{pass: pass, salt: salt, p: p, done: make(chan struct{})}
	pairing.waiting = me
	pairing.mu.Unlock()
	timer := time.NewTimer(pairWait)
	defer timer.Stop()
	select {
	case <-me.done:
		return me.dk
	case <-timer.C:
	}
	pairing.mu.Lock()
	if pairing.waiting == me {
		pairing.waiting = nil
		pairing.mu.Unlock()
		return kdf(pass, salt, logN, r, par)
	}
	pairing.mu.Unlock()
	<-me.done // a partner took it just now
	return me.dk
}
