package backup

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/scryptenc"
)

// archiveDB returns the backup's qubes.xml: the host's database with the
// backup features (backup-content, backup-path, backup-size), on a copy; whole, or with only
// the backed-up VMs and those they (or the globals) name.
func archiveDB(db *host.DB, vms []PlannedVM, incomplete map[string]bool, selectedOnly bool) ([]byte, error) {
	db = db.Clone()
	if selectedOnly {
		keepNamed(db, vms)
	}
	for _, d := range db.Domains() {
		if err := d.SetFeature("backup-content", ""); err != nil {
			return nil, err
		}
	}
	for _, v := range vms {
		d, err := db.Domain(v.Name)
		if err != nil {
			return nil, err
		}
		content := "1"
		if incomplete[v.Name] {
			content = "" // the reference restore then offers nothing rather than a delta as a volume
		}
		for _, f := range [][2]string{{"backup-content", content}, {"backup-path", v.Path}, {"backup-size", strconv.FormatInt(v.Size, 10)}} {
			if err := d.SetFeature(f[0], f[1]); err != nil {
				return nil, err
			}
		}
		// Preloaded disposables are run-time state of the old host.
		for _, f := range d.Features() {
			if strings.HasPrefix(f.Name, "preload-dispvm") && f.Name != "preload-dispvm-max" {
				d.DeleteFeature(f.Name)
			}
		}
	}
	return db.Marshal(), nil
}

// keepNamed removes from db the VMs that no backed-up VM names, directly or
// through other kept VMs, and that no global property names.
func keepNamed(db *host.DB, vms []PlannedVM) {
	keep := map[string]bool{}
	var todo []string
	add := func(name string) {
		if !keep[name] {
			keep[name] = true
			todo = append(todo, name)
		}
	}
	for _, v := range vms {
		add(v.Name)
	}
	for _, p := range db.GlobalProps() {
		if host.IsRefGlobal(p.Name) && p.Value != "" {
			add(p.Value)
		}
	}
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if d, err := db.Domain(name); err == nil {
			for _, r := range d.Refs() {
				add(r)
			}
		}
	}
	db.KeepDomains(func(d *host.Domain) bool { return keep[d.Name()] })
}

// Outer tar framing (doc/format.md §2.1): every member is its own tar
// archive padded to a 10240-byte record.
const recordSize = 10240

func memberSize(n int64) int64 {
	return roundUp(blockSize+roundUp(n, blockSize)+2*blockSize, recordSize)
}

// encMembers is the outer size of the chunks of a compressed stream of at
// most c bytes, and their number.
func encMembers(c, chunk int64) (size, chunks int64) {
	full := c / chunk
	return full*memberSize(chunk+scryptenc.Overhead) + memberSize(c%chunk+scryptenc.Overhead), full + 1
}

// Assumed rates of reading, compressing and encrypting data, in bytes per
// second, for the duration estimate. Measured on 2 cores with data in the
// page cache (BenchmarkRun): none 1.2 GB/s; gzip and zstd 400 MB/s on
// text, 1.2 GB/s on incompressible data. The rates assumed here leave room
// for reading from disk; bzip2 and xz are the single-threaded programs.
var assumedRates = map[string]float64{
	"none":  500e6,
	"gzip":  300e6,
	"zstd":  300e6,
	"bzip2": 10e6,
	"xz":    3e6,
}

const otherRate = 20e6 // an unknown compression program

// kdfSeconds is the time of one scrypt key derivation on one core: 0.72 s
// at logN 18, r 8, p 1 (doc/reference.md, derivation time), proportional to N·r·p.
func kdfSeconds(p scryptenc.Params) float64 {
	return 0.72 * math.Pow(2, float64(int(p.LogN)-18)) * float64(p.R) / 8 * float64(p.P)
}

// estimate sets EstimatedArchiveSize and EstimatedDuration.
func (p *Plan) estimate(db *host.DB) error {
	xml, err := archiveDB(db, p.VMs, nil, p.opts.SelectedMetadataOnly)
	if err != nil {
		return err
	}
	chunk := p.chunkSize()
	compressed := p.Compression != "none"
	// backup-header and its .hmac are under 4 KiB each.
	size, chunks := encMembers(archive.CompressedBound(tarFileSize(archive.QubesXMLName, int64(len(xml)), 0o644, time.Time{}), compressed), chunk)
	size += 2 * recordSize
	manifest := int64(128)
	var data int64
	for _, v := range p.VMs {
		data += v.Data
		for _, f := range v.Files {
			s, n := encMembers(f.bound, chunk)
			size += s
			chunks += n
			manifest += 64 + int64(len(f.Name)) + 160*n
		}
	}
	size += memberSize(manifest) + recordSize // pedos-manifest and its .hmac
	p.EstimatedArchiveSize = size

	rate, ok := assumedRates[p.Compression]
	if !ok {
		rate = otherRate
	}
	kdf := kdfSeconds(p.Scrypt)
	secs := max(float64(data)/rate, float64(chunks)*kdf/float64(runtime.GOMAXPROCS(0))) + kdf
	p.EstimatedDuration = time.Duration(secs * float64(time.Second))
	return nil
}
