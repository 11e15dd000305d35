package restore

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"pedos.dev/backup/internal/archive"
)

func TestOpenListsVMs(t *testing.T) {
	data, src := goodArchive(t)
	b := openBackup(t, data)
	db, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range b.VMs {
		names = append(names, v.Name)
		d, err := db.Domain(v.Name)
		if err != nil {
			t.Fatal(err)
		}
		if want := "vm" + strconv.Itoa(d.Qid()) + "/"; v.Path != want {
			t.Errorf("%s: path %q, want %q", v.Name, v.Path, want)
		}
		if v.Size <= 0 {
			t.Errorf("%s: size %d", v.Name, v.Size)
		}
		if v.Class != d.Class() || v.Label != d.Label() || v.Template != d.Template() {
			t.Errorf("%s: %s/%s/%s, want %s/%s/%s", v.Name, v.Class, v.Label, v.Template, d.Class(), d.Label(), d.Template())
		}
		for _, f := range v.Features {
			if f.Name == "backup-path" || f.Name == "backup-size" || f.Name == "backup-content" {
				t.Errorf("%s keeps feature %s", v.Name, f.Name)
			}
		}
		for _, p := range v.Properties {
			if p.Name == "qid" || p.Name == "uuid" {
				t.Errorf("%s keeps property %s", v.Name, p.Name)
			}
		}
	}
	if want := "[debian-12 sys-net sys-firewall debian-12-dvm work personal vault]"; !sameSet(names, want) {
		t.Errorf("VMs %v, want %s", names, want)
	}
	if b.VM("disp123") != nil {
		t.Error("disp123 (include_in_backups False) is listed")
	}
	if b.Dom0 == nil || b.Dom0.User != "user" || b.Dom0.Path != "dom0-home/user" || b.Dom0.Size <= 0 {
		t.Fatalf("dom0 home %+v", b.Dom0)
	}
	sysnet, fw, work := b.VM("sys-net"), b.VM("sys-firewall"), b.VM("work")
	if sysnet.NetVM != (Ref{"", true}) || !sysnet.ProvidesNetwork || len(sysnet.Devices) != 1 {
		t.Errorf("sys-net %+v", sysnet)
	}
	if fw.NetVM != (Ref{"sys-net", true}) || work.NetVM != (Ref{"sys-firewall", true}) || b.VM("personal").NetVM.Set {
		t.Error("netvm references wrong")
	}
	if !b.VM("debian-12-dvm").TemplateForDispVMs || len(work.Tags) == 0 || len(work.Volumes) == 0 {
		t.Error("properties, tags or volumes lost")
	}
	if !bytes.Contains(b.QubesXML, []byte("backup-content")) {
		t.Error("QubesXML is not the archive's")
	}
}

func sameSet(got []string, want string) bool {
	m := map[string]bool{}
	for _, g := range got {
		m[g] = true
	}
	n := 0
	for _, w := range bytes.Fields([]byte(want[1 : len(want)-1])) {
		if !m[string(w)] {
			return false
		}
		n++
	}
	return n == len(got)
}

func TestOpenWrongPassphrase(t *testing.T) {
	data, _ := goodArchive(t)
	_, err := Open(t.Context(), bytes.NewReader(data), OpenOptions{Passphrase: []byte("wrong horse")})
	wantErr(t, err, archive.ErrBadPassphrase)
}

// A backup opened lazily reads nothing past the first data chunk's header
// until its data pass begins, however long it waits (an archive of a
// chain waiting for its turn), and then verifies as usual. One opened
// otherwise reads ahead meanwhile.
func TestLazyOpenReadsNoData(t *testing.T) {
	data, _ := goodArchive(t)
	metadata := metadataEnd(t, data)
	slack := metadata + 128<<10 // buffered reads, a member header
	if len(data) < slack+1<<20 {
		t.Fatalf("the archive (%d bytes) has too little data after its metadata (%d bytes)", len(data), metadata)
	}
	// open returns the backup and the count of bytes read from it (by the
	// reader's goroutines, as the test watches).
	open := func(lazy bool) (*Backup, *atomic.Int64) {
		var read atomic.Int64
		c := &countingReader{r: bytes.NewReader(data), read: func(n int) { read.Add(int64(n)) }}
		b, err := Open(t.Context(), c, OpenOptions{Passphrase: testPass, Lazy: lazy})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b, &read
	}

	_, eager := open(false)
	for deadline := time.Now().Add(10 * time.Second); eager.Load() <= int64(slack); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("opened eagerly, it read %d bytes, no further than its metadata (%d)", eager.Load(), metadata)
		}
	}

	b, lazy := open(true)
	time.Sleep(300 * time.Millisecond)
	if n := lazy.Load(); n > int64(slack) {
		t.Fatalf("opened lazily, it read %d bytes before its data pass; its metadata ends at %d", n, metadata)
	}
	plan, err := NewPlan(nil, b, PlanOptions{VerifyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyOnly(t.Context(), b, plan, nil); err != nil {
		t.Fatal(err)
	}
	if lazy.Load() != int64(len(data)) {
		t.Errorf("verified after reading %d of %d bytes", lazy.Load(), len(data))
	}
}
