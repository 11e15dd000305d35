package backup

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// randomVolume replaces vm's private image with incompressible data around
// a hole: 3 MiB + 7 random bytes, 1 MiB of zeros, 1 MiB random.
func randomVolume(t testing.TB, h *host.Host, vm string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, 5<<20+7)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	clear(data[3<<20+7 : 4<<20+7])
	if _, err := h.ImportVolume(vm, "private", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// backup-size bounds what each VM's .enc members really hold, for
// incompressible data, every filter, several chunks, and a stream that
// ends exactly at a chunk boundary (which adds an empty chunk).
func TestBackupSizeBoundsStoredBytes(t *testing.T) {
	h := demoHost(t)
	randomVolume(t, h, "work", 1)
	randomVolume(t, h, "vault", 2)
	vms := []string{"dom0", "vault", "work"}

	// The chunk size at which vault's private.img stream is exactly two
	// chunks when uncompressed.
	opts := testOptions(Destination{Path: "-"})
	opts.VMs = []string{"vault"}
	p := mustPlan(t, h, opts)
	exact := int(p.VMs[0].Files[1].Data / 2)

	for _, c := range []struct {
		filter string
		chunk  int
	}{{"none", 1 << 20}, {"none", exact}, {"gzip", 1 << 20}, {"gzip", 0}, {"zstd", 1 << 20}, {"bzip2", 1 << 20}, {"xz", 1 << 20}} {
		t.Run(c.filter+"/"+strconv.Itoa(c.chunk), func(t *testing.T) {
			if c.filter == "bzip2" || c.filter == "xz" {
				testutil.RequireTool(t, c.filter)
			}
			opts := testOptions(Destination{Path: "-"})
			opts.VMs, opts.Compression, opts.chunkSize = vms, c.filter, c.chunk
			var buf bytes.Buffer
			p, res := mustRun(t, h, opts, &buf)
			contents := checkArchive(t, h, &buf, vms, readOpts(c.chunk)) // checks backup-size >= .enc bytes
			if res.Bytes > p.EstimatedArchiveSize {
				t.Errorf("archive %d bytes, estimate %d", res.Bytes, p.EstimatedArchiveSize)
			}
			// The bound is not absurdly loose either.
			for _, d := range contents.db.Domains() {
				text, _ := d.Feature("backup-size")
				if text == "" {
					continue
				}
				size, _ := strconv.ParseInt(text, 10, 64)
				var data int64
				for _, v := range p.VMs {
					if v.Name == d.Name() {
						data = v.Data
					}
				}
				t.Logf("%s: backup-size %d, .enc bytes %d (+%.2f%%)", d.Name(), size, contents.enc[d.Name()], 100*float64(size-contents.enc[d.Name()])/float64(contents.enc[d.Name()]))
				if size > data+data/32+400<<10 {
					t.Errorf("%s: backup-size %d for %d bytes of data", d.Name(), size, data)
				}
			}
			if c.chunk == exact {
				for _, f := range contents.seen {
					if f.Name == "vm"+strconv.Itoa(qid(t, h, "vault"))+"/private.img" && (len(f.Chunks) != 3 || f.Chunks[2].Size != 128) {
						t.Errorf("vault's private.img chunks %v, want two full and an empty one", f.Chunks)
					}
				}
			}
		})
	}
}

// Measured throughput with the default scrypt cost, for the duration
// model: go test -run XXX -bench Run -benchtime 1x ./internal/backup/
func BenchmarkRun(b *testing.B) {
	h, err := host.Demo(b.TempDir(), host.InitOptions{User: "user"})
	if err != nil {
		b.Fatal(err)
	}
	// 512 MiB of incompressible data in one volume.
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 512<<20)
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	if _, err := h.ImportVolume("work", "private", bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	data = nil
	for _, filter := range []string{"none", "gzip", "zstd"} {
		b.Run(filter, func(b *testing.B) {
			opts := Options{VMs: []string{"work"}, Compression: filter, Passphrase: testPass, Destination: Destination{Path: "-"}}
			p, err := NewPlan(b.Context(), h, opts)
			if err != nil || p.Err() != nil {
				b.Fatal(err, p.Err())
			}
			b.SetBytes(p.VMs[0].Data)
			for b.Loop() {
				start := time.Now()
				if _, err := Run(context.Background(), p, io.Discard, nil); err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: %.0f MB/s, %v (estimated %v)", filter, float64(p.VMs[0].Data)/time.Since(start).Seconds()/1e6, time.Since(start).Round(time.Millisecond), p.EstimatedDuration.Round(time.Millisecond))
			}
		})
	}
}

type byteCounter int64

func (c *byteCounter) Write(b []byte) (int, error) {
	*c += byteCounter(len(b))
	return len(b), nil
}

// The measured length of each file's tar stream is exact (the progress
// total), and never short for homes with names ustar cannot hold.
func TestTarSizes(t *testing.T) {
	h := demoHost(t)
	u, _ := h.Dom0()
	long := strings.Repeat("long directory name/", 8) + "file with a long name.txt"
	os.MkdirAll(filepath.Join(u.Home, filepath.Dir(long)), 0o755)
	os.WriteFile(filepath.Join(u.Home, long), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(u.Home, "Grüße → café.txt"), []byte("non-ASCII"), 0o644)
	os.Symlink(strings.Repeat("../", 60)+"target", filepath.Join(u.Home, "long link"))
	os.WriteFile(filepath.Join(u.Home, strings.Repeat("n", 150)), nil, 0o644)

	db, _ := h.Load()
	m := &measurer{ctx: t.Context(), h: h, keep: true, chunk: 1 << 20}
	for _, v := range mustPlan(t, h, testOptions(Destination{Path: "-"})).VMs {
		_, items, _, err := measureVM(m, db, v.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			var n byteCounter
			tw := sparsetar.NewWriter(&n)
			switch it.kind {
			case volumeFile:
				_, err = tw.AddVolume(it.Name, it.f)
			case smallFile:
				err = tw.AddBytes(it.Name, it.content, it.mode, it.mtime)
			case emptyFile:
				err = tw.AddBytes(it.Name, nil, 0o644, testTime)
			case homeTree:
				err = tw.AddTree(it.Name, it.Source)
			}
			if err == nil {
				err = tw.Close()
			}
			it.close()
			if err != nil {
				t.Fatal(err)
			}
			if it.kind == homeTree {
				if int64(n) > it.Data || int64(n) < it.Data-8<<10 {
					t.Errorf("%s: %d bytes, measured %d", it.Name, n, it.Data)
				}
			} else if int64(n) != it.Data {
				t.Errorf("%s: %d bytes, measured %d", it.Name, n, it.Data)
			}
		}
	}
}
