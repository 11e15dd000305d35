// Package elide shortens text that came from outside (an archive's names,
// labels, paths) before it goes into a message: a 100 KB VM name must not
// fill the terminal, nor hide the message around it.
package elide

import (
	"strconv"
	"unicode/utf8"
)

// Max is how many characters of such text a message shows.
const Max = 64

// Quote is strconv.Quote(s), cut after Max characters with the length of
// the whole added outside the quotes, so that the cut cannot be taken for
// part of the text: "aaaa…" would be ambiguous, "aaaa"… (100000 bytes)
// is not.
func Quote(s string) string {
	if utf8.RuneCountInString(s) <= Max {
		return strconv.Quote(s)
	}
	return strconv.Quote(cut(s)) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// String is s, cut after Max characters with "…" added, for text shown
// unquoted (a name in a table or after "VM ").
func String(s string) string {
	if utf8.RuneCountInString(s) <= Max {
		return s
	}
	return cut(s) + "…"
}

func cut(s string) string {
	n := 0
	for i := range s {
		if n == Max {
			return s[:i]
		}
		n++
	}
	return s
}
