package legacy

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/host"
)

// Formats 1 to 3 hold a VM's firewall.xml in the format of Qubes R1 to
// R3.2: <QubesFirewallRules policy="allow|deny" dns= icmp=
// yumProxy=> with <rule address= netmask= proto= port= toport= expire=/>
// children, which are the exceptions to the policy. ConvertFirewall turns
// it into the R4 rules the reference client makes of it (qubesadmin's
// core2 handle_firewall_xml): DNS and ICMP first, each allowed as its
// attribute (default: the policy) says; then every rule, with the action
// opposite to the policy; then the policy itself. yumProxy has no R4
// counterpart (the update proxy is a qrexec policy there).

// maxFirewallRules bounds the rules of one old firewall.xml.
const maxFirewallRules = 4096

// ConvertFirewall returns the R4 firewall.xml of an R1 to R3.2 one. A
// file it cannot convert faithfully (a bad policy, address, netmask, port
// or expiry) is an error: a VM restored without the rules it had would
// reach more of the network than it did.
func ConvertFirewall(data []byte) ([]byte, error) {
	bad := func(format string, a ...any) ([]byte, error) {
		return nil, fmt.Errorf("%w: firewall.xml of Qubes R3: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	var doc struct {
		XMLName xml.Name
		Attrs   []xml.Attr `xml:",any,attr"`
		Rules   []struct {
			XMLName xml.Name
			Attrs   []xml.Attr `xml:",any,attr"`
		} `xml:",any"`
	}
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return bad("%v", err)
	}
	if doc.XMLName.Local != "QubesFirewallRules" {
		return bad("root element <%s>, want <QubesFirewallRules>", doc.XMLName.Local)
	}
	if len(doc.Rules) > maxFirewallRules {
		return bad("%d rules (limit %d)", len(doc.Rules), maxFirewallRules)
	}
	attr := func(attrs []xml.Attr, name string) (string, bool) {
		for _, a := range attrs {
			if a.Name.Space == "" && a.Name.Local == name {
				return a.Value, true
			}
		}
		return "", false
	}
	policy, _ := attr(doc.Attrs, "policy")
	if policy != "allow" && policy != "deny" {
		return bad("policy %s (want allow or deny)", elide.Quote(policy))
	}
	action := func(key string) string {
		v, ok := attr(doc.Attrs, key)
		if !ok {
			v = policy
		}
		if v == "allow" {
			return "accept"
		}
		return "drop"
	}
	final, except := "drop", "accept"
	if policy == "allow" {
		final, except = "accept", "drop"
	}
	rules := []host.FirewallRule{
		{Action: action("dns"), SpecialTarget: "dns"},
		{Action: action("icmp"), Proto: "icmp"},
	}
	for i, el := range doc.Rules {
		get := func(name string) string { v, _ := attr(el.Attrs, name); return v }
		r := host.FirewallRule{Action: except, Expire: get("expire")}
		if addr := get("address"); addr != "" {
			dst, err := dstHost(addr, get("netmask"))
			if err != nil {
				return bad("rule %d: %v", i+1, err)
			}
			r.DstHost = dst
		}
		port, toport := get("port"), get("toport")
		switch {
		case port != "" && toport != "":
			r.DstPorts = port + "-" + toport
		case port != "":
			r.DstPorts = port
		}
		r.Proto = get("proto")
		if r.DstPorts != "" && r.Proto == "" {
			r.Proto = "tcp" // R3 read a rule with ports and no protocol so
		}
		if r.Proto == "any" {
			r.Proto = ""
		}
		if r.Proto != "tcp" && r.Proto != "udp" {
			r.DstPorts = "" // R3 ignored the ports of other protocols
		}
		if lo, hi, ok := strings.Cut(r.DstPorts, "-"); ok && lo == hi {
			r.DstPorts = lo
		}
		rules = append(rules, r)
	}
	rules = append(rules, host.FirewallRule{Action: final})
	out, err := host.MarshalFirewall(rules)
	if err != nil {
		return bad("%v", err)
	}
	return out, nil
}

// dstHost is a rule's destination as R4 writes it: an IP network with its
// prefix length (netmask, default the whole address), or a host name.
// A network of prefix 0 matches everything: "" then.
func dstHost(addr, netmask string) (string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		for _, c := range addr {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._", c)) {
				return "", fmt.Errorf("address %s is neither an IP address nor a host name", elide.Quote(addr))
			}
		}
		return addr, nil
	}
	if ip.Zone() != "" || ip.Is4In6() {
		return "", fmt.Errorf("address %s", elide.Quote(addr))
	}
	bits := ip.BitLen()
	if netmask != "" {
		if bits, err = strconv.Atoi(netmask); err != nil || bits < 0 || bits > ip.BitLen() {
			return "", fmt.Errorf("netmask %s of %s", elide.Quote(netmask), elide.String(addr))
		}
	}
	if bits == 0 {
		return "", nil
	}
	return fmt.Sprintf("%s/%d", ip, bits), nil
}
