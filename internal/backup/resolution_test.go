package backup

import (
	"path/filepath"
	"slices"
	"testing"

	"pedos.dev/backup/internal/host"
)

// The resolutions that change the options resolve their problem: a new
// plan with them has no problem left.
func TestResolutionsResolve(t *testing.T) {
	h := demoHost(t)
	u, err := h.Dom0()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(o *Options)
		code ProblemCode
	}{
		{"unknown VM", func(o *Options) { o.VMs = []string{"work", "nosuch"} }, UnknownVM},
		{"unknown exclusion", func(o *Options) { o.Exclude = []string{"wrok"} }, UnknownVM},
		{"no match", func(o *Options) { o.VMs = []string{"@tag:nosuch", "work"} }, NoMatch},
		{"bad selector", func(o *Options) { o.VMs = []string{"work"}; o.Exclude = []string{"@type:HVM"} }, BadSelector},
		{"filter", func(o *Options) { o.Compression = "no-such-zipper" }, FilterNotInstalled},
		{"scrypt", func(o *Options) { o.ScryptLogN = 5 }, BadScryptParameters},
		{"into the home", func(o *Options) { o.VMs = []string{"dom0", "work"}; o.Destination.Path = u.Home }, DestinationInHome},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions(Destination{Path: t.TempDir()})
			c.edit(&opts)
			p, err := NewPlan(t.Context(), h, opts)
			if err != nil {
				t.Fatal(err)
			}
			pr := wantProblem(t, p, c.code)
			applied := 0
			for _, r := range pr.Resolve {
				o := opts
				o.VMs, o.Exclude = slices.Clone(opts.VMs), slices.Clone(opts.Exclude)
				if !r.Apply(&o, pr) {
					continue
				}
				applied++
				if p := mustPlan(t, h, o); len(p.Problems) != 0 {
					t.Errorf("%v leaves %v", r, problemCodes(p))
				}
			}
			if applied == 0 {
				t.Errorf("no resolution of %v applies", pr.Resolve)
			}
		})
	}

	// A dom0 home that cannot be read: leave it out.
	if err := h.SetDom0(host.Dom0{User: "user", Home: filepath.Join(t.TempDir(), "gone")}); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(Destination{Path: "-"})
	p, _ := NewPlan(t.Context(), h, opts)
	pr := wantProblem(t, p, UnreadableSource)
	if !pr.Resolve[0].Apply(&opts, pr) || !slices.Equal(opts.Exclude, []string{"dom0"}) {
		t.Fatalf("%v: exclude %q", pr.Resolve, opts.Exclude)
	}
	mustPlan(t, h, opts)
}

// Every problem has a resolution; the choices and actions do not apply;
// a running VM's note offers to shut it down.
func TestResolutions(t *testing.T) {
	for _, code := range []ProblemCode{UnknownVM, BadSelector, NoMatch, EmptySelection, UnreadableSource, NoDestination, DirMissing,
		DestinationExists, CommandNotFound, NoSpace, DestinationInHome, DestVMUnknown, DestVMNotRunning, FilterNotInstalled,
		BadCompression, BadPassphrase, BadScryptParameters, NotEnoughMemory, BucketMissing, CredentialsRefused, EndpointUnreachable, StorageProblem} {
		if len(resolutions[code]) == 0 {
			t.Errorf("%s has no resolution", code)
		}
	}
	for r := ExcludeVM; r <= ShutDownVM; r++ {
		if r.String() == Resolution(0).String() {
			t.Errorf("%d has no description", r)
		}
		var o Options
		applies := r.Apply(&o, Problem{Subject: "work"}) // DropSelector: not selected
		if want := r <= DefaultScryptCost && r != DropSelector; applies != want {
			t.Errorf("%v: applies %v", r, applies)
		}
		if r.IsAction() != (r == StartVM || r == ShutDownVM) {
			t.Errorf("%v: action %v", r, r.IsAction())
		}
	}

	h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(Destination{Path: "-"})
	opts.VMs = []string{"work", "personal"}
	for _, row := range mustPlan(t, h, opts).Summary().Rows {
		if running := row.VM == "work"; running != slices.Equal(row.Resolve, []Resolution{ShutDownVM}) {
			t.Errorf("row %+v", row)
		}
	}
}
