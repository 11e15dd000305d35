package qrexec

import "testing"

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
