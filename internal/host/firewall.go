package host

import (
	"strconv"
	"strings"
)

// FirewallRule is one rule of a VM's firewall.xml (Qubes R4 format:
// <firewall version="2"><rules><rule><properties><property name=..>).
// Empty fields are not written.
type FirewallRule struct {
	Action        string // accept or drop; required
	Proto         string // tcp, udp, icmp
	DstHost       string // host name, IP address or network
	DstPorts      string // port or range "N-M"; tcp and udp only
	SpecialTarget string // dns
	ICMPType      string // icmp only
	Expire        string // Unix time when the rule lapses
	Comment       string
}

func (r *FirewallRule) fields() []struct {
	name string
	v    *string
} {
	return []struct {
		name string
		v    *string
	}{
		{"action", &r.Action}, {"proto", &r.Proto}, {"dsthost", &r.DstHost}, {"dstports", &r.DstPorts},
		{"specialtarget", &r.SpecialTarget}, {"icmptype", &r.ICMPType}, {"expire", &r.Expire}, {"comment", &r.Comment},
	}
}

func (r FirewallRule) check() error {
	bad := func(f string, a ...any) error {
		return errorf(ErrInvalid, "firewall rule: "+f, a...)
	}
	port := func(s string) bool { n, err := strconv.Atoi(s); return err == nil && n >= 1 && n <= 65535 }
	switch {
	case r.Action != "accept" && r.Action != "drop":
		return bad("action %q (want accept or drop)", r.Action)
	case r.Proto != "" && r.Proto != "tcp" && r.Proto != "udp" && r.Proto != "icmp":
		return bad("proto %q (want tcp, udp or icmp)", r.Proto)
	case r.DstPorts != "" && r.Proto != "tcp" && r.Proto != "udp":
		return bad("dstports needs proto tcp or udp")
	case r.ICMPType != "" && r.Proto != "icmp":
		return bad("icmptype needs proto icmp")
	case r.SpecialTarget != "" && r.SpecialTarget != "dns":
		return bad("specialtarget %q (want dns)", r.SpecialTarget)
	case strings.ContainsAny(r.DstHost, " \t\r\n"):
		return bad("dsthost %q", r.DstHost)
	}
	if r.DstPorts != "" {
		lo, hi, isRange := strings.Cut(r.DstPorts, "-")
		if !port(lo) || isRange && !port(hi) {
			return bad("dstports %q", r.DstPorts)
		}
	}
	for _, s := range []string{r.ICMPType, r.Expire} {
		if _, err := strconv.ParseUint(s, 10, 64); s != "" && err != nil {
			return bad("%q is not a number", s)
		}
	}
	for _, f := range r.fields() {
		if err := checkText("firewall rule "+f.name, *f.v); err != nil {
			return err
		}
	}
	return nil
}

// ParseFirewall reads and checks a Qubes R4 firewall.xml.
func ParseFirewall(data []byte) ([]FirewallRule, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, errorf(ErrInvalid, "firewall.xml: %v", err)
	}
	if qname(root.Name) != "firewall" || root.attr("version") != "2" {
		return nil, errorf(ErrInvalid, "firewall.xml: want <firewall version=\"2\">")
	}
	var rules []FirewallRule
	if rs := root.child("rules"); rs != nil {
		for _, rn := range rs.children("rule") {
			var r FirewallRule
			if ps := rn.child("properties"); ps != nil {
				for _, p := range ps.children("property") {
					i := -1
					for j, f := range r.fields() {
						if f.name == p.attr("name") {
							i = j
						}
					}
					if i < 0 {
						return nil, errorf(ErrInvalid, "firewall rule: unknown property %q", p.attr("name"))
					}
					*r.fields()[i].v = p.Text
				}
			}
			if err := r.check(); err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// MarshalFirewall writes rules as Qubes does (lxml, with a declaration).
// It fails if a rule is invalid.
func MarshalFirewall(rules []FirewallRule) ([]byte, error) {
	rs := elem("rules")
	for _, r := range rules {
		if err := r.check(); err != nil {
			return nil, err
		}
		ps := elem("properties")
		for _, f := range r.fields() {
			if *f.v != "" {
				p := elem("property", "name", f.name)
				p.Text = *f.v
				ps.Kids = append(ps.Kids, p)
			}
		}
		rn := elem("rule")
		rn.Kids = []*node{ps}
		rs.Kids = append(rs.Kids, rn)
	}
	root := elem("firewall", "version", "2")
	root.Kids = []*node{rs}
	return append([]byte("<?xml version='1.0' encoding='UTF-8'?>\n"), root.marshal()...), nil
}
