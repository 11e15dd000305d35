package legacy

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// core2 is the qubes.xml of Qubes R1 to R3.2: a root
// <QubesVmCollection> whose attributes hold the global settings (VMs by
// qid), and one empty element per VM named after its class, with every
// property as an attribute.

// core2DB is a parsed core2 qubes.xml.
type core2DB struct {
	attrs map[string]string
	vms   []*core2VM
}

// core2VM is one VM element.
type core2VM struct {
	class string // element name: QubesAppVm, QubesTemplateVm, ...
	attrs map[string]string
	qid   int
	name  string
}

func (v *core2VM) attr(name string) string { return v.attrs[name] }

// isNone is how core2 writes a missing VM reference or value.
func isNone(s string) bool { return s == "" || strings.EqualFold(s, "none") }

// core2Classes are the VM elements the reference client converts; others
// (QubesDisposableVm, which is never restored) are left out.
var core2Classes = map[string]bool{
	"QubesAdminVm": true, "QubesTemplateVm": true, "QubesTemplateHVm": true,
	"QubesAppVm": true, "QubesHVm": true, "QubesNetVm": true, "QubesProxyVm": true,
}

// maxCore2VMs bounds the VM elements (Qubes' qids end at 254 in R1, 10000 later).
const maxCore2VMs = 10000

// parseCore2 reads a core2 qubes.xml. Every VM element needs a unique qid
// and name.
func parseCore2(data []byte) (*core2DB, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: qubes.xml: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	db := &core2DB{}
	depth := 0
	qids, names := map[int]bool{}, map[string]bool{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bad("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			attrs := map[string]string{}
			for _, a := range t.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch {
			case depth == 1 && t.Name.Local != "QubesVmCollection":
				return nil, bad("root element is <%s>, want <QubesVmCollection>", t.Name.Local)
			case depth == 1:
				db.attrs = attrs
			case depth == 2 && core2Classes[t.Name.Local]:
				vm := &core2VM{class: t.Name.Local, attrs: attrs, name: attrs["name"]}
				vm.qid, err = strconv.Atoi(attrs["qid"])
				if err != nil || vm.qid < 0 || vm.qid >= maxCore2VMs || vm.name == "" {
					return nil, bad("<%s> has no valid qid and name", t.Name.Local)
				}
				if qids[vm.qid] || names[vm.name] {
					return nil, bad("two VMs with qid %d or name %s", vm.qid, elide.Quote(vm.name))
				}
				qids[vm.qid], names[vm.name] = true, true
				db.vms = append(db.vms, vm)
				if len(db.vms) > maxCore2VMs {
					return nil, bad("more than %d VMs", maxCore2VMs)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if db.attrs == nil {
		return nil, bad("no <QubesVmCollection>")
	}
	if db.dom0() == nil {
		// R1's files list no dom0 (format 1 finds its home by directory;
		// formats 2 and 3 wrote dom0 with its backup bookkeeping).
		db.vms = append([]*core2VM{{class: "QubesAdminVm", qid: 0, name: "dom0",
			attrs: map[string]string{"qid": "0", "name": "dom0", "label": "black"}}}, db.vms...)
	}
	return db, nil
}

func (db *core2DB) dom0() *core2VM { return db.byQid(0) }

func (db *core2DB) byQid(qid int) *core2VM {
	for _, vm := range db.vms {
		if vm.qid == qid {
			return vm
		}
	}
	return nil
}

// ref resolves a qid attribute value to a VM name: ok false when the
// value names no VM, name "" when it is None.
func (db *core2DB) ref(value string) (name string, ok bool) {
	if isNone(value) {
		return "", true
	}
	qid, err := strconv.Atoi(value)
	if err != nil {
		return "", false
	}
	if vm := db.byQid(qid); vm != nil {
		return vm.name, true
	}
	return "", false
}
