package qrexec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFirstWord(t *testing.T) {
	for line, want := range map[string]string{
		"dd of=x":            "dd",
		"  \tcat":            "cat",
		`sh -c 'cat > x'`:    "sh",
		`'/my dir/prog' arg`: "/my dir/prog",
		`"/my \"dir\"/p\x"`:  `/my "dir"/p\x`,
		`a\ b c`:             "a b",
		"prog;rm -rf /":      "prog",
		"prog|cat":           "prog",
		"prog>out":           "prog",
		`pre'fix'"ed"`:       "prefixed",
		"/home/user/backups": "/home/user/backups",
		"FOO=1 prog":         "FOO=1",
		"":                   "",
	} {
		if got, err := firstWord(line); err != nil || got != want {
			t.Errorf("firstWord(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	for _, line := range []string{`'open`, `"open`, `a"b\"`} {
		if got, err := firstWord(line); err == nil {
			t.Errorf("firstWord(%q) = %q, want an error", line, got)
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"  plain error\n":       "plain error",
		"two\nlines\tand tab":   "two\nlines\tand tab",
		"\x1b[31mred\x1b[0m":    "?[31mred?[0m",
		"bidi \u202e override":  "bidi ? override",
		"bad \xff byte, ok é":   "bad ? byte, ok é",
		"nul\x00 and \r return": "nul? and ? return",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	var tb tailBuffer
	for range 1000 {
		tb.Write([]byte("0123456789"))
	}
	tb.Write([]byte("the end"))
	s := tb.String()
	if len(s) > stderrLimit+3 || s[:3] != "..." || s[len(s)-7:] != "the end" {
		t.Errorf("tail %d bytes: %.20q...%q", len(s), s, s[len(s)-10:])
	}
}

// A VM's listing is untrusted: anything but plain entries fails the call.
func TestReadBrowseRejects(t *testing.T) {
	for _, reply := range []string{
		"dir - a\n",                  // no end
		"dir - ../x\nend\n",          // not one path element
		"file 1 a/b\nend\n",          // nor this
		"dir - ..\nend\n",            //
		"file 1 a\x1b[31mred\nend\n", // a terminal escape
		"file -5 a\nend\n",           // a negative size
		"file x a\nend\n",            // no size
		"link - a\nend\n",            // an unknown kind
		"dir 3 a\nend\n",             // a directory with a size
		"file 1 \xff\xfe\nend\n",     // not UTF-8
		"file 1 " + strings.Repeat("n", 256) + "\nend\n", // too long a name
		strings.Repeat("file 1 a\n", maxBrowseEntries+1) + "end\n",
	} {
		if entries, err := readBrowse(bufio.NewReader(strings.NewReader(reply))); err == nil {
			t.Errorf("readBrowse(%.40q) = %v, want an error", reply, entries)
		}
	}
	entries, err := readBrowse(bufio.NewReader(strings.NewReader("dir - a b\nfile 7 c\nend\n")))
	if err != nil || len(entries) != 2 || entries[0] != (BrowseEntry{Name: "a b", Dir: true}) || entries[1] != (BrowseEntry{Name: "c", Size: 7}) {
		t.Errorf("readBrowse: %v, %v", entries, err)
	}
}

// The frames reader gives the data of every frame, in order, whether it
// comes from the buffer the location line was read through or straight
// from the stream, in reads of any size; a stream cut anywhere before its
// end marker is errTruncated.
func TestFrames(t *testing.T) {
	var stream, data bytes.Buffer
	stream.WriteString("/home/user/backups\n")
	for i, size := range []int{1, 3, 70000, 0} {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(size))
		stream.Write(hdr[:])
		chunk := bytes.Repeat([]byte{byte('a' + i)}, size)
		stream.Write(chunk)
		data.Write(chunk)
	}
	whole := stream.Bytes()
	read := func(b []byte, oneByte bool) ([]byte, error) {
		var raw io.Reader = bytes.NewReader(b)
		if oneByte {
			raw = iotest.OneByteReader(raw)
		}
		in := bufio.NewReaderSize(raw, 64<<10)
		if _, err := readLocation(in); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := copyFrames(&out, &frames{in: in, raw: raw})
		return out.Bytes(), err
	}
	for _, oneByte := range []bool{false, true} {
		if got, err := read(whole, oneByte); err != nil || !bytes.Equal(got, data.Bytes()) {
			t.Fatalf("one byte at a time %v: %v, %d bytes of %d", oneByte, err, len(got), data.Len())
		}
		for _, cut := range []int{len(whole) - 4, len(whole) - 5, len(whole) - 70000, 20, 22} {
			if _, err := read(whole[:cut], oneByte); err != errTruncated {
				t.Errorf("cut at %d (one byte at a time %v): %v", cut, oneByte, err)
			}
		}
	}
}
