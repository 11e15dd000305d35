package host

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// node is one XML element held whole. pedos.xml is kept as a tree of these
// and the typed accessors read and edit it in place, so whatever this
// package does not interpret (unknown elements and attributes, comments,
// the order of everything) survives a load and save unchanged.
type node struct {
	// Name is the name as written: Space is the prefix, not a namespace URL
	// (the tree is read with RawToken so that prefixes round-trip).
	Name    xml.Name
	Attrs   []xml.Attr
	Text    string // character data (kept exactly for leaf elements)
	Kids    []*node
	Comment bool // a comment; Text is its content
}

// textElements are written <e></e> rather than <e/> when empty, as lxml
// writes an element whose text was set to "" (a False feature, a None
// property), so the file reads like Qubes' own.
var textElements = map[string]bool{"property": true, "feature": true, "label": true, "option": true}

// maxTreeDepth bounds element nesting. Qubes' schema nests six deep; a
// backup's qubes.xml nested a million deep would cost recursion in clone
// and, in marshal's indentation, output quadratic in the depth (terabytes
// from a megabyte).
const maxTreeDepth = 64

func parseTree(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var root *node
	var stack []*node
	// Character data of the open elements, joined at their end: text split
	// by a million comments would be quadratic to join with +=.
	var texts [][]byte
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		var top *node
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{Name: t.Name, Attrs: append([]xml.Attr(nil), t.Attr...)}
			switch {
			case top != nil:
				top.Kids = append(top.Kids, n)
			case root != nil:
				line, _ := d.InputPos()
				return nil, fmt.Errorf("line %d: second root element <%s>", line, qname(t.Name))
			default:
				root = n
			}
			if len(stack) == maxTreeDepth {
				line, _ := d.InputPos()
				return nil, fmt.Errorf("line %d: elements nested more than %d deep", line, maxTreeDepth)
			}
			stack = append(stack, n)
			texts = append(texts, nil)
		case xml.EndElement:
			if top == nil || top.Name != t.Name {
				line, _ := d.InputPos()
				return nil, fmt.Errorf("line %d: unexpected </%s>", line, qname(t.Name))
			}
			top.Text = string(texts[len(texts)-1])
			stack, texts = stack[:len(stack)-1], texts[:len(texts)-1]
		case xml.CharData:
			if top != nil {
				texts[len(texts)-1] = append(texts[len(texts)-1], t...)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("text outside the root element")
			}
		case xml.Comment:
			if top != nil {
				top.Kids = append(top.Kids, &node{Comment: true, Text: string(t)})
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unexpected end of file inside <%s>", qname(stack[len(stack)-1].Name))
	}
	return root, nil
}

// marshal writes the tree the way lxml pretty-prints it: UTF-8, no
// declaration, two-space indent, a final newline.
func (n *node) marshal() []byte {
	var b bytes.Buffer
	n.write(&b, 0)
	return b.Bytes()
}

func (n *node) write(b *bytes.Buffer, depth int) {
	b.WriteString(strings.Repeat("  ", depth))
	if n.Comment {
		b.WriteString("<!--" + n.Text + "-->\n")
		return
	}
	b.WriteString("<" + qname(n.Name))
	for _, a := range n.Attrs {
		b.WriteString(" " + qname(a.Name) + `="`)
		xml.EscapeText(b, []byte(a.Value))
		b.WriteByte('"')
	}
	elems := 0
	for _, k := range n.Kids {
		if !k.Comment {
			elems++
		}
	}
	if len(n.Kids) == 0 {
		if n.Text == "" && !textElements[n.Name.Local] {
			b.WriteString("/>\n")
			return
		}
		b.WriteByte('>')
		xml.EscapeText(b, []byte(n.Text))
		b.WriteString("</" + qname(n.Name) + ">\n")
		return
	}
	b.WriteString(">\n")
	// Mixed content does not occur in qubes.xml; keep any text, trimmed,
	// ahead of the children rather than lose it.
	if t := strings.TrimSpace(n.Text); t != "" {
		b.WriteString(strings.Repeat("  ", depth+1))
		xml.EscapeText(b, []byte(t))
		b.WriteByte('\n')
	}
	for _, k := range n.Kids {
		k.write(b, depth+1)
	}
	b.WriteString(strings.Repeat("  ", depth) + "</" + qname(n.Name) + ">\n")
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

func (n *node) clone() *node {
	c := *n
	c.Attrs = append([]xml.Attr(nil), n.Attrs...)
	c.Kids = make([]*node, len(n.Kids))
	for i, k := range n.Kids {
		c.Kids[i] = k.clone()
	}
	return &c
}

func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *node) hasAttr(name string) bool {
	for _, a := range n.Attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return true
		}
	}
	return false
}

// setAttr replaces the attribute in place, or appends it.
func (n *node) setAttr(name, value string) {
	for i, a := range n.Attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			n.Attrs[i].Value = value
			return
		}
	}
	n.Attrs = append(n.Attrs, xml.Attr{Name: xml.Name{Local: name}, Value: value})
}

func (n *node) delAttr(name string) {
	for i, a := range n.Attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			n.Attrs = append(n.Attrs[:i], n.Attrs[i+1:]...)
			return
		}
	}
}

func isElem(k *node, local string) bool {
	return !k.Comment && k.Name.Space == "" && k.Name.Local == local
}

// child returns the first child element called local, or nil.
func (n *node) child(local string) *node {
	for _, k := range n.Kids {
		if isElem(k, local) {
			return k
		}
	}
	return nil
}

// children returns the child elements called local, in document order.
func (n *node) children(local string) []*node {
	var out []*node
	for _, k := range n.Kids {
		if isElem(k, local) {
			out = append(out, k)
		}
	}
	return out
}

// keyed returns the child element local whose attribute key is value.
func (n *node) keyed(local, key, value string) *node {
	for _, k := range n.Kids {
		if isElem(k, local) && k.attr(key) == value {
			return k
		}
	}
	return nil
}

// ensure returns the child element local, creating it if needed at its
// place in order (the writer's order of the known children): before the
// first known child that comes after it, else at the end.
func (n *node) ensure(local string, order []string) *node {
	if c := n.child(local); c != nil {
		return c
	}
	c := &node{Name: xml.Name{Local: local}}
	rank := func(s string) int {
		for i, o := range order {
			if o == s {
				return i
			}
		}
		return -1
	}
	me := rank(local)
	for i, k := range n.Kids {
		if !k.Comment && k.Name.Space == "" && rank(k.Name.Local) > me {
			n.insert(i, c)
			return c
		}
	}
	n.Kids = append(n.Kids, c)
	return c
}

func (n *node) insert(i int, c *node) {
	n.Kids = append(n.Kids, nil)
	copy(n.Kids[i+1:], n.Kids[i:])
	n.Kids[i] = c
}

func (n *node) remove(c *node) bool {
	for i, k := range n.Kids {
		if k == c {
			n.Kids = append(n.Kids[:i], n.Kids[i+1:]...)
			return true
		}
	}
	return false
}

func elem(local string, attrs ...string) *node {
	n := &node{Name: xml.Name{Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		n.setAttr(attrs[i], attrs[i+1])
	}
	return n
}

// checkText refuses what XML 1.0 cannot hold (the encoder would silently
// replace it): invalid UTF-8 and control characters other than tab, LF, CR.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return errorf(ErrInvalid, "%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return errorf(ErrInvalid, "%s contains control character %U", what, r)
		}
	}
	return nil
}
