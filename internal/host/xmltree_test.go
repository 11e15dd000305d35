package host

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseDBErrors(t *testing.T) {
	for _, in := range []string{
		``, `<qubes>`, `<qubes></domains>`, `<qubes/><qubes/>`, `text<qubes/>`, `<QubesVmCollection/>`,
		`<qubes><a></b></qubes>`, `<qubes>&nbsp;</qubes>`,
	} {
		if _, err := ParseDB([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", in, err)
		}
	}
	// A declaration and a DOCTYPE are accepted (and not written back).
	db, err := ParseDB([]byte("<?xml version='1.0' encoding='UTF-8'?>\n<!DOCTYPE qubes>\n<qubes><domains/></qubes>"))
	if err != nil || string(db.Marshal()) != "<qubes>\n  <domains/>\n</qubes>\n" {
		t.Errorf("%v %q", err, db.Marshal())
	}
}

// Hand-edited databases that break the rules are refused by Update with an
// error naming the problem, and nothing is written.
func TestValidateHandEdited(t *testing.T) {
	for _, c := range []struct{ find, replace, want string }{
		{`<property name="qid">5</property>`, `<property name="qid">4</property>`, "two VMs with qid 4"},
		{`<property name="name">vault</property>`, `<property name="name">work</property>`, "two VMs named work"},
		{`class="StandaloneVM"`, `class="HVM"`, `unknown class "HVM"`},
		{`<property name="label">label-8</property>
        <property name="netvm"></property>`, `<property name="netvm"></property>`, "vault: label: VM has no label"},
		{`<property name="netvm">sys-firewall</property>`, `<property name="netvm">ghost</property>`, `work: netvm: no VM named "ghost"`},
		{`<property name="vcpus">4</property>`, `<property name="vcpus">four</property>`, `work: vcpus: "four" is not a number`},
		{`<property name="default_netvm">sys-firewall</property>`, `<property name="default_netvm">work</property>`, "global default_netvm: work does not provide network"},
	} {
		h := demoHost(t)
		data := readFile(t, h.path(DBFile))
		if !bytes.Contains(data, []byte(c.find)) {
			t.Fatalf("demo has no %q", c.find)
		}
		broken := bytes.Replace(data, []byte(c.find), []byte(c.replace), 1)
		if err := os.WriteFile(h.path(DBFile), broken, 0o660); err != nil {
			t.Fatal(err)
		}
		err := h.Update(func(db *DB) error { return mustDomain(t, db, "dom0").SetFeature("x", "1") })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v", c.want, err)
		}
		if !bytes.Equal(readFile(t, h.path(DBFile)), broken) {
			t.Errorf("%s: file rewritten", c.want)
		}
	}
}

func TestTreeKeepsEscapesAndOrder(t *testing.T) {
	in := "<qubes a=\"x &quot;y&quot; &lt;z&gt;\" b=\"tab&#9;nl&#10;\">\n  <properties>\n    <property name=\"p\">a &amp; b</property>\n  </properties>\n  <zzz/>\n  <labels/>\n</qubes>\n"
	db, err := ParseDB([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out := db.Marshal()
	if d := diffLines(canonical(t, []byte(in)), canonical(t, out)); d != "" {
		t.Fatal(d)
	}
	// A new child goes to its place among the known ones; unknown ones stay.
	if err := db.SetGlobalProp("clockvm", ""); err != nil {
		t.Fatal(err)
	}
	db.root.ensure("pools", topOrder)
	var names []string
	for _, k := range db.root.Kids {
		names = append(names, k.Name.Local)
	}
	if got := strings.Join(names, " "); got != "pools properties zzz labels" {
		t.Errorf("children %s", got)
	}
}
