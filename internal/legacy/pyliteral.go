package legacy

import (
	"fmt"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// core2 qubes.xml keeps two attributes as Python literals: services, a dict
// such as "{'meminfo-writer': True}", and pcidevs, a list such as
// "['02:00.0']". This reads the subset Python's repr produces for them:
// strings, True, False, None, integers, flat lists and dicts.

type pyParser struct {
	s   string
	pos int
}

func (p *pyParser) skipSpace() {
	for p.pos < len(p.s) && strings.ContainsRune(" \t\n\r", rune(p.s[p.pos])) {
		p.pos++
	}
}

func (p *pyParser) fail(what string) error {
	return fmt.Errorf("Python literal %s: %s at offset %d", elide.Quote(p.s), what, p.pos)
}

// expect consumes c after optional spaces.
func (p *pyParser) expect(c byte) bool {
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// scalar reads a string, True, False, None (nil) or an integer (int64).
func (p *pyParser) scalar() (any, error) {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return nil, p.fail("value expected")
	}
	if q := p.s[p.pos]; q == '\'' || q == '"' {
		return p.str(q)
	}
	start := p.pos
	for p.pos < len(p.s) && isWordByte(p.s[p.pos]) {
		p.pos++
	}
	switch word := p.s[start:p.pos]; word {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	default:
		if n, err := strconv.ParseInt(word, 10, 64); err == nil {
			return n, nil
		}
	}
	p.pos = start
	return nil, p.fail("value expected")
}

func isWordByte(c byte) bool {
	return c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// str reads a quoted string with the escapes repr uses for ASCII text.
func (p *pyParser) str(q byte) (string, error) {
	var b strings.Builder
	for p.pos++; p.pos < len(p.s); p.pos++ {
		c := p.s[p.pos]
		switch {
		case c == q:
			p.pos++
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.s):
			p.pos++
			switch e := p.s[p.pos]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '\\', '\'', '"':
				b.WriteByte(e)
			default:
				return "", p.fail("unsupported escape")
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", p.fail("unterminated string")
}

func (p *pyParser) end() error {
	p.skipSpace()
	if p.pos != len(p.s) {
		return p.fail("trailing text")
	}
	return nil
}

// parsePyList reads a flat list of strings.
func parsePyList(s string) ([]string, error) {
	p := &pyParser{s: s}
	if !p.expect('[') {
		return nil, p.fail("'[' expected")
	}
	var out []string
	for !p.expect(']') {
		if len(out) > 0 && !p.expect(',') {
			return nil, p.fail("',' expected")
		}
		if p.expect(']') { // a trailing comma
			break
		}
		v, err := p.scalar()
		if err != nil {
			return nil, err
		}
		str, ok := v.(string)
		if !ok {
			return nil, p.fail("string expected")
		}
		out = append(out, str)
	}
	return out, p.end()
}

// pyItem is one key and value of a dict, in file order.
type pyItem struct {
	key   string
	value any // string, bool, int64 or nil
}

// parsePyDict reads a flat dict with string keys.
func parsePyDict(s string) ([]pyItem, error) {
	p := &pyParser{s: s}
	if !p.expect('{') {
		return nil, p.fail("'{' expected")
	}
	var out []pyItem
	for !p.expect('}') {
		if len(out) > 0 && !p.expect(',') {
			return nil, p.fail("',' expected")
		}
		if p.expect('}') {
			break
		}
		k, err := p.scalar()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, p.fail("string key expected")
		}
		if !p.expect(':') {
			return nil, p.fail("':' expected")
		}
		v, err := p.scalar()
		if err != nil {
			return nil, err
		}
		out = append(out, pyItem{key, v})
	}
	return out, p.end()
}
