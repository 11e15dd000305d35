package backup

import (
	"os"
	"testing"
	"time"

	"pedos.dev/backup/internal/chain"
)

// Volumes nobody touched since the last backup are not read: their
// stamps are the record's. A volume changed too recently to tell (less
// than stampSettle before the backup) is hashed and gets no stamp, so
// the next backup hashes it too; a write in place is seen by its change
// time even when the modification time is put back. The chain restores
// byte for byte, and a check increment hashes every volume.
func TestIncrementalStamps(t *testing.T) {
	c := newChainHost(t)
	c.opts.FullEvery = 10
	settle := func() { time.Sleep(stampSettle + 100*time.Millisecond) }
	volumes := 0
	for _, vm := range c.vms {
		if vols, err := c.h.Volumes(vm); err == nil && vm != "dom0" {
			for _, v := range vols {
				if v.SaveOnStop {
					volumes++
				}
			}
		}
	}
	var locs []string
	backup := func(step string, untouched, hashed int) {
		t.Helper()
		_, res := c.backup()
		locs = append(locs, res.Location)
		if d := res.Detection; d != nil && (d.Untouched != untouched || d.Scanned != hashed) {
			t.Errorf("%s: %s, want %d untouched and %d hashed", step, d, untouched, hashed)
		}
	}

	settle()
	backup("the full backup", 0, 0)
	c.write("work", "private", 3)
	backup("work written just before", volumes-1, 1)
	settle()
	// Unless this machine took stampSettle between the write and the
	// backup, the record has no stamp of work: it is hashed again.
	ix, err := chain.LoadIndex(mustPlan(t, c.h, c.opts).indexPath(lastIndex))
	if err != nil {
		t.Fatal(err)
	}
	if ix.Stamps["vm"+vmQid(t, c.h, "work")+"/private.img"] == "" {
		backup("work settled, with no stamp in the record", volumes-1, 1)
	} else {
		t.Log("the backup ran more than stampSettle after the write, so work got a stamp")
		backup("work settled", volumes, 0)
	}

	f := c.volume("vault", "private")
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("written in place"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := c.h.VolumeInfo("vault", "private")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(info.Path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	settle()
	backup("vault written in place, its time put back", volumes-1, 1)
	backup("the check increment", 0, volumes)

	target := freshHost(t)
	if got, err := restoreChain(t, target, locs); err != nil {
		t.Fatalf("restoring the chain: %v (%+v)", err, got)
	}
	sameVMs(t, c.h, target, c.vms)
}
