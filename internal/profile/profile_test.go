package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, root, name, text string, perm os.FileMode) string {
	t.Helper()
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(text), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRoundTrip(t *testing.T) {
	root := t.TempDir()
	for i, p := range []Profile{
		{DestinationVM: "dom0", DestinationPath: "/backups"},
		{DestinationVM: "dom0", DestinationPath: "/backups", Include: []string{}},
		{DestinationVM: "sys-usb", DestinationPath: "cat > /media/disk/backup-$(date +%F)",
			Include: []string{"work", "dom0", "@tag:backup", "@type:AppVM"}, Exclude: []string{"@tag:scratch", "untrusted"},
			Compression: Compression{Filter: "xz"}, Passphrase: []byte("correct horse battery staple"), ScryptLogN: 14},
		{DestinationVM: "dom0", DestinationPath: "/b", Compression: Compression{Off: true}, Passphrase: []byte(" padded ")},
		{DestinationVM: "dom0", DestinationPath: "/b", Incremental: true},
		{DestinationVM: "sys-backup", DestinationPath: "s3://b/laptop/", Incremental: true, IncrementalBase: "full", FullEvery: 3},
	} {
		name := fmt.Sprintf("p%d", i)
		if err := Save(root, name, p); err != nil {
			t.Fatalf("Save %v: %v", p, err)
		}
		got, err := Load(root, name)
		if err != nil {
			t.Fatalf("Load %v: %v", p, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, p)
		}
	}
	// Passphrases YAML would read as something else unless quoted.
	for _, pass := range []string{"yes", "123", "null", "~", "a: b", "#x", "abc #def", "- x", "'\"", "@x", "*x", "&x", "!x", "%x", "{x", "[x", "a\\b", "ü ", "0x10", "1e3", "<<"} {
		p := Profile{DestinationVM: "dom0", DestinationPath: "/b", Passphrase: []byte(pass)}
		if err := Save(root, "pass", p); err != nil {
			t.Fatalf("Save %q: %v", pass, err)
		}
		got, err := Load(root, "pass")
		if err != nil || string(got.Passphrase) != pass {
			t.Errorf("passphrase %q came back as %q, %v", pass, got.Passphrase, err)
		}
	}
}

// The file has the reference's shape: keys sorted, exclude only when
// non-empty, include: null for the default selection.
func TestSavedText(t *testing.T) {
	root := t.TempDir()
	p := Profile{DestinationVM: "backup-vm", DestinationPath: "/home/user", Include: []string{"work", "$tag:x"},
		Exclude: []string{"untrusted"}, Compression: Compression{Filter: "xz"}, Passphrase: []byte("s3cret pass")}
	if err := Save(root, "daily", p); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "backup-profiles", "daily.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := `compression: xz
destination_path: /home/user
destination_vm: backup-vm
exclude:
  - untrusted
include:
  - work
  - '@tag:x'
passphrase_text: s3cret pass
`
	if string(data) != want {
		t.Errorf("saved:\n%s\nwant:\n%s", data, want)
	}
	if err := Save(root, "plain", Profile{DestinationVM: "dom0", DestinationPath: "/b"}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(root, "backup-profiles", "plain.yaml"))
	if want := "compression: true\ndestination_path: /b\ndestination_vm: dom0\ninclude: null\n"; string(data) != want {
		t.Errorf("saved:\n%s\nwant:\n%s", data, want)
	}
	// PedOS's own keys, in the same sorted order.
	chained := Profile{DestinationVM: "dom0", DestinationPath: "/b", Incremental: true, IncrementalBase: "full", FullEvery: 3, ScryptLogN: 14}
	if err := Save(root, "chained", chained); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(root, "backup-profiles", "chained.yaml"))
	if want := "compression: true\ndestination_path: /b\ndestination_vm: dom0\nfull_every: 3\ninclude: null\nincremental: true\nincremental_base: full\nscrypt_logn: 14\n"; string(data) != want {
		t.Errorf("saved:\n%s\nwant:\n%s", data, want)
	}
}

// A profile as the reference's qvm-backup writes it (PyYAML safe_dump),
// and one written by hand the way its documentation shows, load unchanged.
func TestReferenceProfiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, "ref", `compression: true
destination_path: /var/tmp
destination_vm: dom0
exclude:
- sys-net
- $type:DispVM
include: null
passphrase_text: qwe123
`, 0o600)
	p, err := Load(root, "ref")
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{DestinationVM: "dom0", DestinationPath: "/var/tmp", Exclude: []string{"sys-net", "@type:DispVM"},
		Passphrase: []byte("qwe123")}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %#v\nwant %#v", p, want)
	}
	write(t, root, "hand", `# my daily backup
include:
  - work
  - personal
destination_vm: sys-usb
destination_path: "/media/disk"
compression: 'xz'   # smaller
exclude: []
`, 0o644)
	p, err = Load(root, "hand")
	if err != nil {
		t.Fatal(err)
	}
	want = Profile{DestinationVM: "sys-usb", DestinationPath: "/media/disk", Include: []string{"work", "personal"},
		Compression: Compression{Filter: "xz"}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %#v\nwant %#v", p, want)
	}
	for text, want := range map[string]Compression{
		"true": {}, "True": {}, "false": {Off: true}, "no": {Off: true}, "yes": {}, "OFF": {Off: true},
		"gzip": {Filter: "gzip"}, "'no'": {Filter: "no"}, "zstd": {Filter: "zstd"},
	} {
		write(t, root, "c", "destination_vm: dom0\ndestination_path: /b\ninclude:\ncompression: "+text+"\n", 0o600)
		p, err := Load(root, "c")
		if err != nil || p.Compression != want {
			t.Errorf("compression: %s = %#v, %v; want %#v", text, p.Compression, err, want)
		}
	}
	if (Compression{}).FilterName() != "gzip" || (Compression{Off: true}).FilterName() != "none" ||
		(Compression{Filter: "xz"}).FilterName() != "xz" || (Compression{Off: true}).Enabled() {
		t.Error("Compression methods")
	}
}

func TestStrictErrors(t *testing.T) {
	const head = "destination_vm: dom0\ndestination_path: /b\ninclude: null\n" // lines 1-3
	for _, tc := range []struct {
		text string
		line int
		want string // in the message
		err  error
		hint string // in the hint
	}{
		{head + "destination_mv: x\n", 4, `unknown key "destination_mv" (did you mean destination_vm?); valid keys: compression, destination_path, destination_vm, exclude, full_every, include, incremental, incremental_base, passphrase_text, scrypt_logn`, ErrInvalid, ""},
		{head + "incremental: yes please\n", 4, "incremental must be true or false, but it is a string", ErrInvalid, ""},
		{head + "incremental: true\nincremental_base: first\n", 5, `incremental_base: "first" is neither last nor full`, ErrInvalid, ""},
		{head + "incremental: true\nfull_every: 0\n", 5, "full_every: 0 out of range (1-1000)", ErrInvalid, ""},
		{head + "incremental: true\nfull_every: 1001\n", 5, "out of range", ErrInvalid, ""},
		{head + "incremental: true\nfull_every: often\n", 5, "full_every must be a whole number from 1 to 1000, but it is a string", ErrInvalid, ""},
		{head + "full_every: 3\n", 4, "incremental_base and full_every need incremental: true", ErrInvalid, ""},
		{head + "incremental: false\nincremental_base: full\n", 5, "need incremental: true", ErrInvalid, ""},
		{head + "passphrase: x\n", 4, `unknown key "passphrase" (did you mean passphrase_text?)`, ErrInvalid, ""},
		{head + "Compression-Filter: xz\n", 4, `unknown key "Compression-Filter" (did you mean compression?); valid keys:`, ErrInvalid, ""},
		{head + "foo: 1\n", 4, `unknown key "foo"; valid keys:`, ErrInvalid, ""},
		{head + "\n\nexclude: work\n", 6, "exclude must be a list of VM names, but it is a string", ErrInvalid, "exclude: [work]"},
		{"destination_vm: dom0\ndestination_path: /b\ninclude: work\n", 3, "include must be a list of VM names", ErrInvalid, "or null for the default selection"},
		{"destination_vm: 42\ndestination_path: /b\ninclude: null\n", 1, "destination_vm must be a string, but it is a number", ErrInvalid, "quote the value"},
		{"destination_vm: [a]\ndestination_path: /b\ninclude: null\n", 1, "destination_vm must be a string, but it is a list", ErrInvalid, ""},
		{"destination_vm:\ndestination_path: /b\ninclude: null\n", 1, "destination_vm must be a string, but it is empty", ErrInvalid, ""},
		{"destination_vm: 'my vm'\ndestination_path: /b\ninclude: null\n", 1, `destination_vm: invalid VM name "my vm"`, ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: relative/dir\ninclude: null\n", 2, "not an absolute path", ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: \"/b\\n\"\ninclude: null\n", 2, "control character", ErrInvalid, ""},
		{head + "compression: [xz]\n", 4, "compression must be true, false or a filter name", ErrInvalid, ""},
		{head + "compression: 9\n", 4, "compression must be true, false or a filter name such as xz, but it is a number", ErrInvalid, ""},
		{head + "compression: xz -9\n", 4, `compression: "xz -9" is not a filter name`, ErrInvalid, ""},
		{head + "compression: /usr/bin/xz\n", 4, "is not a filter name", ErrInvalid, ""},
		{head + "exclude:\n  - work\n  - 'bad name'\n", 6, `exclude: invalid VM name "bad name"`, ErrInvalid, ""},
		{head + "exclude:\n  - work\n  - 7\n", 6, "exclude entry must be a string, but it is a number", ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: /b\ninclude:\n  - 'work*'\n", 4, "wildcards are not expanded", ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: /b\ninclude: ['@type:AppVm']\n", 3, "unknown VM class", ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: /b\ninclude: ['@label:red']\n", 3, "unknown selector", ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: /b\ninclude: ['@tag:a b']\n", 3, "invalid tag name", ErrInvalid, ""},
		{head + "passphrase_text: \"two\\nlines\"\n", 4, "passphrase_text: unusable passphrase: it contains a control character (U+000A)", ErrInvalid, ""},
		{head + "passphrase_text: |\n  line\n", 4, "control character (U+000A)", ErrInvalid, ""},
		{head + "passphrase_text: \"tab\\there\"\n", 4, "control character (U+0009)", ErrInvalid, ""},
		{head + "passphrase_text: ''\n", 4, "it is empty", ErrInvalid, ""},
		{head + "passphrase_text:\n", 4, "passphrase_text must be a string, but it is empty", ErrInvalid, "remove passphrase_text"},
		{head + "passphrase_text: 123456\n", 4, "passphrase_text must be a string, but it is a number", ErrInvalid, "quote the passphrase"},
		{head + "passphrase_text: abc #def\n", 4, "passphrase_text is followed by a comment", ErrInvalid, ""},
		{head + "passphrase_vm: vault\n", 4, "passphrase_vm is not supported", ErrUnsupported, "passphrase_text"},
		{head + "scrypt_logn: 9\n", 4, "scrypt_logn: 9 out of range (10-40)", ErrInvalid, ""},
		{head + "scrypt_logn: 300\n", 4, "out of range", ErrInvalid, ""},
		{head + "scrypt_logn: 0\n", 4, "out of range", ErrInvalid, ""},
		{head + "scrypt_logn: high\n", 4, "scrypt_logn must be a whole number from 10 to 40, but it is a string", ErrInvalid, ""},
		{head + "scrypt_logn: 2026-01-02\n", 4, "scrypt_logn must be a whole number from 10 to 40, but it is a date", ErrInvalid, ""},
		{head + "scrypt_logn: 14.5\n", 4, "but it is a number", ErrInvalid, ""},
		{head + "destination_vm: dom0\n", 4, "destination_vm is given twice (first at line 1)", ErrInvalid, ""},
		{head + "exclude: &x [a]\n", 4, "anchors and aliases", ErrInvalid, ""},
		{head + "---\nfoo: 1\n", 4, "a second YAML document", ErrInvalid, ""},
		{"destination_vm: dom0\ndestination_path: /b\n", 0, "missing key include", ErrInvalid, "include: null"},
		{"destination_path: /b\ninclude: null\n", 0, "missing key destination_vm", ErrInvalid, ""},
		{"destination_vm: dom0\ninclude: null\n", 0, "missing key destination_path", ErrInvalid, ""},
		{"", 0, "the file is empty", ErrInvalid, ""},
		{"# only a comment\n", 0, "the file is empty", ErrInvalid, ""},
		{"- a\n- b\n", 1, `a profile is a list of "key: value" lines`, ErrInvalid, ""},
		{"destination_vm: dom0\n  destination_path: /b\n", 0, "not valid YAML: line 2:", ErrInvalid, ""},
		{"[1, 2]: x\n", 1, "keys must be words", ErrInvalid, ""},
	} {
		root := t.TempDir()
		path := write(t, root, "p", tc.text, 0o600)
		_, err := Load(root, "p")
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%q: err = %v, want a *profile.Error", tc.text, err)
			continue
		}
		if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.want) || !errors.Is(err, tc.err) || !strings.Contains(pe.Hint, tc.hint) {
			t.Errorf("%q:\n got line %d %q (hint %q, %v)\nwant line %d %q (hint %q, %v)", tc.text, pe.Line, pe.Msg, pe.Hint, pe.Err, tc.line, tc.want, tc.hint, tc.err)
		}
		prefix := fmt.Sprintf("backup profile %s, line %d: ", path, tc.line)
		if tc.line == 0 {
			prefix = fmt.Sprintf("backup profile %s: ", path)
		}
		if !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("%q: message %q does not start with %q", tc.text, err, prefix)
		}
		if strings.Contains(err.Error()+pe.Hint, "123456") {
			t.Errorf("%q: the message repeats the passphrase: %v / %s", tc.text, err, pe.Hint)
		}
	}
}

func TestValidateOnSave(t *testing.T) {
	root := t.TempDir()
	for _, p := range []Profile{
		{},
		{DestinationVM: "dom0"},
		{DestinationVM: "dom0", DestinationPath: "rel"},
		{DestinationVM: "dom0", DestinationPath: "/b", Include: []string{"a*"}},
		{DestinationVM: "dom0", DestinationPath: "/b", Exclude: []string{""}},
		{DestinationVM: "dom0", DestinationPath: "/b", Compression: Compression{Off: true, Filter: "xz"}},
		{DestinationVM: "dom0", DestinationPath: "/b", Compression: Compression{Filter: "xz -9"}},
		{DestinationVM: "dom0", DestinationPath: "/b", Passphrase: []byte("a\nb")},
		{DestinationVM: "dom0", DestinationPath: "/b", Passphrase: []byte{}},
		{DestinationVM: "dom0", DestinationPath: "/b", ScryptLogN: 41},
		{DestinationVM: "dom0", DestinationPath: "/b", FullEvery: 3},
		{DestinationVM: "dom0", DestinationPath: "/b", Incremental: true, IncrementalBase: "first"},
		{DestinationVM: "dom0", DestinationPath: "/b", Incremental: true, FullEvery: -1},
	} {
		if err := Save(root, "x", p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Save(%v) = %v, want ErrInvalid", p, err)
		}
	}
	if names, _ := List(root); len(names) != 0 {
		t.Errorf("invalid profiles were written: %v", names)
	}
}

func TestModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := t.TempDir()
	dir := filepath.Join(root, Dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := Profile{DestinationVM: "dom0", DestinationPath: "/b", Passphrase: []byte("pass")}
	if err := Save(root, "m", p); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{dir: 0o700 | fs.ModeDir, filepath.Join(dir, "m.yaml"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}

	// A readable profile with a passphrase is refused, like an ssh key.
	path := filepath.Join(dir, "m.yaml")
	for _, perm := range []fs.FileMode{0o640, 0o604, 0o644, 0o666} {
		os.Chmod(path, perm)
		_, err := Load(root, "m")
		var pe *Error
		if !errors.Is(err, ErrInsecure) || !errors.As(err, &pe) || pe.Hint != "chmod 600 "+path ||
			!strings.Contains(err.Error(), fmt.Sprintf("other users may read it (mode %04o)", perm)) {
			t.Errorf("mode %v: %v (hint %v)", perm, err, pe)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := Load(root, "m"); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	// Without a passphrase there is nothing to protect.
	write(t, root, "open", "destination_vm: dom0\ndestination_path: /b\ninclude: null\n", 0o644)
	if _, err := Load(root, "open"); err != nil {
		t.Errorf("readable profile without passphrase: %v", err)
	}
	// Saving over a loose file leaves a 0600 one.
	os.Chmod(path, 0o666)
	if err := Save(root, "m", p); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("resaved mode %v", fi.Mode())
	}
}

func TestAtomicWrite(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, Dir)
	listDir := func() []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	first := Profile{DestinationVM: "dom0", DestinationPath: "/first"}
	if err := Save(root, "a", first); err != nil {
		t.Fatal(err)
	}
	if got := listDir(); !reflect.DeepEqual(got, []string{"a.yaml"}) {
		t.Errorf("after Save: %v", got)
	}

	// While the new file is being written, the old one is intact and the
	// temporary file is already private.
	defer func() { testHookBeforeRename = nil }()
	var seen bool
	testHookBeforeRename = func(tmp string) error {
		seen = true
		if fi, err := os.Stat(tmp); err != nil || fi.Mode() != 0o600 || filepath.Dir(tmp) != dir {
			t.Errorf("temporary file %s: %v %v", tmp, fi, err)
		}
		if p, err := Load(root, "a"); err != nil || p.DestinationPath != "/first" {
			t.Errorf("old profile during the write: %v %v", p, err)
		}
		return nil
	}
	second := Profile{DestinationVM: "dom0", DestinationPath: "/second", Passphrase: []byte("x")}
	if err := Save(root, "a", second); err != nil || !seen {
		t.Fatal(err, seen)
	}
	if p, _ := Load(root, "a"); p.DestinationPath != "/second" {
		t.Errorf("after replace: %v", p)
	}

	// A failure before the rename leaves the old profile and no temp file.
	testHookBeforeRename = func(string) error { return errors.New("disk full") }
	if err := Save(root, "a", first); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Save with failing write: %v", err)
	}
	testHookBeforeRename = nil
	if p, _ := Load(root, "a"); p.DestinationPath != "/second" {
		t.Errorf("after a failed Save: %v", p)
	}
	// A failing rename (the target is a non-empty directory) too.
	os.MkdirAll(filepath.Join(dir, "b.yaml", "x"), 0o700)
	if err := Save(root, "b", first); err == nil {
		t.Error("Save over a directory succeeded")
	}
	if got := listDir(); !reflect.DeepEqual(got, []string{"a.yaml", "b.yaml"}) {
		t.Errorf("left behind: %v", got)
	}
}

func TestNames(t *testing.T) {
	root := t.TempDir()
	p := Profile{DestinationVM: "dom0", DestinationPath: "/b"}
	for _, name := range []string{"daily", "a", "0", "work-2024.01_x", strings.Repeat("n", 100)} {
		if err := Save(root, name, p); err != nil {
			t.Errorf("Save(%q): %v", name, err)
		}
		if _, err := Load(root, name); err != nil {
			t.Errorf("Load(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", ".hidden", "-x", "_x", "a/b", "../x", "/etc/passwd", "a b", "a\nb", "ü", strings.Repeat("n", 101)} {
		if err := Save(root, name, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Save(%q) = %v, want ErrInvalid", name, err)
		}
		if _, err := Load(root, name); !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%q) = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Path("", "x"); err == nil {
		t.Error("Path with no root")
	}
}

func TestListLoadMissingRemove(t *testing.T) {
	root := t.TempDir()
	if names, err := List(root); err != nil || names != nil {
		t.Errorf("List of nothing: %v %v", names, err)
	}
	_, err := Load(root, "nope")
	var pe *Error
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || !strings.Contains(err.Error(), `no backup profile named "nope"`) || pe.Hint != "" {
		t.Errorf("Load of a missing profile: %v", err)
	}
	p := Profile{DestinationVM: "dom0", DestinationPath: "/b"}
	for _, n := range []string{"weekly", "daily"} {
		if err := Save(root, n, p); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, Dir, "notes.txt"), nil, 0o600)
	os.WriteFile(filepath.Join(root, Dir, ".daily.yaml.tmp-123"), nil, 0o600)
	if names, err := List(root); err != nil || !reflect.DeepEqual(names, []string{"daily", "weekly"}) {
		t.Errorf("List = %v, %v", names, err)
	}
	_, err = Load(root, "dayly")
	if !errors.As(err, &pe) || pe.Hint != "saved profiles: daily, weekly" {
		t.Errorf("Load of a misspelt profile: %v %+v", err, pe)
	}
	if err := Remove(root, "daily"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(root, "daily"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if names, _ := List(root); !reflect.DeepEqual(names, []string{"weekly"}) {
		t.Errorf("after Remove: %v", names)
	}
}

func TestPassphraseRedacted(t *testing.T) {
	p := Profile{DestinationVM: "dom0", DestinationPath: "/b", Passphrase: []byte("hunter2")}
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("run", "profile", p)
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), fmt.Sprintf("%s", p), b.String()} {
		if strings.Contains(s, "hunter2") || !strings.Contains(s, "REDACTED") {
			t.Errorf("passphrase shown: %s", s)
		}
	}
	if !p.HasPassphrase() || (Profile{}).HasPassphrase() {
		t.Error("HasPassphrase")
	}
}
