package restore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/qrexec"
)

func TestMain(m *testing.M) {
	qrexec.MaybeServe()
	os.Exit(m.Run())
}

var (
	testPass = []byte("correct horse battery staple")
	testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
)

// demoHost makes a demo host whose dom0 user is "user".
func demoHost(t *testing.T) *host.Host {
	t.Helper()
	h, err := host.Demo(filepath.Join(t.TempDir(), "root"), host.InitOptions{User: "user"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var (
	demoOnce    sync.Once
	demoArchive []byte
	demoSource  string // root of the host it was made from
	demoErr     error
)

// goodArchive is a backup of a demo host (every VM it backs up by default
// and the dom0 home), made once.
func goodArchive(t *testing.T) ([]byte, *host.Host) {
	t.Helper()
	demoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "restore-test-")
		if err != nil {
			demoErr = err
			return
		}
		h, err := host.Demo(filepath.Join(dir, "root"), host.InitOptions{User: "user"})
		if err != nil {
			demoErr = err
			return
		}
		demoSource = h.Root()
		out := filepath.Join(dir, "backup")
		p, err := backup.NewPlan(t.Context(), h, backup.Options{ScryptLogN: 10, Passphrase: testPass,
			Destination: backup.Destination{Path: out}, Now: func() time.Time { return testTime }})
		if err == nil {
			err = p.Err()
		}
		if err == nil {
			_, err = backup.Run(t.Context(), p, nil, nil)
		}
		if err == nil {
			demoArchive, err = os.ReadFile(out)
		}
		demoErr = err
	})
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	h, err := host.Open(demoSource)
	if err != nil {
		t.Fatal(err)
	}
	return demoArchive, h
}

func openBackup(t *testing.T, data []byte) *Backup {
	t.Helper()
	b, err := Open(t.Context(), bytes.NewReader(data), OpenOptions{Passphrase: testPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// emptyHost is a host with only dom0, of dom0 user user.
func emptyHost(t *testing.T, user string) *host.Host {
	t.Helper()
	h, err := host.Init(filepath.Join(t.TempDir(), "root"), host.InitOptions{User: user, Home: filepath.Join(t.TempDir(), user)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// member is one member archive of the outer stream.
type member struct {
	name string
	data []byte // the whole member archive
	body []byte // its content
}

// splitArchive cuts the outer stream into its member archives: a ustar
// header, the content padded to 512 bytes, two zero blocks, all padded to
// 10240 bytes (format.md §1).
func splitArchive(t *testing.T, data []byte) []member {
	t.Helper()
	var out []member
	for off := 0; off < len(data); {
		h := data[off : off+512]
		if bytes.Equal(h, make([]byte, 512)) {
			break
		}
		name := cstr(h[0:100])
		if p := cstr(h[345:500]); p != "" {
			name = p + "/" + name
		}
		size, err := strconv.ParseInt(strings.TrimSpace(cstr(h[124:136])), 8, 64)
		if err != nil {
			t.Fatal(err)
		}
		n := 512 + (size+511)/512*512 + 1024
		n = (n + 10239) / 10240 * 10240
		out = append(out, member{name: name, data: data[off : off+int(n)], body: data[off+512 : off+512+int(size)]})
		off += int(n)
	}
	return out
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// rebuild joins the member archives that keep accepts.
func rebuild(ms []member, keep func(name string) bool) []byte {
	var out []byte
	for _, m := range ms {
		if keep(m.name) {
			out = append(out, m.data...)
		}
	}
	return out
}

func wantErr(t *testing.T, err, target error, words ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

func codes(pv *PlannedVM) string {
	var s []string
	for _, p := range pv.Problems {
		s = append(s, string(p.Code))
	}
	return fmt.Sprint(s)
}
