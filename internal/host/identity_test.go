package host

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// identityHost is a host with a template and two AppVMs, app (qid 2) and
// web (qid 3).
func identityHost(t *testing.T) *Host {
	t.Helper()
	h := newHost(t)
	if err := h.CreateVM("tpl", TemplateVM, VMOptions{Label: "black"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app", "web"} {
		if err := h.CreateVM(name, AppVM, VMOptions{Label: "red", Template: "tpl"}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// A database with an entry made ambiguous by another (edited by hand) is
// refused when read, naming both entries; no tool can act on it, and
// nothing is written or removed.
func TestAmbiguousDatabaseRefused(t *testing.T) {
	uuidRE := regexp.MustCompile(`<property name="uuid">([^<]*)</property>`)
	cases := []struct {
		name string
		edit func(s string) string
		want []string // all in the error
	}{
		{"VM renamed to another's name", func(s string) string {
			return strings.Replace(s, `<property name="name">web</property>`, `<property name="name">app</property>`, 1)
		}, []string{"two VMs named app", "<domain> #3 (app, qid 2)", "<domain> #4 (app, qid 3)"}},
		{"qid taken twice", func(s string) string {
			return strings.Replace(s, `<property name="qid">3</property>`, `<property name="qid">2</property>`, 1)
		}, []string{"two VMs with qid 2", "<domain> #3 (app, qid 2)", "<domain> #4 (web, qid 2)"}},
		{"uuid taken twice", func(s string) string {
			u := uuidRE.FindAllStringSubmatch(s, -1)
			return strings.Replace(s, u[2][0], `<property name="uuid">`+strings.ToUpper(u[1][1])+`</property>`, 1)
		}, []string{"two VMs with uuid", "<domain> #3 (app, qid 2)", "<domain> #4 (web, qid 3)"}},
		{"second AdminVM", func(s string) string {
			return strings.Replace(s, `<domain id="domain-3" class="AppVM">`, `<domain id="domain-3" class="AdminVM">`, 1)
		}, []string{"two AdminVM entries", "<domain> #1 (dom0, qid 0)", "<domain> #4 (dom0, qid 3)"}},
		{"VM called dom0", func(s string) string {
			return strings.Replace(s, `<property name="name">web</property>`, `<property name="name">dom0</property>`, 1)
		}, []string{"<domain> #4 (dom0, qid 3) is an AppVM called dom0; only the AdminVM is dom0"}},
		{"no AdminVM", func(s string) string {
			return strings.Replace(s, `class="AdminVM"`, `class="StandaloneVM"`, 1)
		}, []string{"no AdminVM entry (dom0)"}},
		{"pool declared twice", func(s string) string {
			return strings.Replace(s, `</pools>`, `  <pool name="varlibpedos" driver="lvm_thin" volume_group="vg" thin_pool="pool"/>
  </pools>`, 1)
		}, []string{`two storage pools named "varlibpedos": <pool> #1 (driver file) and <pool> #2 (driver lvm_thin)`}},
		{"label id declared twice", func(s string) string {
			return strings.Replace(s, `</labels>`, `  <label id="label-6" color="0x000080">navy</label>
  </labels>`, 1)
		}, []string{`two labels with id "label-6": <label> #6 (label-6, blue) and <label> #9 (label-6, navy)`}},
		{"label name declared twice", func(s string) string {
			return strings.Replace(s, `</labels>`, `  <label id="label-9" color="0x000080">blue</label>
  </labels>`, 1)
		}, []string{`two labels named "blue": <label> #6 (label-6, blue) and <label> #9 (label-9, blue)`}},
		{"second domains section", func(s string) string {
			return strings.Replace(s, `</qubes>`, "  <domains/>\n</qubes>", 1)
		}, []string{"<domains> appears 2 times"}},
		{"volume declared twice", func(s string) string {
			v := regexp.MustCompile(`\s*<volume name="private" pool="varlibpedos" vid="appvms/app/private"[^>]*/>`).FindString(s)
			return strings.Replace(s, v, v+v, 1)
		}, []string{"<domain> #3 (app, qid 2): volume private is declared twice (entries #2 and #3)"}},
		{"property declared twice", func(s string) string {
			return strings.Replace(s, `<property name="name">app</property>`,
				`<property name="name">app</property><property name="netvm"></property><property name="netvm">web</property>`, 1)
		}, []string{"<domain> #3 (app, qid 2): property netvm is declared twice"}},
		{"global property declared twice", func(s string) string {
			return strings.Replace(s, `<property name="default_pool">varlibpedos</property>`,
				`<property name="default_pool">varlibpedos</property><property name="default_pool">other</property>`, 1)
		}, []string{"global property default_pool is declared twice (entries #1 and #2)"}},
		{"feature declared twice", func(s string) string {
			return strings.Replace(s, `<feature name="f">1</feature>`, `<feature name="f">1</feature><feature name="f"></feature>`, 1)
		}, []string{"<domain> #3 (app, qid 2): feature f is declared twice"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := identityHost(t)
			if err := h.Update(func(db *DB) error { return mustDomain(t, db, "app").SetFeature("f", "1") }); err != nil {
				t.Fatal(err)
			}
			orig := string(readFile(t, h.path(DBFile)))
			broken := c.edit(orig)
			if broken == orig {
				t.Fatal("the edit changed nothing")
			}
			if err := os.WriteFile(h.path(DBFile), []byte(broken), 0o660); err != nil {
				t.Fatal(err)
			}
			_, err := h.Load()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), h.path(DBFile)+": ") {
				t.Errorf("error %q does not name the file", err)
			}
			// Nothing acts on it: not a removal, not an update.
			if err := h.RemoveVM("app"); !errors.Is(err, ErrInvalid) {
				t.Errorf("RemoveVM: %v", err)
			}
			if err := h.Update(func(*DB) error { return nil }); !errors.Is(err, ErrInvalid) {
				t.Errorf("Update: %v", err)
			}
			if _, err := h.Volumes("web"); !errors.Is(err, ErrInvalid) {
				t.Errorf("Volumes: %v", err)
			}
			if !bytes.Equal(readFile(t, h.path(DBFile)), []byte(broken)) {
				t.Error("pedos.xml changed")
			}
			for _, img := range []string{"appvms/app/private.img", "appvms/web/private.img", "vm-templates/tpl/root.img"} {
				if !exists(h.path(img)) {
					t.Errorf("%s removed", img)
				}
			}
		})
	}
}

// The same checks hold for a qubes.xml read on its own (a backup's).
func TestParseDBRefusesAmbiguity(t *testing.T) {
	for _, in := range []string{
		`<qubes><domains><domain class="AppVM" id="domain-1"><properties><property name="name">a</property></properties></domain>` +
			`<domain class="AppVM" id="domain-2"><properties><property name="name">a</property></properties></domain></domains></qubes>`,
		`<qubes><domains><domain class="AdminVM" id="domain-0"/><domain class="AdminVM" id="domain-0"/></domains></qubes>`,
		`<qubes><labels/><labels/></qubes>`,
	} {
		if _, err := ParseDB([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", in, err)
		}
	}
	// No dom0 is the host's own rule: a backup's qubes.xml is read.
	if _, err := ParseDB([]byte(`<qubes><domains/></qubes>`)); err != nil {
		t.Error(err)
	}
}
