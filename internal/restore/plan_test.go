package restore

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"pedos.dev/backup/internal/host"
)

// hostWithDefaults is an empty host with a template tpl and a netvm net,
// which are its default_template and default_netvm.
func hostWithDefaults(t *testing.T) *host.Host {
	t.Helper()
	h := emptyHost(t, "user")
	if err := h.CreateVM("tpl", host.TemplateVM, host.VMOptions{Label: "black"}); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateVM("net", host.AppVM, host.VMOptions{Label: "red", Template: "tpl", Props: map[string]string{"provides_network": "True", "netvm": ""}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Update(func(db *host.DB) error {
		if err := db.SetGlobalProp("default_template", "tpl"); err != nil {
			return err
		}
		return db.SetGlobalProp("default_netvm", "net")
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPlan(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	type want struct {
		problems map[string]string // VM -> problem codes, for VMs that have problems
		blocking []string          // VMs with unresolved problems
		check    func(t *testing.T, p *Plan)
	}
	cases := []struct {
		name string
		host func(t *testing.T) *host.Host
		opts PlanOptions
		want want
	}{
		{"empty host, order-independent templates", func(t *testing.T) *host.Host { return emptyHost(t, "user") }, PlanOptions{}, want{}},
		{"no host", func(*testing.T) *host.Host { return nil }, PlanOptions{}, want{}},
		{"conflict", demoHost, PlanOptions{}, want{
			problems: map[string]string{"debian-12": "[already-exists]", "sys-net": "[already-exists]", "sys-firewall": "[already-exists]",
				"debian-12-dvm": "[already-exists]", "work": "[already-exists]", "personal": "[already-exists]", "vault": "[already-exists]"},
			blocking: []string{"debian-12", "sys-net", "sys-firewall", "debian-12-dvm", "work", "personal", "vault"},
		}},
		{"conflict verify-only", demoHost, PlanOptions{VerifyOnly: true}, want{}},
		{"skip conflicting", demoHost, PlanOptions{SkipConflicting: true}, want{
			problems: map[string]string{"debian-12": "[already-exists]", "sys-net": "[already-exists]", "sys-firewall": "[already-exists]",
				"debian-12-dvm": "[already-exists]", "work": "[already-exists]", "personal": "[already-exists]", "vault": "[already-exists]"},
			check: func(t *testing.T, p *Plan) {
				if r := p.Restored(); len(r) != 1 || r[0].VM.Name != "dom0" {
					t.Errorf("restored %v", r)
				}
			},
		}},
		{"rename conflicting rewires references", demoHost, PlanOptions{RenameConflicting: true}, want{check: func(t *testing.T, p *Plan) {
			w, fw, dvm := p.VM("work"), p.VM("sys-firewall"), p.VM("debian-12-dvm")
			if w.Target != "work-1" || w.Template != "debian-12-1" || w.NetVM != (Ref{"sys-firewall-1", true}) {
				t.Errorf("work: %+v", w)
			}
			if fw.NetVM != (Ref{"sys-net-1", true}) || dvm.Template != "debian-12-1" || p.VM("personal").NetVM.Set {
				t.Errorf("references not rewired: %+v %+v", fw, dvm)
			}
			if r := rowOf(p, "work"); !slices.Contains(r.Info, "Will be renamed to 'work-1'") {
				t.Errorf("row %+v", r)
			}
		}}},
		{"missing template", func(t *testing.T) *host.Host { return emptyHost(t, "user") }, PlanOptions{Exclude: []string{"debian-12"}}, want{
			problems: map[string]string{"debian-12": "[excluded]", "sys-net": "[missing-template]", "sys-firewall": "[missing-template missing-netvm]",
				"debian-12-dvm": "[missing-template]", "work": "[missing-template missing-netvm]", "personal": "[missing-template]"},
			blocking: []string{"sys-net", "sys-firewall", "debian-12-dvm", "work", "personal"},
		}},
		{"ignore missing without defaults", func(t *testing.T) *host.Host { return emptyHost(t, "user") }, PlanOptions{Exclude: []string{"debian-12"}, IgnoreMissing: true}, want{
			problems: map[string]string{"debian-12": "[excluded]", "sys-net": "[missing-template]", "sys-firewall": "[missing-template missing-netvm]",
				"debian-12-dvm": "[missing-template]", "work": "[missing-template missing-netvm]", "personal": "[missing-template]"},
			blocking: []string{"sys-net", "sys-firewall", "debian-12-dvm", "work", "personal"},
			check: func(t *testing.T, p *Plan) {
				if pr := p.VM("work").Problems[0]; slices.Contains(pr.Resolve, IgnoreMissing) {
					t.Errorf("problem %+v offers --ignore-missing, which was given", pr)
				}
			},
		}},
		{"ignore missing with defaults", hostWithDefaults, PlanOptions{Exclude: []string{"debian-12", "sys-net"}, IgnoreMissing: true}, want{
			problems: map[string]string{"debian-12": "[excluded]", "sys-net": "[excluded]"},
			check: func(t *testing.T, p *Plan) {
				w, fw := p.VM("work"), p.VM("sys-firewall")
				if w.Template != "tpl" || !w.TemplateChanged || fw.NetVM.Set || w.NetVM != (Ref{"sys-firewall", true}) {
					t.Errorf("work %+v, sys-firewall %+v", w, fw)
				}
				r := rowOf(p, "sys-firewall")
				if r.NetVM != "(default)" || !slices.Contains(r.Info, "Template change to 'tpl'") || r.Template != "debian-12" {
					t.Errorf("row %+v", r)
				}
			},
		}},
		{"missing netvm, default not asked for", hostWithDefaults, PlanOptions{Exclude: []string{"sys-net"}}, want{
			problems: map[string]string{"sys-net": "[excluded]", "sys-firewall": "[missing-netvm]", "work": "[missing-netvm]"},
			blocking: []string{"sys-firewall", "work"},
		}},
		{"skip broken cascades", func(t *testing.T) *host.Host { return emptyHost(t, "user") }, PlanOptions{Exclude: []string{"sys-net"}, SkipBroken: true}, want{
			problems: map[string]string{"sys-net": "[excluded]", "sys-firewall": "[missing-netvm]", "work": "[missing-netvm]"},
			check: func(t *testing.T, p *Plan) {
				if !p.VM("work").Skipped || !p.VM("personal").Restored() {
					t.Error("work not skipped or personal not restored")
				}
			},
		}},
		{"username mismatch", func(t *testing.T) *host.Host { return emptyHost(t, "other") }, PlanOptions{}, want{
			problems: map[string]string{"dom0": "[username-mismatch]"}, blocking: []string{"dom0"},
			check: func(t *testing.T, p *Plan) {
				if r := rowOf(p, "dom0"); r.Problem != UsernameMismatch.Summary() || r.Type != host.AdminVM {
					t.Errorf("row %+v", r)
				}
			},
		}},
		{"username mismatch ignored", func(t *testing.T) *host.Host { return emptyHost(t, "other") }, PlanOptions{IgnoreUsernameMismatch: true}, want{}},
		{"skip dom0 home", func(t *testing.T) *host.Host { return emptyHost(t, "other") }, PlanOptions{SkipDom0Home: true}, want{
			problems: map[string]string{"dom0": "[excluded]"}}},
		{"-x dom0", func(t *testing.T) *host.Host { return emptyHost(t, "other") }, PlanOptions{Exclude: []string{"dom0"}}, want{
			problems: map[string]string{"dom0": "[excluded]"}}},
		{"positional list", func(t *testing.T) *host.Host { return emptyHost(t, "user") }, PlanOptions{VMs: []string{"debian-12", "sys-net", "sys-firewall", "work"}}, want{
			problems: map[string]string{"dom0": "[excluded]", "debian-12-dvm": "[excluded]", "personal": "[excluded]", "vault": "[excluded]"}}},
		{"positional list missing netvm", func(t *testing.T) *host.Host { return emptyHost(t, "user") }, PlanOptions{VMs: []string{"debian-12", "work", "dom0"}}, want{
			problems: map[string]string{"sys-net": "[excluded]", "sys-firewall": "[excluded]", "debian-12-dvm": "[excluded]", "personal": "[excluded]",
				"vault": "[excluded]", "work": "[missing-netvm]"},
			blocking: []string{"work"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPlan(c.host(t), b, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, pv := range p.VMs {
				got, want := codes(pv), c.want.problems[pv.VM.Name]
				if want == "" {
					want = "[]"
				}
				if got != want {
					t.Errorf("%s: problems %s, want %s", pv.VM.Name, got, want)
				}
			}
			var blocking []string
			for _, pr := range p.Problems() {
				if !slices.Contains(blocking, pr.VM) {
					blocking = append(blocking, pr.VM)
				}
				if pr.Message == "" || len(pr.Resolve) == 0 {
					t.Errorf("problem %+v has no message or resolution", pr)
				}
			}
			if !slices.Equal(blocking, c.want.blocking) {
				t.Errorf("blocking %v, want %v", blocking, c.want.blocking)
			}
			if (p.Err() == nil) != (len(c.want.blocking) == 0) {
				t.Errorf("Err() = %v", p.Err())
			}
			if len(p.Rows()) != len(p.VMs) {
				t.Error("rows do not match VMs")
			}
			if c.want.check != nil {
				c.want.check(t, p)
			}
		})
	}
}

func rowOf(p *Plan, name string) Row {
	for _, r := range p.Rows() {
		if r.Name == name {
			return r
		}
	}
	return Row{}
}

func TestPlanUnknownNames(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	for _, opts := range []PlanOptions{{VMs: []string{"work", "nosuch"}}, {Exclude: []string{"nosuch"}}, {VMs: []string{"disp123"}}} {
		_, err := NewPlan(nil, b, opts)
		if !errors.Is(err, ErrUnknownVM) {
			t.Errorf("%+v: error %v, want ErrUnknownVM", opts, err)
		}
	}
}

func TestPlanRestoreOrder(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	p, err := NewPlan(nil, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pv := range p.Restored() {
		names = append(names, pv.VM.Name)
	}
	if names[0] != "debian-12" || names[1] != "debian-12-dvm" || names[len(names)-1] != "dom0" {
		t.Errorf("restore order %v", names)
	}
}

// Each resolution a problem offers, applied to the options, resolves it:
// a new plan for the same backup has no blocking problem for that VM.
func TestResolutionsResolve(t *testing.T) {
	data, _ := goodArchive(t)
	b := openBackup(t, data)
	for _, c := range []struct {
		name string
		host func(t *testing.T) *host.Host
		opts PlanOptions
	}{
		{"conflict", demoHost, PlanOptions{}},
		{"missing template and netvm", hostWithDefaults, PlanOptions{Exclude: []string{"debian-12", "sys-net"}}},
		{"username mismatch", func(t *testing.T) *host.Host { return emptyHost(t, "other") }, PlanOptions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.host(t)
			p, err := NewPlan(h, b, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			probs := p.Problems()
			if len(probs) == 0 {
				t.Fatal("no problems")
			}
			for _, pr := range probs {
				for _, r := range pr.Resolve {
					opts := c.opts
					opts.Exclude = slices.Clone(c.opts.Exclude)
					if !r.Apply(&opts, pr.VM) {
						t.Fatalf("%s: %v does not apply to the plan options", pr.VM, r)
					}
					p, err := NewPlan(h, b, opts)
					if err != nil {
						t.Fatal(err)
					}
					for _, left := range p.Problems() {
						if left.VM == pr.VM {
							t.Errorf("%s: %v leaves %s", pr.VM, r, left.Message)
						}
					}
				}
			}
		})
	}
}

func TestResolutionApply(t *testing.T) {
	var opts PlanOptions
	for _, r := range []Resolution{SkipConflicting, RenameConflicting, SkipBroken, IgnoreMissing, SkipDom0Home, IgnoreUsernameMismatch, IgnoreSizeLimit} {
		if !r.Apply(&opts, "work") {
			t.Errorf("%v does not apply", r)
		}
	}
	want := PlanOptions{SkipConflicting: true, RenameConflicting: true, SkipBroken: true, IgnoreMissing: true, SkipDom0Home: true, IgnoreUsernameMismatch: true, IgnoreSizeLimit: true}
	if !ExcludeVM.Apply(&opts, "work") || !ExcludeVM.Apply(&opts, "work") || ExcludeVM.Apply(&opts, "") {
		t.Error("ExcludeVM")
	}
	want.Exclude = []string{"work"}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("options %+v", opts)
	}
	var run Options
	if RestoreGlobalDefaults.Apply(&opts, "") || SkipBroken.ApplyRun(&run) {
		t.Error("a resolution applies to the wrong options")
	}
	if !RestoreGlobalDefaults.ApplyRun(&run) || !RestoreDom0DefaultDispVM.ApplyRun(&run) || !run.GlobalDefaults || !run.Dom0DefaultDispVM {
		t.Errorf("run options %+v", run)
	}
	for r := SkipConflicting; r <= RestoreDom0DefaultDispVM; r++ {
		if r.String() == Resolution(0).String() {
			t.Errorf("%d has no description", r)
		}
	}
}
