package elide

import (
	"strings"
	"testing"
)

func TestElide(t *testing.T) {
	a64 := strings.Repeat("a", 64)
	for in, want := range map[string]string{
		"work":                      `"work"`,
		a64:                         `"` + a64 + `"`,
		a64 + "b":                   `"` + a64 + `"… (65 bytes)`,
		strings.Repeat("a", 100000): `"` + a64 + `"… (100000 bytes)`,
		strings.Repeat("ä", 70):     `"` + strings.Repeat("ä", 64) + `"… (140 bytes)`,
		"tab\there":                 `"tab\there"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%.20q) = %.80s, want %.80s", in, got, want)
		}
	}
	if got := String(a64 + "bc"); got != a64+"…" {
		t.Errorf("String = %q", got)
	}
	if got := String("work"); got != "work" {
		t.Errorf("String = %q", got)
	}
}
