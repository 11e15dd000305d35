package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "512": 512, "1K": 1000, "1KB": 1000, "1kib": 1024, "1Ki": 1024,
		"10G": 10e9, "10GB": 10e9, "10GiB": 10 << 30, "512MiB": 512 << 20, "512 MiB": 512 << 20,
		"2T": 2e12, "1TiB": 1 << 40, "7B": 7, " 3M ": 3e6,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "+1", "1.5G", "10X", "0x10", "1 G B", "9999999999TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 2 << 30: "2GiB",
		10<<30 + 1: "10.0GiB", 1048576 + 104857: "1.1MiB", 3 << 40: "3TiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTable(t *testing.T) {
	tb := NewTable("NAME", "STATE", "NETVM")
	tb.Row("dom0", "Running", "")
	tb.Row("sys-firewall", "Halted", "sys-net")
	tb.Row("café", "Halted", "-")
	var b bytes.Buffer
	if _, err := tb.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME          STATE    NETVM\n" +
		"dom0          Running\n" +
		"sys-firewall  Halted   sys-net\n" +
		"café          Halted   -\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	if tb.Len() != 4 {
		t.Errorf("Len = %d, want 4", tb.Len())
	}
}

func TestPrintError(t *testing.T) {
	base := errors.New("no VM named \"x\"")
	for _, tc := range []struct {
		err  error
		want string
		code int
	}{
		{base, "tool: error: no VM named \"x\"\n", ExitError},
		{WithHint(base, "qvm-ls lists %s", "the VMs"), "tool: error: no VM named \"x\"\nhint: qvm-ls lists the VMs\n", ExitError},
		{Usagef("missing %s", "VMNAME"), "tool: error: missing VMNAME\n", ExitUsage},
		{WithHint(AsUsage(base), "h"), "tool: error: no VM named \"x\"\nhint: h\n", ExitUsage},
		{fmt.Errorf("two\nlines: %w", base), "tool: error: two\n  lines: no VM named \"x\"\n", ExitError},
	} {
		var b strings.Builder
		PrintError(&b, "tool", tc.err)
		if b.String() != tc.want {
			t.Errorf("PrintError(%v) = %q, want %q", tc.err, b.String(), tc.want)
		}
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
		if !errors.Is(tc.err, base) && !IsUsage(tc.err) {
			t.Errorf("%v lost its cause", tc.err)
		}
	}
	if WithHint(nil, "x") != nil || AsUsage(nil) != nil || ExitCode(nil) != ExitOK {
		t.Error("nil errors must stay nil")
	}
}
