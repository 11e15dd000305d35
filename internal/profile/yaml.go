package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The keys, in the sorted order the reference writes them.
const (
	keyCompression = "compression"
	keyDestPath    = "destination_path"
	keyDestVM      = "destination_vm"
	keyExclude     = "exclude"
	keyInclude     = "include"
	keyPassphrase  = "passphrase_text"
	keyPassVM      = "passphrase_vm"
	keyLogN        = "scrypt_logn"
	keyIncremental = "incremental"
	keyBase        = "incremental_base"
	keyFullEvery   = "full_every"
)

// Keys lists the keys a profile may have.
var Keys = []string{"compression", "destination_path", "destination_vm", "exclude", "full_every", "include", "incremental", "incremental_base", "passphrase_text", "scrypt_logn"}

// problem is something wrong at a line of a profile (0: the whole file).
type problem struct {
	line int
	msg  string
	hint string
	err  error // the sentinel: ErrInvalid or ErrUnsupported
}

func invalid(line int, format string, a ...any) *problem {
	return &problem{line: line, msg: fmt.Sprintf(format, a...), err: ErrInvalid}
}

// yaml11Bools are the plain scalars PyYAML (YAML 1.1), which reads and
// writes the reference's profiles, takes for booleans while YAML 1.2 takes
// them for strings. For compression they must stay booleans: "yes" is not
// a filter program.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// parse reads a profile strictly: every key known and given once, every
// value of its type and valid.
func parse(data []byte) (Profile, *problem) {
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return p, invalid(0, "the file is empty")
		}
		return p, invalid(0, "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return p, invalid(next.Line, "a second YAML document is not allowed")
	} else if !errors.Is(err, io.EOF) {
		return p, invalid(0, "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return p, invalid(0, "the file is empty")
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return p, invalid(m.Line, "a profile is a list of \"key: value\" lines (%s)", strings.Join(Keys, ", "))
	}

	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return p, invalid(k.Line, "keys must be words such as destination_vm")
		}
		key := k.Value
		if prev := seen[key]; prev != nil {
			return p, invalid(k.Line, "%s is given twice (first at line %d)", key, prev.Line)
		}
		seen[key] = k
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			return p, invalid(v.Line, "%s: YAML anchors and aliases (&name, *name) are not supported", key)
		}
		var pr *problem
		switch key {
		case keyDestVM:
			p.DestinationVM, pr = str(key, v)
			if pr == nil {
				pr = at(v.Line, key, checkDestVM(p.DestinationVM))
			}
		case keyDestPath:
			p.DestinationPath, pr = str(key, v) // checked below, with destination_vm
		case keyInclude:
			p.Include, pr = selectors(key, v, true)
		case keyExclude:
			p.Exclude, pr = selectors(key, v, false)
		case keyCompression:
			p.Compression, pr = compression(v)
		case keyPassphrase:
			p.Passphrase, pr = passphrase(v)
		case keyPassVM:
			pr = &problem{line: k.Line, err: ErrUnsupported,
				msg:  "passphrase_vm is not supported: PedOS does not ask a VM for the passphrase",
				hint: "remove passphrase_vm to be asked for the passphrase when the backup runs, or give it as passphrase_text"}
		case keyLogN:
			p.ScryptLogN, pr = logN(v)
		case keyIncremental:
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&p.Incremental) != nil {
				pr = invalid(v.Line, "incremental must be true or false, but it is %s", kindName(v))
			}
		case keyBase:
			p.IncrementalBase, pr = str(key, v)
			if pr == nil {
				pr = at(v.Line, key, checkBase(p.IncrementalBase))
			}
		case keyFullEvery:
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&p.FullEvery) != nil {
				pr = invalid(v.Line, "full_every must be a whole number from 1 to %d, but it is %s", maxFullEvery, kindName(v))
			} else if p.FullEvery == 0 {
				pr = invalid(v.Line, "full_every: 0 out of range (1-%d); remove the key for the default", maxFullEvery)
			} else {
				pr = at(v.Line, key, checkFullEvery(p.FullEvery))
			}
		default:
			pr = &problem{line: k.Line, err: ErrInvalid,
				msg: fmt.Sprintf("unknown key %q%s; valid keys: %s", key, suggest(key), strings.Join(Keys, ", "))}
		}
		if pr != nil {
			return p, pr
		}
	}
	for _, key := range []string{keyDestVM, keyDestPath, keyInclude} {
		if seen[key] == nil {
			pr := invalid(0, "missing key %s", key)
			if key == keyInclude {
				pr.hint = "write \"include: null\" to back up the default selection of VMs"
			}
			return p, pr
		}
	}
	if pr := at(seen[keyDestPath].Line, keyDestPath, checkDestPath(p.DestinationVM, p.DestinationPath)); pr != nil {
		return p, pr
	}
	if !p.Incremental {
		for _, key := range []string{keyBase, keyFullEvery} {
			if k := seen[key]; k != nil {
				return p, invalid(k.Line, "%s", chainKeysAlone)
			}
		}
	}
	return p, nil
}

// at turns a check's message into a problem at line.
func at(line int, key, msg string) *problem {
	if msg == "" {
		return nil
	}
	return invalid(line, "%s: %s", key, msg)
}

func kindName(v *yaml.Node) string {
	switch v.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	switch v.ShortTag() {
	case "!!null":
		return "empty"
	case "!!bool":
		return "a boolean"
	case "!!int", "!!float":
		return "a number"
	case "!!str":
		return "a string"
	case "!!timestamp":
		return "a date"
	case "!!binary":
		return "binary data"
	}
	return "a YAML " + strings.TrimPrefix(v.ShortTag(), "!!")
}

