package chain

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// A root does not depend on which zeros are allocated: a sparse image and
// the same bytes written out in full have one root, and a changed byte
// changes it.
func TestRootIgnoresAllocation(t *testing.T) {
	dir := t.TempDir()
	size := int64(5*BlockSize + 1234)
	content := make([]byte, size)
	copy(content[2*BlockSize+7:], "some data")
	copy(content[size-3:], "end")
	full := filepath.Join(dir, "full")
	if err := os.WriteFile(full, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.WriteAt([]byte("some data"), 2*BlockSize+7)
	f.WriteAt([]byte("end"), size-3)
	f.Close()
	a, b := rootOf(t, full), rootOf(t, sparse)
	if a != b {
		t.Fatalf("roots differ: %s (written) and %s (sparse)", a, b)
	}
	content[0] = 1
	os.WriteFile(full, content, 0o600)
	if rootOf(t, full) == a {
		t.Fatal("a changed byte kept the root")
	}
}

func rootOf(t *testing.T, path string) Root {
	t.Helper()
	return digestsOf(t, path).Root()
}

// A property test of a chain: random writes, zeroed runs and resizes over
// several increments; each increment's map and delta, applied by Apply
// and by the Python script to the result of the one before, give the new
// image byte for byte.
func TestChainProperty(t *testing.T) {
	python := testutil.RequireTool(t, "python3")
	script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "pedos-apply-delta.py"))
	rng := rand.New(rand.NewPCG(7, 11))
	dir := t.TempDir()
	now := filepath.Join(dir, "now.img") // the volume as it changes
	size := int64(40*BlockSize + 777)
	mutate(t, rng, now, size, 12)
	goDir, pyDir := filepath.Join(dir, "go"), filepath.Join(dir, "py")
	for _, d := range []string{goDir, pyDir} {
		os.MkdirAll(filepath.Join(d, "vm1"), 0o755)
		copyFile(t, now, filepath.Join(d, "vm1", "private.img"))
		os.WriteFile(filepath.Join(d, "backup-header"), []byte("version=4\nbackup-id=full-0\n"), 0o600)
	}
	prevID := "full-0"
	// The digests alone, as a verification follows the chain: first those
	// of the full backup's image as it streams past, holes skipped.
	h := NewHasher()
	if err := feed(h, mustRead(t, now)); err != nil {
		t.Fatal(err)
	}
	tracked := h.Digests()
	if tracked.Root() != digestsOf(t, now).Root() {
		t.Fatal("the Hasher's digests differ from Scan's")
	}
	for k := 1; k <= 6; k++ {
		base := digestsOf(t, now)
		size = max(BlockSize/2, size+int64(rng.IntN(12*BlockSize))-6*BlockSize) // grow or shrink
		mutate(t, rng, now, size, 1+rng.IntN(8))
		cur := digestsOf(t, now)
		v := Volume{Name: "vm1/private.img", BaseSize: base.Size, BaseRoot: base.Root(), Size: cur.Size, Root: cur.Root(),
			Extents: Changes(base, cur)}
		id := fmt.Sprintf("inc-%d", k)
		m := &Map{Base: prevID, Volumes: []Volume{v}}
		parsed, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("increment %d: its own map refused: %v", k, err)
		}
		v = parsed.Volumes[0]
		inc := filepath.Join(dir, id)
		delta := writeIncrement(t, inc, id, m, now, v)

		// Go.
		img, err := os.OpenFile(filepath.Join(goDir, "vm1", "private.img"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		df, _ := os.Open(delta)
		err = Apply(img, df, v)
		img.Close()
		df.Close()
		if err != nil {
			t.Fatalf("increment %d: %v", k, err)
		}
		sameBytes(t, now, filepath.Join(goDir, "vm1", "private.img"))

		// The digests, from the delta's content alone.
		da, err := BeginDigests(tracked, v)
		if err != nil {
			t.Fatalf("increment %d: %v", k, err)
		}
		if err := feed(da, mustRead(t, delta)); err != nil {
			t.Fatalf("increment %d, digests only: %v", k, err)
		}
		if tracked, err = da.Finish(); err != nil {
			t.Fatalf("increment %d, digests only: %v", k, err)
		}

		// Python, as the emergency procedure runs it.
		if out, err := exec.Command(python, script, pyDir, inc).CombinedOutput(); err != nil {
			t.Fatalf("increment %d, the script: %v\n%s", k, err, out)
		}
		sameBytes(t, now, filepath.Join(pyDir, "vm1", "private.img"))
		prevID = id
	}
}

