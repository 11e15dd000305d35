package archive

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// segment is one member archive within the outer stream.
type segment struct {
	name             string
	start, data, end int // member archive start, data start, archive end
	size             int
}

func splitMembers(t testing.TB, data []byte) []segment {
	t.Helper()
	o := NewOuterReader(bytes.NewReader(data))
	var segs []segment
	for {
		before := o.offset + o.remain + o.pad
		name, size, err := o.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := len(segs); n > 0 {
			segs[n-1].end = int(before)
		}
		segs = append(segs, segment{name: name, start: int(o.offset) - blockSize, data: int(o.offset), size: int(size)})
	}
	segs[len(segs)-1].end = len(data)
	// A member archive starts right after the previous one ends.
	for i := 1; i < len(segs); i++ {
		segs[i].start = segs[i-1].start + int(memberArchiveSize(int64(segs[i-1].size)))
		segs[i-1].end = segs[i].start
	}
	return segs
}

func findSegment(t testing.TB, data []byte, name string) segment {
	t.Helper()
	for _, s := range splitMembers(t, data) {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no member %s", name)
	return segment{}
}

func memberOffset(t testing.TB, data []byte, name string) int {
	return findSegment(t, data, name).data
}

func memberSize(t testing.TB, data []byte, name string) int {
	return findSegment(t, data, name).size
}

// rebuild joins member archives, optionally dropping or replacing some.
func rebuild(t testing.TB, data []byte, edit func(name string, member []byte) [][]byte) []byte {
	var out []byte
	for _, s := range splitMembers(t, data) {
		for _, m := range edit(s.name, data[s.start:s.end]) {
			out = append(out, m...)
		}
	}
	return out
}

func TestTamperedArchives(t *testing.T) {
	fx := newFixture(t)
	good := fx.archive(t, testWriterOptions())
	other := fx.archive(t, testWriterOptions()) // same passphrase, another backup id

	flip := func(name string, at func(s segment) int) []byte {
		b := bytes.Clone(good)
		s := findSegment(t, b, name)
		b[at(s)] ^= 0x40
		return b
	}
	dataByte := func(off int) func(segment) int { return func(s segment) int { return s.data + off } }
	lastByte := func(s segment) int { return s.data + s.size - 1 }
	headerBlock := func(s segment) int { return s.data - blockSize + 10 }

	cases := []struct {
		name string
		data []byte
		pass string
		want error
	}{
		{"wrong passphrase", good, "wrong horse", ErrBadPassphrase},
		{"backup-header byte", flip(HeaderName, dataByte(3)), "", ErrCorrupt},
		{"backup-header.hmac magic", flip(HeaderHMACName, dataByte(0)), "", ErrCorrupt},
		{"backup-header.hmac salt", flip(HeaderHMACName, dataByte(20)), "", ErrCorrupt},
		{"backup-header.hmac header mac", flip(HeaderHMACName, dataByte(70)), "", ErrBadPassphrase},
		{"backup-header.hmac ciphertext", flip(HeaderHMACName, dataByte(100)), "", ErrCorrupt},
		{"qubes.xml chunk data", flip("qubes.xml.000.enc", dataByte(100)), "", ErrCorrupt},
		{"qubes.xml chunk header mac", flip("qubes.xml.000.enc", dataByte(70)), "", ErrChunkMismatch},
		{"volume chunk data", flip("vm1/private.img.001.enc", dataByte(5000)), "", ErrCorrupt},
		{"volume chunk trailer", flip("vm1/private.img.002.enc", lastByte), "", ErrCorrupt},
		{"volume chunk salt", flip("vm1/private.img.000.enc", dataByte(30)), "", ErrCorrupt},
		{"home chunk data", flip("dom0-home/user.000.enc", dataByte(200)), "", ErrCorrupt},
		{"manifest data", flip(ManifestName, dataByte(150)), "", ErrCorrupt},
		{"manifest hmac", flip(ManifestHMACName, dataByte(3)), "", ErrCorrupt},
		{"tar header of a chunk", flip("vm1/firewall.xml.000.enc", headerBlock), "", ErrCorrupt},
		{"chunk from another backup", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == "vm1/firewall.xml.000.enc" {
				s := findSegment(t, other, name)
				return [][]byte{other[s.start:s.end]}
			}
			return [][]byte{m}
		}), "", ErrChunkMismatch},
		{"chunks swapped in place", rebuild(t, good, func(name string, m []byte) [][]byte {
			// Contents of .001 under the name .002 and the other way round.
			swap := map[string]string{"vm1/private.img.001.enc": "vm1/private.img.002.enc", "vm1/private.img.002.enc": "vm1/private.img.001.enc"}
			if from, ok := swap[name]; ok {
				s := findSegment(t, good, from)
				c := bytes.Clone(good[s.start:s.end])
				copy(c[:blockSize], m[:blockSize]) // keep this member's tar header (name)
				return [][]byte{c}
			}
			return [][]byte{m}
		}), "", ErrChunkMismatch},
		{"chunks reordered", rebuild(t, good, func(name string, m []byte) [][]byte {
			switch name {
			case "vm1/private.img.001.enc":
				return nil
			case "vm1/private.img.002.enc":
				s := findSegment(t, good, "vm1/private.img.001.enc")
				return [][]byte{m, good[s.start:s.end]}
			}
			return [][]byte{m}
		}), "", ErrIncomplete},
		{"last chunk of a file dropped", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == lastChunkOf(t, good, "vm1/private.img") {
				return nil
			}
			return [][]byte{m}
		}), "", ErrIncomplete},
		{"whole file dropped", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == "vm1/firewall.xml.000.enc" {
				return nil
			}
			return [][]byte{m}
		}), "", ErrIncomplete},
		{"manifest dropped", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == ManifestName || name == ManifestHMACName {
				return nil
			}
			return [][]byte{m}
		}), "", ErrIncomplete},
		{"manifest hmac dropped", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == ManifestHMACName {
				return nil
			}
			return [][]byte{m}
		}), "", ErrIncomplete},
		{"manifest from another backup", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == ManifestName || name == ManifestHMACName {
				s := findSegment(t, other, name)
				return [][]byte{other[s.start:s.end]}
			}
			return [][]byte{m}
		}), "", ErrCorrupt},
		{"member after the manifest", append(bytes.Clone(good), good[findSegment(t, good, "vm1/firewall.xml.000.enc").start:findSegment(t, good, "vm1/firewall.xml.000.enc").end]...), "", ErrUnexpectedMember},
		{"file repeated", rebuild(t, good, func(name string, m []byte) [][]byte {
			if name == "vm2/empty.000.enc" {
				s := findSegment(t, good, "vm1/firewall.xml.000.enc")
				return [][]byte{m, good[s.start:s.end]}
			}
			return [][]byte{m}
		}), "", ErrUnexpectedMember},
		{"not a tar stream", []byte("hello, this is not an archive" + string(make([]byte, 1000))), "", ErrNotBackup},
		{"empty input", nil, "", ErrNotBackup},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := testReaderOptions()
			if c.pass != "" {
				opts.Passphrase = []byte(c.pass)
			}
			_, err := readArchive(t, bytes.NewReader(c.data), opts)
			t.Log(err)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v\nwant %v", err, c.want)
			}
		})
	}
}

