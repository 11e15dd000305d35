package legacy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"pedos.dev/backup/internal/testutil"
)

// The procedures of doc/emergency-restore.md for formats 3 and 2, taken
// from the document as its marked bash blocks, recover archives made as
// the reference writers made them, byte for byte.

// procedure returns the bash block between <!-- emergency-<name>:begin -->
// and its end marker, without the code fence.
func procedure(t *testing.T, name string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "doc", "emergency-restore.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "<!-- emergency-"+name+":begin -->":
			in = true
		case line == "<!-- emergency-"+name+":end -->":
			if len(lines) < 2 || lines[0] != "```bash" || lines[len(lines)-1] != "```" {
				t.Fatalf("the %s block is not one fenced bash block", name)
			}
			return strings.Join(lines[1:len(lines)-1], "\n")
		case in:
			lines = append(lines, line)
		}
	}
	t.Fatalf("no marked %s procedure in doc/emergency-restore.md", name)
	return ""
}

// runProcedure runs a procedure on backup in a new directory, as
// scripts/emergency-restore.sh runs the format 4 one.
func runProcedure(t *testing.T, script string, backup []byte, pass string) (string, []byte, error) {
	t.Helper()
	for _, tool := range []string{"bash", "tar", "openssl", "gzip", "sed", "sort", "find", "xargs", "od", "head", "wc", "tr"} {
		testutil.RequireTool(t, tool)
	}
	path := filepath.Join(t.TempDir(), "qubes-backup")
	if err := os.WriteFile(path, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = out
	cmd.Env = append(os.Environ(), "BACKUP="+path, "PASS="+pass)
	res, err := cmd.CombinedOutput()
	return out, res, err
}

func checkSparseImage(t *testing.T, path string) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= st.Size {
		t.Errorf("%s: %d bytes allocated for %d: holes were not kept", path, st.Blocks*512, st.Size)
	}
}

func TestEmergencyFormat3(t *testing.T) {
	requireTools(t)
	script := procedure(t, "v3")
	fx := newFixture(t)
	for _, tc := range []struct {
		name              string
		encrypt, compress bool
		l                 layout
	}{
		{"encrypted+gzip", true, true, hiddenLayout()},
		{"plain", false, false, readableLayout()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 3)
			b.Encrypt, b.Compress = tc.encrypt, tc.compress
			archive := b.backup(fx, tc.l)
			out, res, err := runProcedure(t, script, archive, testPass)
			if err != nil {
				t.Fatalf("procedure failed: %v\n%s", err, res)
			}
			checkRecovered(t, fx, tc.l, out, 3)
			checkSparseImage(t, filepath.Join(out, tc.l.work, "private.img"))
			if xml, err := os.ReadFile(filepath.Join(out, "qubes.xml")); err != nil || string(xml) != core2XML(tc.l) {
				t.Errorf("qubes.xml not recovered: %v", err)
			}
			if _, res, err := runProcedure(t, script, archive, "wrong"); err == nil || !strings.Contains(string(res), "HMAC mismatch for backup-header") {
				t.Errorf("wrong passphrase: %v\n%s", err, res)
			}
		})
	}
}

func TestEmergencyFormat2(t *testing.T) {
	requireTools(t)
	script := procedure(t, "v2")
	fx := newFixture(t)
	for _, tc := range []struct {
		name                    string
		encrypt, compress, zlib bool
		header                  bool
		digest                  string
		l                       layout
	}{
		{"header+encrypted", true, false, false, true, "sha1", hiddenLayout()},
		{"header+gzip", false, true, false, true, "sha512", readableLayout()},
		{"no header, encrypted", true, false, false, false, "md5", hiddenLayout()},
		{"no header, encrypted -z", true, true, true, false, "md5", hiddenLayout()},
		{"no header, plain", false, false, false, false, "sha1", readableLayout()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.zlib {
				testutil.RequireTool(t, "python3")
			}
			b := newBuilder(t, 2)
			b.Encrypt, b.Compress, b.Digest = tc.encrypt, tc.compress, tc.digest
			b.NoHeader = !tc.header
			archive := b.backup(fx, tc.l)
			out, res, err := runProcedure(t, script, archive, testPass)
			if err != nil {
				t.Fatalf("procedure failed: %v\n%s", err, res)
			}
			checkRecovered(t, fx, tc.l, out, 2)
			checkSparseImage(t, filepath.Join(out, tc.l.work, "private.img"))
			if xml, err := os.ReadFile(filepath.Join(out, "qubes.xml")); err != nil || string(xml) != core2XML(tc.l) {
				t.Errorf("qubes.xml not recovered: %v", err)
			}
			if _, res, err := runProcedure(t, script, archive, "wrong"); err == nil || !strings.Contains(string(res), "HMAC mismatch") {
				t.Errorf("wrong passphrase: %v\n%s", err, res)
			}
		})
	}
}