// feed writes content as sparsetar.ExtractFile does to a Skipper: runs
// of zeros (here, every all-zero piece of 96 KiB or less, so pieces
// straddle blocks) skipped, the rest written, and a last empty Skip at the
// end.
func feed(w interface {
	Write([]byte) (int, error)
	Skip(int64) error
}, content []byte) error {
	for off := 0; off < len(content); off += 3 * BlockSize / 2 {
		part := content[off:min(len(content), off+3*BlockSize/2)]
		var err error
		if bytes.Count(part, []byte{0}) == len(part) {
			err = w.Skip(int64(len(part)))
		} else {
			_, err = w.Write(part)
		}
		if err != nil {
			return err
		}
	}
	return w.Skip(0)
}

// mutate resizes the image at path to size and makes n random changes:
// random data, or zeros, over runs that need not follow the block grid.
func mutate(t *testing.T, rng *rand.Rand, path string, size int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for range n {
		off := rng.Int64N(size)
		length := min(size-off, 1+rng.Int64N(3*BlockSize))
		buf := make([]byte, length)
		if rng.IntN(3) > 0 {
			for i := range buf {
				buf[i] = byte(rng.IntN(256))
			}
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
}

func digestsOf(t *testing.T, path string) *Digests {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	d, err := Scan(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeIncrement lays an increment out as the emergency procedure
// recovers it: its header, its map, and the delta (a sparse image of the
// volume's new size holding the data extents only). It returns the
// delta's path.
func writeIncrement(t *testing.T, dir, id string, m *Map, now string, v Volume) string {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "vm1"), 0o755)
	os.WriteFile(filepath.Join(dir, "backup-header"), []byte("version=4\nbackup-id="+id+"\npedos-base="+m.Base+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "pedos-chain"), m.Marshal(), 0o600)
	src, err := os.ReadFile(now)
	if err != nil {
		t.Fatal(err)
	}
	delta := filepath.Join(dir, v.Name+".delta")
	f, err := os.Create(delta)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(v.Size)
	for _, e := range v.Extents {
		if !e.Zero {
			f.WriteAt(src[e.Off:e.Off+e.Len], e.Off)
		}
	}
	return delta
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sameBytes(t *testing.T, want, got string) {
	t.Helper()
	a, _ := os.ReadFile(want)
	b, err := os.ReadFile(got)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("%s differs from %s (%d and %d bytes, %v)", got, want, len(b), len(a), err)
	}
}

// Maps that the writer would never write are refused.
func TestParseRejects(t *testing.T) {
	r := strings.Repeat("ab", 32)
	vol := "volume vm1/private.img 1048576 " + r + " 1048576 " + r + "\n"
	for name, m := range map[string]string{
		"no header":           "base x\n" + vol + "end\n",
		"no end":              "pedos-chain 1\nbase x\n" + vol,
		"no base":             "pedos-chain 1\n" + vol + "end\n",
		"bad base id":         "pedos-chain 1\nbase a/b\n" + vol + "end\n",
		"extent before vol":   "pedos-chain 1\nbase x\ndata 0 65536\n" + vol + "end\n",
		"overlap":             "pedos-chain 1\nbase x\n" + vol + "data 0 131072\nzero 65536 65536\nend\n",
		"out of order":        "pedos-chain 1\nbase x\n" + vol + "data 131072 65536\ndata 0 65536\nend\n",
		"past the end":        "pedos-chain 1\nbase x\n" + vol + "data 1048576 65536\nend\n",
		"runs past the end":   "pedos-chain 1\nbase x\n" + vol + "data 983040 131072\nend\n",
		"off the grid":        "pedos-chain 1\nbase x\n" + vol + "data 100 65536\nend\n",
		"ends off the grid":   "pedos-chain 1\nbase x\n" + vol + "data 0 100\nend\n",
		"empty extent":        "pedos-chain 1\nbase x\n" + vol + "data 0 0\nend\n",
		"negative":            "pedos-chain 1\nbase x\n" + vol + "data -65536 65536\nend\n",
		"leading zero":        "pedos-chain 1\nbase x\n" + vol + "data 00 65536\nend\n",
		"huge volume":         "pedos-chain 1\nbase x\nvolume vm1/private.img 1 " + r + " 99999999999999999 " + r + "\nend\n",
		"unsafe name":         "pedos-chain 1\nbase x\nvolume ../etc/passwd 1 " + r + " 1 " + r + "\nend\n",
		"name twice":          "pedos-chain 1\nbase x\n" + vol + vol + "end\n",
		"short root":          "pedos-chain 1\nbase x\nvolume vm1/private.img 1 abcd 1 " + r + "\nend\n",
		"upper-case root":     "pedos-chain 1\nbase x\nvolume vm1/private.img 1 " + strings.ToUpper(r) + " 1 " + r + "\nend\n",
		"unknown line":        "pedos-chain 1\nbase x\n" + vol + "hole 0 65536\nend\n",
		"trailing space":      "pedos-chain 1\nbase x\n" + vol + "data 0 65536 \nend\n",
		"too large":           "pedos-chain 1\nbase x\n" + strings.Repeat("#", MaxMapSize) + "\nend\n",
		"something after end": "pedos-chain 1\nbase x\n" + vol + "end\nmore\n",
		"kept dom0 home":      "pedos-chain 1\nbase x\nkeep dom0-home/user\nend\n",
		"kept path escape":    "pedos-chain 1\nbase x\nkeep vm1/../../etc\nend\n",
		"kept twice":          "pedos-chain 1\nbase x\nkeep vm1/notes.txt\nkeep vm1/notes.txt\nend\n",
		"kept out of order":   "pedos-chain 1\nbase x\nkeep vm2/root.img\nkeep vm1/root.img\nend\n",
		"kept and changed":    "pedos-chain 1\nbase x\n" + vol + "keep vm1/private.img\nend\n",
		"volume after kept":   "pedos-chain 1\nbase x\nkeep vm1/notes.txt\n" + vol + "end\n",
		"extent after kept":   "pedos-chain 1\nbase x\n" + vol + "keep vm1/notes.txt\ndata 0 65536\nend\n",
	} {
		if _, err := Parse([]byte(m)); !errors.Is(err, ErrBadMap) {
			t.Errorf("%s: %v", name, err)
		}
	}
	good := "pedos-chain 1\nbase x\n" + vol + "data 0 65536\nzero 131072 65536\nkeep vm1/firewall.xml\nkeep vm2/root.img\nend\n"
	if m, err := Parse([]byte(good)); err != nil {
		t.Errorf("a good map: %v", err)
	} else if string(m.Marshal()) != good {
		t.Errorf("a good map marshals as\n%s", m.Marshal())
	}
}

// Apply refuses a base that is not the increment's, changing nothing, and
// reports a damaged delta.
func TestApplyChecksRoots(t *testing.T) {
	dir := t.TempDir()
	base, now := filepath.Join(dir, "base"), filepath.Join(dir, "now")
	content := bytes.Repeat([]byte("base data "), 30000)
	os.WriteFile(base, content, 0o600)
	changed := bytes.Clone(content)
	copy(changed[70000:], "new data")
	os.WriteFile(now, changed, 0o600)
	b, n := digestsOf(t, base), digestsOf(t, now)
	v := Volume{Name: "vm1/private.img", BaseSize: b.Size, BaseRoot: b.Root(), Size: n.Size, Root: n.Root(), Extents: Changes(b, n)}
	if len(v.Extents) != 1 || v.Extents[0] != (Extent{Off: BlockSize, Len: BlockSize}) {
		t.Fatalf("changes %v, want the second block", v.Extents)
	}

	other := filepath.Join(dir, "other")
	os.WriteFile(other, bytes.Repeat([]byte("x"), len(content)), 0o600)
	f, _ := os.OpenFile(other, os.O_RDWR, 0)
	err := Apply(f, bytes.NewReader(changed), v)
	f.Close()
	if err == nil || !strings.Contains(err.Error(), "not the one this increment applies to") {
		t.Fatalf("another base: %v", err)
	}
	if got, _ := os.ReadFile(other); !bytes.Equal(got, bytes.Repeat([]byte("x"), len(content))) {
		t.Fatal("a refused base was changed")
	}

	damaged := bytes.Clone(changed)
	damaged[70001] ^= 1
	f, _ = os.OpenFile(base, os.O_RDWR, 0)
	err = Apply(f, bytes.NewReader(damaged), v)
	f.Close()
	if err == nil || !strings.Contains(err.Error(), "the delta is damaged") {
		t.Fatalf("a damaged delta: %v", err)
	}
}

// The script refuses an increment applied out of order, a wrong base and
// a damaged delta, each naming the cause.
func TestScriptRefuses(t *testing.T) {
	python := testutil.RequireTool(t, "python3")
	script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "pedos-apply-delta.py"))
	dir := t.TempDir()
	now := filepath.Join(dir, "now.img")
	rng := rand.New(rand.NewPCG(1, 2))
	mutate(t, rng, now, 8*BlockSize, 4)
	full := filepath.Join(dir, "full")
	os.MkdirAll(filepath.Join(full, "vm1"), 0o755)
	copyFile(t, now, filepath.Join(full, "vm1", "private.img"))
	os.WriteFile(filepath.Join(full, "backup-header"), []byte("backup-id=full-0\n"), 0o600)
	base := digestsOf(t, now)
	mutate(t, rng, now, 8*BlockSize, 3)
	cur := digestsOf(t, now)
	v := Volume{Name: "vm1/private.img", BaseSize: base.Size, BaseRoot: base.Root(), Size: cur.Size, Root: cur.Root(), Extents: Changes(base, cur)}

	orig := mustRead(t, filepath.Join(full, "vm1", "private.img"))
	run := func(m *Map, damage bool) string {
		t.Helper()
		inc := filepath.Join(t.TempDir(), "inc")
		delta := writeIncrement(t, inc, "inc-1", m, now, v)
		if damage {
			f, _ := os.OpenFile(delta, os.O_RDWR, 0)
			f.WriteAt([]byte{0xff, 0xfe}, v.Extents[0].Off)
			f.Close()
		}
		out, err := exec.Command(python, script, full, inc).CombinedOutput()
		if err == nil {
			t.Fatalf("the script applied it:\n%s", out)
		}
		return string(out)
	}
	if out := run(&Map{Base: "another-chain", Volumes: []Volume{v}}, false); !strings.Contains(out, "apply the chain in order") {
		t.Errorf("a foreign increment: %s", out)
	}
	wrong := v
	wrong.BaseRoot[0] ^= 1
	if out := run(&Map{Base: "full-0", Volumes: []Volume{wrong}}, false); !strings.Contains(out, "not the one this increment applies to") {
		t.Errorf("a wrong base root: %s", out)
	}
	if !bytes.Equal(orig, mustRead(t, filepath.Join(full, "vm1", "private.img"))) {
		t.Fatal("a refused increment changed the base image")
	}
	if out := run(&Map{Base: "full-0", Volumes: []Volume{v}}, true); !strings.Contains(out, "the delta is damaged") {
		t.Errorf("a damaged delta: %s", out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A delta stored as the writer will store it (sparsetar.AddExtents, the
// PAX sparse format) comes out of GNU tar as a sparse image holding the
// data extents only, and the script applies it: the emergency procedure's
// path for a volume, short of the encryption every archive has.
func TestDeltaThroughGNUTar(t *testing.T) {
	tar := testutil.RequireTool(t, "tar")
	python := testutil.RequireTool(t, "python3")
	script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "pedos-apply-delta.py"))
	rng := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	now := filepath.Join(dir, "now.img")
	size := int64(64 * BlockSize)
	mutate(t, rng, now, size, 10)
	full := filepath.Join(dir, "full")
	os.MkdirAll(filepath.Join(full, "vm1"), 0o755)
	copyFile(t, now, filepath.Join(full, "vm1", "private.img"))
	os.WriteFile(filepath.Join(full, "backup-header"), []byte("backup-id=full-0\n"), 0o600)
	base := digestsOf(t, now)
	mutate(t, rng, now, size+3*BlockSize, 4)
	cur := digestsOf(t, now)
	v := Volume{Name: "vm1/private.img", BaseSize: base.Size, BaseRoot: base.Root(), Size: cur.Size, Root: cur.Root(), Extents: Changes(base, cur)}

	inc := filepath.Join(dir, "inc")
	os.MkdirAll(inc, 0o755)
	os.WriteFile(filepath.Join(inc, "backup-header"), []byte("backup-id=inc-1\npedos-base=full-0\n"), 0o600)
	os.WriteFile(filepath.Join(inc, "pedos-chain"), (&Map{Base: "full-0", Volumes: []Volume{v}}).Marshal(), 0o600)
	var runs []sparsetar.Region
	var stored int64
	for _, e := range v.Extents {
		if !e.Zero {
			runs = append(runs, sparsetar.Region{Offset: e.Off, Length: e.Len})
			stored += e.Len
		}
	}
	src, err := os.Open(now)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	archive := filepath.Join(dir, "delta.tar")
	out, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := sparsetar.NewWriter(out)
	n, err := tw.AddExtents(v.Name+".delta", src, v.Size, runs, time.Now())
	if err == nil {
		err = tw.Close()
	}
	out.Close()
	if err != nil || n != stored {
		t.Fatalf("storing the delta: %d bytes of %d, %v", n, stored, err)
	}
	if out, err := exec.Command(tar, "-xf", archive, "-C", inc).CombinedOutput(); err != nil {
		t.Fatalf("GNU tar: %v\n%s", err, out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(inc, v.Name+".delta"), &st); err != nil || st.Size != v.Size || st.Blocks*512 > stored+16*BlockSize {
		t.Fatalf("the extracted delta: %d bytes, %d allocated, want %d bytes and about %d allocated (%v)", st.Size, st.Blocks*512, v.Size, stored, err)
	}
	if out, err := exec.Command(python, script, full, inc).CombinedOutput(); err != nil {
		t.Fatalf("the script: %v\n%s", err, out)
	}
	sameBytes(t, now, filepath.Join(full, "vm1", "private.img"))
}

// Rescan with the changed blocks marked gives Scan's digests; it reads
// only the marked ones (an unmarked changed block keeps the base's
// digest).
func TestRescan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	path := filepath.Join(t.TempDir(), "img")
	mutate(t, rng, path, 40*BlockSize+300, 30)
	base := digestsOf(t, path)
	mutate(t, rng, path, 43*BlockSize+10, 4) // grown, its old last block now full
	now := digestsOf(t, path)
	changed := make([]bool, len(now.Blocks))
	for b := range changed {
		changed[b] = b >= len(base.Blocks)-1 || now.Blocks[b] != base.Blocks[b]
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Rescan(f, now.Size, base, changed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Root() != now.Root() {
		t.Fatal("Rescan of the changed blocks differs from Scan")
	}
	b := slices.Index(changed, true)
	changed[b] = false
	if got, err = Rescan(f, now.Size, base, changed, nil); err != nil {
		t.Fatal(err)
	}
	if got.Blocks[b] != base.Blocks[b] {
		t.Error("an unmarked block was hashed, not taken from the base")
	}
	if _, err := Rescan(f, now.Size, base, make([]bool, len(now.Blocks)), nil); err == nil {
		t.Error("keeping blocks the base lacks was not refused")
	}
}

// A Watch hears of a volume that differs from its digests once, and of
// one that does not, never.
func TestRescanWatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	path := filepath.Join(t.TempDir(), "img")
	mutate(t, rng, path, 40*BlockSize, 30)
	was := digestsOf(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	heard := func(size int64) int {
		var n atomic.Int32
		if _, err := Rescan(f, size, nil, nil, &Watch{Was: was, Differs: func() { n.Add(1) }}); err != nil {
			t.Fatal(err)
		}
		return int(n.Load())
	}
	if n := heard(was.Size); n != 0 {
		t.Errorf("the volume as it was: told %d times of a difference", n)
	}
	if err := f.Truncate(was.Size + BlockSize); err != nil {
		t.Fatal(err)
	}
	if n := heard(was.Size + BlockSize); n != 1 {
		t.Errorf("a longer volume: told %d times, want once", n)
	}
	if err := f.Truncate(was.Size); err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{3, 17, 29} { // blocks on several cores' runs
		if _, err := f.WriteAt([]byte{0xa5, 0x5a}, b*BlockSize+100); err != nil {
			t.Fatal(err)
		}
	}
	if n := heard(was.Size); n != 1 {
		t.Errorf("three blocks changed: told %d times, want once", n)
	}
}

// BlockSum's shortcut for zero blocks gives SHA-256's digest, and takes
// only whole blocks of zeros.
func TestBlockSum(t *testing.T) {
	block := make([]byte, BlockSize)
	cases := map[string][]byte{"zeros": block, "short zeros": block[:BlockSize-1], "empty": nil}
	last := bytes.Clone(block)
	last[BlockSize-1] = 1
	cases["a one at the end"] = last
	first := bytes.Clone(block)
	first[0] = 1
	cases["a one at the start"] = first
	for name, p := range cases {
		if got, want := BlockSum(p), sha256.Sum256(p); got != want {
			t.Errorf("%s: %x, want %x", name, got, want)
		}
	}
}