func lastChunkOf(t testing.TB, data []byte, file string) string {
	last := ""
	for _, s := range splitMembers(t, data) {
		if f, _, err := parseChunkMember(s.name); err == nil && f == file {
			last = s.name
		}
	}
	return last
}

// A stream cut anywhere before the end of its last member is an error,
// never a clean read.
func TestTruncatedEverywhere(t *testing.T) {
	fx := newFixture(t)
	good := fx.archive(t, testWriterOptions())
	segs := splitMembers(t, good)
	last := segs[len(segs)-1]
	contentEnd := last.data + last.size
	step := 1531 // odd, so cuts land on and off block boundaries
	if testing.Short() {
		step = 7919
	}
	for cut := 0; cut < len(good); cut += step {
		_, err := readArchive(t, bytes.NewReader(good[:cut]), testReaderOptions())
		if cut < contentEnd {
			if err == nil {
				t.Fatalf("cut at %d of %d: read succeeded", cut, len(good))
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrIncomplete) && !errors.Is(err, ErrNotBackup) {
				t.Fatalf("cut at %d: unexpected error %v", cut, err)
			}
		} else if err != nil && !errors.Is(err, ErrTruncated) {
			// All content is there; a cut tar block may still be refused.
			t.Fatalf("cut at %d, in the final padding: %v", cut, err)
		}
	}
	// Also at every member boundary, where the tar structure itself is intact.
	for _, s := range segs[1:] {
		if _, err := readArchive(t, bytes.NewReader(good[:s.start]), testReaderOptions()); err == nil {
			t.Fatalf("cut before %s: read succeeded", s.name)
		}
	}
}