func str(key string, v *yaml.Node) (string, *problem) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		pr := invalid(v.Line, "%s must be a string, but it is %s", key, kindName(v))
		if v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" {
			pr.hint = fmt.Sprintf("quote the value: %s: '%s'", key, v.Value)
		}
		return "", pr
	}
	return v.Value, nil
}

func selectors(key string, v *yaml.Node, nullable bool) ([]string, *problem) {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		pr := invalid(v.Line, "%s must be a list of VM names, but it is %s", key, kindName(v))
		pr.hint = fmt.Sprintf("write a list: %s: [%s]", key, v.Value)
		if nullable {
			pr.hint += ", or null for the default selection"
		}
		return nil, pr
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		if e.Kind == yaml.AliasNode || e.Anchor != "" {
			return nil, invalid(e.Line, "%s: YAML anchors and aliases (&name, *name) are not supported", key)
		}
		s, pr := str(key+" entry", e)
		if pr != nil {
			return nil, pr
		}
		s, msg := checkSelector(s)
		if pr := at(e.Line, key, msg); pr != nil {
			return nil, pr
		}
		out = append(out, s)
	}
	if len(out) == 0 && !nullable {
		return nil, nil // exclude: [] is no exclusion, like null
	}
	return out, nil
}

func compression(v *yaml.Node) (Compression, *problem) {
	bad := func() *problem {
		return invalid(v.Line, "compression must be true, false or a filter name such as xz, but it is %s", kindName(v))
	}
	if v.Kind != yaml.ScalarNode {
		return Compression{}, bad()
	}
	switch v.ShortTag() {
	case "!!bool":
		var b bool
		if err := v.Decode(&b); err != nil {
			return Compression{}, bad()
		}
		return Compression{Off: !b}, nil
	case "!!str":
		if b, ok := yaml11Bools[v.Value]; ok && v.Style == 0 {
			return Compression{Off: !b}, nil
		}
		return Compression{Filter: v.Value}, at(v.Line, keyCompression, checkFilter(v.Value))
	}
	return Compression{}, bad()
}

func passphrase(v *yaml.Node) ([]byte, *problem) {
	s, pr := str(keyPassphrase, v)
	if pr != nil {
		// Never repeat the value: messages end up in logs.
		pr.hint = "quote the passphrase: passphrase_text: '...'"
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			pr.hint = "remove passphrase_text to be asked for the passphrase when the backup runs"
		}
		return nil, pr
	}
	// In "passphrase_text: abc #def" YAML drops " #def" as a comment: the
	// backup would be encrypted with "abc" while its owner remembers
	// "abc #def".
	if v.Style == 0 && v.LineComment != "" {
		return nil, &problem{line: v.Line, err: ErrInvalid,
			msg:  "passphrase_text is followed by a comment; if the '#' is part of the passphrase, quote it",
			hint: "passphrase_text: 'the whole passphrase # with the hash sign'"}
	}
	if pr := at(v.Line, keyPassphrase, checkPassphrase([]byte(s))); pr != nil {
		return nil, pr
	}
	return []byte(s), nil
}

func logN(v *yaml.Node) (int, *problem) {
	var n int
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&n) != nil {
		return 0, invalid(v.Line, "scrypt_logn must be a whole number from 10 to 40, but it is %s", kindName(v))
	}
	if n == 0 {
		return 0, invalid(v.Line, "scrypt_logn: 0 out of range (10-40); remove the key for the default")
	}
	return n, at(v.Line, keyLogN, checkLogN(n))
}

// suggest names the valid key closest to a misspelt one, if any is close.
func suggest(key string) string {
	best, bestD := "", 3
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	for _, k := range append(Keys[:len(Keys):len(Keys)], keyPassVM) {
		d := distance(norm, k)
		if len(norm) >= 5 && (strings.HasPrefix(k, norm) || strings.HasPrefix(norm, k)) {
			d = min(d, 2) // "passphrase" for passphrase_text
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// marshal writes p as the reference does: keys sorted, exclude only when
// non-empty, passphrase_text only when known; plus the PedOS keys when
// set.
func marshal(p Profile) ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) {
		m.Content = append(m.Content, strNode(key), v)
	}
	switch {
	case p.Compression.Off:
		add(keyCompression, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"})
	case p.Compression.Filter == "":
		add(keyCompression, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	default:
		add(keyCompression, strNode(p.Compression.Filter))
	}
	add(keyDestPath, strNode(p.DestinationPath))
	add(keyDestVM, strNode(p.DestinationVM))
	if len(p.Exclude) > 0 {
		add(keyExclude, listNode(p.Exclude))
	}
	if p.FullEvery != 0 {
		add(keyFullEvery, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(p.FullEvery)})
	}
	if p.Include == nil {
		add(keyInclude, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"})
	} else {
		add(keyInclude, listNode(p.Include))
	}
	if p.Incremental {
		add(keyIncremental, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	if p.IncrementalBase != "" {
		add(keyBase, strNode(p.IncrementalBase))
	}
	if p.Passphrase != nil {
		add(keyPassphrase, strNode(string(p.Passphrase)))
	}
	if p.ScryptLogN != 0 {
		add(keyLogN, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(p.ScryptLogN)})
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func listNode(l []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range l {
		if c, _ := checkSelector(s); c != "" {
			s = c
		}
		n.Content = append(n.Content, strNode(s))
	}
	return n
}
