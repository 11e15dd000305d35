package legacy

import (
	"errors"
	"slices"
	"testing"

	"pedos.dev/backup/internal/host"
)

// An R3 firewall.xml becomes the R4 rules qubesadmin's core2 makes of it:
// DNS and ICMP first, the exceptions with the action opposite to the
// policy, the policy last.
func TestConvertFirewall(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []host.FirewallRule
	}{
		{"allow all", `<QubesFirewallRules policy="allow" dns="allow" icmp="allow" yumProxy="allow"/>`,
			[]host.FirewallRule{{Action: "accept", SpecialTarget: "dns"}, {Action: "accept", Proto: "icmp"}, {Action: "accept"}}},
		{"deny with exceptions", `<?xml version='1.0' encoding='UTF-8'?>
<QubesFirewallRules policy="deny" dns="allow" icmp="deny" yumProxy="allow">
  <rule address="192.168.1.0" netmask="24" proto="tcp" port="443"/>
  <rule address="10.0.0.1" proto="udp" port="1000" toport="2000"/>
  <rule address="www.example.com" netmask="32" port="80"/>
  <rule address="fd00::1" netmask="64" proto="any" port="22" expire="1900000000"/>
  <rule address="0.0.0.0" netmask="0" proto="icmp" port="5" toport="5"/>
  <rule proto="udp" port="53" toport="53"/>
</QubesFirewallRules>`, []host.FirewallRule{
			{Action: "accept", SpecialTarget: "dns"},
			{Action: "drop", Proto: "icmp"},
			{Action: "accept", Proto: "tcp", DstHost: "192.168.1.0/24", DstPorts: "443"},
			{Action: "accept", Proto: "udp", DstHost: "10.0.0.1/32", DstPorts: "1000-2000"},
			{Action: "accept", Proto: "tcp", DstHost: "www.example.com", DstPorts: "80"},
			{Action: "accept", DstHost: "fd00::1/64", Expire: "1900000000"},
			{Action: "accept", Proto: "icmp"},
			{Action: "accept", Proto: "udp", DstPorts: "53"},
			{Action: "drop"}}},
		{"dns and icmp follow the policy", `<QubesFirewallRules policy="deny"><rule address="1.2.3.4"/></QubesFirewallRules>`,
			[]host.FirewallRule{{Action: "drop", SpecialTarget: "dns"}, {Action: "drop", Proto: "icmp"},
				{Action: "accept", DstHost: "1.2.3.4/32"}, {Action: "drop"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ConvertFirewall([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := host.ParseFirewall(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{
		`<QubesFirewallRules policy="maybe"/>`,
		`<firewall version="2"><rules/></firewall>`,
		`<QubesFirewallRules policy="deny"><rule address="1.2.3.4" netmask="33"/></QubesFirewallRules>`,
		`<QubesFirewallRules policy="deny"><rule address="evil host"/></QubesFirewallRules>`,
		`<QubesFirewallRules policy="deny"><rule address="1.2.3.4" proto="tcp" port="70000"/></QubesFirewallRules>`,
		`<QubesFirewallRules policy="deny"><rule expire="tomorrow"/></QubesFirewallRules>`,
		`<QubesFirewallRules policy="deny"`,
	} {
		if out, err := ConvertFirewall([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v\n%s", bad, err, out)
		}
	}
}
