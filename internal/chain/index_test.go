package chain

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// An index comes back as it was saved; a damaged, cut or foreign file is
// refused; replacing one never leaves a half-written file under its name.
func TestIndex(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	mutate(t, rand.New(rand.NewPCG(3, 4)), img, 9*BlockSize+100, 6)
	ix := &Index{Backup: "20261202T101500-ab12", Full: "20261201T101500-ff00", Depth: 3, Volumes: map[string]*Digests{
		"vm1/private.img":  digestsOf(t, img),
		"vm2/root.img":     {Size: 0, Blocks: [][32]byte{}},
		"vm2/firewall.xml": {Size: 5, Blocks: [][32]byte{{1}}},
	}, Stamps: map[string]string{"vm1/private.img": "2049:1234:589924:1764000000123456789:1764000000123456789"}}
	path := filepath.Join(dir, "index", "laptop.idx")
	if err := SaveIndex(path, ix); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ix) {
		t.Fatalf("loaded %+v, saved %+v", got, ix)
	}
	if got.Volumes["vm1/private.img"].Root() != rootOf(t, img) {
		t.Fatal("the loaded digests give another root")
	}

	data, _ := os.ReadFile(path)
	for name, damaged := range map[string][]byte{
		"a flipped bit": func() []byte { b := append([]byte(nil), data...); b[len(b)/2] ^= 1; return b }(),
		"cut short":     data[:len(data)-100],
		"empty":         {},
		"another file":  []byte("pedos-chain 1\nbase x\nend\n" + string(make([]byte, 32))),
	} {
		bad := filepath.Join(dir, "bad.idx")
		os.WriteFile(bad, damaged, 0o600)
		if _, err := LoadIndex(bad); !errors.Is(err, ErrBadIndex) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A stamp must name a volume with digests, and be a plain word.
	for _, stamps := range []map[string]string{{"vm9/private.img": "1:2"}, {"vm1/private.img": "1 2"}, {"vm1/private.img": ""}} {
		if err := SaveIndex(filepath.Join(dir, "stamps.idx"), &Index{Backup: ix.Backup, Full: ix.Full, Volumes: ix.Volumes, Stamps: stamps}); err == nil {
			t.Errorf("stamps %q were saved", stamps)
		}
	}
	if _, err := LoadIndex(filepath.Join(dir, "none.idx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing index: %v", err)
	}

	// A replacement that fails leaves the old index whole, and no
	// temporary file behind.
	ix2 := &Index{Backup: "bad/id", Full: ix.Full, Volumes: ix.Volumes}
	if err := SaveIndex(path, ix2); err == nil {
		t.Fatal("an index with a bad backup id was saved")
	}
	if again, err := LoadIndex(path); err != nil || again.Backup != ix.Backup {
		t.Fatalf("after a failed save: %v, %v", again, err)
	}
	ix.Backup = "20261203T101500-cd34"
	if err := SaveIndex(path, ix); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(filepath.Dir(path))
	if len(names) != 1 {
		t.Fatalf("the index directory holds %v", names)
	}
	if again, _ := LoadIndex(path); again.Backup != ix.Backup {
		t.Fatalf("replaced index names %s", again.Backup)
	}
}
