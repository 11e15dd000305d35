package restore

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// Backups of Qubes R1 to R3.2 (formats 3, 2 and 1), made with the
// programs their writers ran (testutil.LegacyBackup, LegacyV1Dir), restore
// into a fresh host with the settings Qubes R4's conversion gives (spec
// §6.3), their images byte for byte, verify, extract, and refuse a wrong
// passphrase or damage without leaving anything half done.

// legacySource is the fixture: a host of Qubes R3.2 with a template, a
// ProxyVM, an AppVM, a standalone VM and the dom0 home, laid out like
// /var/lib/qubes (and like a format 1 backup).
type legacySource struct {
	dir string
	// images of each VM, by volume name
	images map[string]map[string]string
	home   string
}

// r3Firewall is work's firewall.xml in the R3 format, and what it
// becomes.
const r3Firewall = `<?xml version='1.0' encoding='UTF-8'?>
<QubesFirewallRules policy="deny" dns="allow" icmp="deny" yumProxy="allow">
  <rule address="192.168.1.0" netmask="24" proto="tcp" port="443"/>
  <rule address="www.example.com" port="80"/>
</QubesFirewallRules>
`

var r4Rules = []host.FirewallRule{
	{Action: "accept", SpecialTarget: "dns"},
	{Action: "drop", Proto: "icmp"},
	{Action: "accept", Proto: "tcp", DstHost: "192.168.1.0/24", DstPorts: "443"},
	{Action: "accept", Proto: "tcp", DstHost: "www.example.com", DstPorts: "80"},
	{Action: "drop"},
}

func makeLegacySource(t *testing.T) *legacySource {
	t.Helper()
	src := &legacySource{dir: t.TempDir(), images: map[string]map[string]string{}}
	rng := rand.New(rand.NewPCG(3, 4))
	image := func(vm, dir, vol string, size int64, runs ...[2]int64) {
		p := filepath.Join(src.dir, dir, vol+".img")
		testutil.WriteSparse(t, p, size, rng, runs...)
		if src.images[vm] == nil {
			src.images[vm] = map[string]string{}
		}
		src.images[vm][vol] = p
	}
	file := func(p, content string) {
		p = filepath.Join(src.dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image("fedora-23", "vm-templates/fedora-23", "root", 2<<20, [2]int64{0, 100 << 10}, [2]int64{1 << 20, 4096})
	image("fedora-23", "vm-templates/fedora-23", "private", 1<<20, [2]int64{512 << 10, 10 << 10})
	testutil.WriteSparse(t, filepath.Join(src.dir, "vm-templates/fedora-23/volatile.img"), 1<<20, rng)
	file("vm-templates/fedora-23/apps.templates/firefox.desktop", "[Desktop Entry]\nName=Firefox\n")
	file("vm-templates/fedora-23/icon.png", "\x89PNG fake")
	image("sys-firewall", "servicevms/sys-firewall", "private", 512<<10, [2]int64{0, 20 << 10})
	image("work", "appvms/work", "private", 1<<20, [2]int64{100 << 10, 150 << 10}, [2]int64{900 << 10, 30 << 10})
	file("appvms/work/icon.png", "\x89PNG fake work icon")
	file("appvms/work/firewall.xml", r3Firewall)
	file("appvms/work/whitelisted-appmenus.list", "firefox.desktop\nxterm.desktop\n")
	image("vault", "appvms/vault", "root", 1<<20, [2]int64{0, 40 << 10})
	image("vault", "appvms/vault", "private", 1<<20, [2]int64{300 << 10, 20 << 10})
	file("appvms/vault/icon.png", "\x89PNG fake vault icon")
	file("appvms/vault/apps.templates/keepass.desktop", "[Desktop Entry]\nName=KeePass\n")
	src.home = filepath.Join(src.dir, "dom0-home/user")
	file("dom0-home/user/.bashrc", "alias ll='ls -l'\n")
	file("dom0-home/user/Documents/note.txt", "remember the milk\n")
	if err := os.Symlink("Documents/note.txt", filepath.Join(src.home, "note")); err != nil {
		t.Fatal(err)
	}
	return src
}

// legacyLayout says how the writer named the VMs' directories: vm<qid>
// when encrypted, else their paths below /var/lib/qubes.
type legacyLayout struct {
	hidden bool
	// r1: a format 1 qubes.xml, with no dom0 and no backup bookkeeping
	r1 bool
	// noSize: R2 wrote no backup_size
	noSize bool
	// diskUsage: backup_size is the VM directory's disk usage (its used
	// blocks), as the R2 and R3 writers measured it, not a bound on the
	// images' lengths.
	diskUsage bool
}

func (l legacyLayout) path(qid int, dir string) string {
	if l.hidden {
		return fmt.Sprintf("vm%d", qid)
	}
	return dir
}

// qubesXML is the R3.2-style qubes.xml of the source host: sys-net is
// not backed up, nor the disposable VM.
func (src *legacySource) qubesXML(l legacyLayout) string {
	backup := func(qid int, dir string, size int64) string {
		if l.r1 {
			return ""
		}
		p := dir
		if qid != 0 {
			p = l.path(qid, dir)
		}
		s := fmt.Sprintf(` backup_content="True" backup_path="%s"`, p)
		if l.diskUsage {
			size = diskUsage(src.dir, dir)
		}
		if !l.noSize {
			s += fmt.Sprintf(` backup_size="%d"`, size)
		}
		return s
	}
	var b strings.Builder
	b.WriteString(`<QubesVmCollection updatevm="2" default_kernel="4.4.14-11" default_netvm="2" default_fw_netvm="1" default_template="3" clockvm="1">` + "\n")
	if !l.r1 {
		fmt.Fprintf(&b, `  <QubesAdminVm qid="0" name="dom0" label="black" dir_path="/var/lib/qubes/dom0"%s/>`+"\n", backup(0, "dom0-home/user", 65536))
	}
	fmt.Fprintf(&b, `  <QubesNetVm qid="1" name="sys-net" label="red" template_qid="3" netid="1" uses_default_netvm="False" netvm_qid="none" pcidevs="['00:19.0']" pci_strictreset="False" memory="300" dir_path="/var/lib/qubes/servicevms/sys-net" backup_content="False"/>`+"\n")
	fmt.Fprintf(&b, `  <QubesProxyVm qid="2" name="sys-firewall" label="green" template_qid="3" netid="2" uses_default_netvm="False" netvm_qid="none" dir_path="/var/lib/qubes/servicevms/sys-firewall"%s/>`+"\n", backup(2, "servicevms/sys-firewall", 600<<10))
	fmt.Fprintf(&b, `  <QubesTemplateVm qid="3" name="fedora-23" label="black" template_qid="none" installed_by_rpm="True" uses_default_netvm="False" netvm_qid="none" vcpus="4" maxmem="4000" dir_path="/var/lib/qubes/vm-templates/fedora-23"%s/>`+"\n", backup(3, "vm-templates/fedora-23", 4<<20))
	fmt.Fprintf(&b, `  <QubesAppVm qid="4" name="work" label="blue" template_qid="3" uses_default_netvm="False" netvm_qid="2" memory="800" maxmem="4000" vcpus="2" kernel="4.4.14-11" uses_default_kernel="True" kernelopts="" uses_default_kernelopts="True" services="{'meminfo-writer': True, 'cups': False}" pcidevs="[]" dir_path="/var/lib/qubes/appvms/work" include_in_backups="True"%s/>`+"\n", backup(4, "appvms/work", 1<<20))
	fmt.Fprintf(&b, `  <QubesAppVm qid="5" name="vault" label="black" template_qid="none" uses_default_netvm="False" netvm_qid="none" qrexec_timeout="120" dir_path="/var/lib/qubes/appvms/vault"%s/>`+"\n", backup(5, "appvms/vault", 2<<20))
	fmt.Fprintf(&b, `  <QubesDisposableVm qid="15" name="disp15" label="red" template_qid="3" dispid="15" netvm_qid="2"/>`+"\n")
	b.WriteString("</QubesVmCollection>\n")
	return b.String()
}

// diskUsage is what the old writers recorded as a VM's backup_size: the
// blocks its files use (`du`), holes left out. dir is relative to the
// fixture's /var/lib/qubes, or the home's "dom0-home/user".
func diskUsage(root, dir string) int64 {
	var total int64
	filepath.WalkDir(filepath.Join(root, dir), func(_ string, d fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := d.Info(); err == nil {
				total += fi.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		return nil
	})
	return total
}

// legacyVMs are the backed-up VMs as Qubes R4 converts them.
var legacyVMs = []struct {
	name, class, label, template, netvm string
	props                               map[string]string
	features                            []host.Feature
}{
	{"fedora-23", host.TemplateVM, "black", "", "", map[string]string{"vcpus": "4"},
		[]host.Feature{{Name: "qrexec", Value: "1"}, {Name: "gui", Value: "1"}}},
	{"sys-firewall", host.AppVM, "green", "fedora-23", "", map[string]string{"provides_network": "True"}, nil},
	{"work", host.AppVM, "blue", "fedora-23", "sys-firewall", map[string]string{"memory": "800"},
		[]host.Feature{{Name: "service.meminfo-writer", Value: "1"}, {Name: "cups", Value: ""}, {Name: "menu-items", Value: "firefox.desktop xterm.desktop"}}},
	{"vault", host.StandaloneVM, "black", "", "", map[string]string{"qrexec_timeout": "120"},
		[]host.Feature{{Name: "qrexec", Value: "1"}, {Name: "gui", Value: "1"}}},
}

// legacyVariant is one kind of old archive.
type legacyVariant struct {
	name string
	opts testutil.LegacyOptions
	l    legacyLayout
}

var legacyVariants = []legacyVariant{
	{"3/encrypted+gzip", testutil.LegacyOptions{Version: 3, Encrypt: true, Compress: true}, legacyLayout{hidden: true}},
	{"3/encrypted+bzip2", testutil.LegacyOptions{Version: 3, Encrypt: true, Compress: true, Filter: "bzip2"}, legacyLayout{hidden: true}},
	{"3/encrypted", testutil.LegacyOptions{Version: 3, Encrypt: true}, legacyLayout{hidden: true}},
	{"3/plain+gzip", testutil.LegacyOptions{Version: 3, Compress: true}, legacyLayout{}},
	{"3/plain", testutil.LegacyOptions{Version: 3}, legacyLayout{}},
	{"2/header+encrypted", testutil.LegacyOptions{Version: 2, Encrypt: true}, legacyLayout{hidden: true}},
	{"2/no-header+encrypted+zlib", testutil.LegacyOptions{Version: 2, NoHeader: true, Encrypt: true, Compress: true, Digest: "md5"}, legacyLayout{hidden: true, noSize: true}},
	{"2/no-header+gzip", testutil.LegacyOptions{Version: 2, NoHeader: true, Compress: true}, legacyLayout{noSize: true}},
}

// build makes the variant's archive with small chunks (so that files
// span several) and returns it with its writer.
func (v legacyVariant) build(t *testing.T, src *legacySource) ([]byte, *testutil.LegacyWriter) {
	t.Helper()
	opts := v.opts
	opts.Chunk = 64 << 10
	if opts.Version == 2 {
		opts.Chunk = 40 // KiB per volume
	}
	w := testutil.NewLegacyWriter(t, testPass, opts)
	w.Backup(src.dir, src.qubesXML(v.l))
	return w.Bytes(), w
}

// checkLegacyRestore checks the host after a restore of the whole
// fixture: the VMs as converted, their images, work's firewall, the
// home; nothing staged left.
func (src *legacySource) checkRestore(t *testing.T, h *host.Host, res *Result, version int) {
	t.Helper()
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range db.Domains() {
		names = append(names, d.Name())
	}
	slices.Sort(names)
	if want := []string{"dom0", "fedora-23", "sys-firewall", "vault", "work"}; !slices.Equal(names, want) {
		t.Errorf("host VMs %v, want %v", names, want)
	}
	for _, want := range legacyVMs {
		d, err := db.Domain(want.name)
		if err != nil {
			t.Errorf("%s not restored: %v", want.name, err)
			continue
		}
		if d.Class() != want.class || d.Label() != want.label || d.Template() != want.template || d.NetVM() != want.netvm {
			t.Errorf("%s: class %s label %s template %q netvm %q; want %s %s %q %q", want.name,
				d.Class(), d.Label(), d.Template(), d.NetVM(), want.class, want.label, want.template, want.netvm)
		}
		for p, v := range want.props {
			if got, isDefault := d.Prop(p); got != v || isDefault {
				t.Errorf("%s.%s = %q (default %v), want %q", want.name, p, got, isDefault, v)
			}
		}
		for _, p := range []string{"memory", "maxmem", "vcpus", "kernel", "include_in_backups", "installed_by_rpm", "default_dispvm"} {
			if _, ok := want.props[p]; !ok {
				if v, isDefault := d.Prop(p); !isDefault {
					t.Errorf("%s.%s = %q, want the default", want.name, p, v)
				}
			}
		}
		if got := d.Features(); !slices.Equal(got, want.features) {
			t.Errorf("%s features %v, want %v", want.name, got, want.features)
		}
		for vol, img := range src.images[want.name] {
			info, err := h.VolumeInfo(want.name, vol)
			if err != nil {
				t.Errorf("%s: %v", want.name, err)
				continue
			}
			sameFile(t, img, info.Path)
			if info.Size != info.Nominal {
				t.Errorf("%s:%s: volume size %d, image %d bytes", want.name, vol, info.Size, info.Nominal)
			}
		}
	}
	fw, err := h.Firewall("work")
	if err != nil {
		t.Fatal(err)
	}
	if rules, err := host.ParseFirewall(fw); err != nil || !slices.Equal(rules, r4Rules) {
		t.Errorf("work's firewall %+v (%v), want %+v", rules, err, r4Rules)
	}
	if fw, err := h.Firewall("vault"); err != nil || len(fw) != 0 {
		t.Errorf("vault has a firewall %q (%v)", fw, err)
	}
	d0, _ := h.Dom0()
	home := filepath.Join(d0.Home, "home-restore-"+testTime.Format("2006-01-02-150405"))
	if got := res.VMs[len(res.VMs)-1]; got.Name != "dom0" || got.Target != home || got.Outcome != OutcomeRestored {
		t.Errorf("dom0 home: %+v", got)
	}
	src.checkHome(t, home, version)
	if left := listDirs(t, h); slices.ContainsFunc(left, func(p string) bool { return strings.Contains(p, ".restoring-") || strings.Contains(p, ".partial") }) {
		t.Errorf("left %v", left)
	}
}

// checkHome compares a restored home with the source's. The format 2
// writer's --xform s:^[^/]:dom0-home/\0: also rewrote symlink targets.
func (src *legacySource) checkHome(t *testing.T, home string, version int) {
	t.Helper()
	want := "Documents/note.txt"
	if version == 2 {
		want = "dom0-home/" + want
	}
	if got, err := os.Readlink(filepath.Join(home, "note")); err != nil || got != want {
		t.Errorf("home's link: %q (%v), want %q", got, err, want)
	}
	for _, f := range []string{".bashrc", "Documents/note.txt"} {
		a, _ := os.ReadFile(filepath.Join(src.home, f))
		b, err := os.ReadFile(filepath.Join(home, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("home's %s: %q (%v), want %q", f, b, err, a)
		}
	}
}

// restoreLegacy opens a backup (a format 1 directory when dir is set),
// plans it into h and restores it.
func restoreLegacy(t *testing.T, h *host.Host, data []byte, dir string) (*Result, error) {
	t.Helper()
	b := openLegacy(t, data, dir)
	p, err := NewPlan(h, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range p.Warnings {
		// The disposable templates the conversion names for VMs without
		// network (disp-no-netvm) hold no data: left at the default.
		if !strings.Contains(w, "default_dispvm disp-no-netvm") {
			t.Errorf("plan warning %q", w)
		}
	}
	return Restore(t.Context(), h, b, p, Options{Now: func() time.Time { return testTime }}, nil)
}

func openLegacy(t *testing.T, data []byte, dir string) *Backup {
	t.Helper()
	var b *Backup
	var err error
	if dir != "" {
		b, err = OpenDir(dir)
	} else {
		b, err = Open(t.Context(), bytes.NewReader(data), OpenOptions{Passphrase: testPass})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// verifyAndExtract checks VerifyOnly and ExtractTo on the whole backup.
func (src *legacySource) verifyAndExtract(t *testing.T, data []byte, dir string, version int) {
	t.Helper()
	b := openLegacy(t, data, dir)
	if b.Header.Version != version {
		t.Errorf("format %d, want %d", b.Header.Version, version)
	}
	p, err := NewPlan(nil, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyOnly(t.Context(), b, p, nil)
	if err != nil {
		t.Fatalf("VerifyOnly: %v", err)
	}
	if len(rep.VMs) != len(legacyVMs)+1 {
		t.Errorf("verified %+v", rep.VMs)
	}
	for _, v := range rep.VMs {
		if !v.OK() || v.Files == 0 || v.Bytes == 0 {
			t.Errorf("verify: %+v", v)
		}
	}

	b = openLegacy(t, data, dir)
	p, err = NewPlan(nil, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := ExtractTo(t.Context(), b, p, out, nil); err != nil {
		t.Fatalf("ExtractTo: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "qubes.xml")); !bytes.Equal(got, b.QubesXML) {
		t.Error("extracted qubes.xml differs")
	}
	for vm, imgs := range src.images {
		for vol, img := range imgs {
			sameFile(t, img, filepath.Join(out, vm, vol+".img"))
		}
	}
	for _, f := range []string{"work/firewall.xml", "work/icon.png", "vault/apps.templates/keepass.desktop", "fedora-23/apps.templates/firefox.desktop"} {
		want, _ := os.ReadFile(filepath.Join(src.dir, map[string]string{"work": "appvms/work", "vault": "appvms/vault", "fedora-23": "vm-templates/fedora-23"}[strings.Split(f, "/")[0]], strings.SplitN(f, "/", 2)[1]))
		if got, err := os.ReadFile(filepath.Join(out, f)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("extracted %s: %q (%v), want %q", f, got, err, want)
		}
	}
	src.checkHome(t, filepath.Join(out, "dom0-home", "user"), version)
}

func TestRestoreLegacyArchives(t *testing.T) {
	src := makeLegacySource(t)
	for _, v := range legacyVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			data, w := v.build(t, src)
			hasChunks := slices.ContainsFunc(w.Names(), func(n string) bool { return strings.HasSuffix(n, "private.img.002") })
			if !hasChunks {
				t.Fatalf("no image spans three chunks: %q", w.Names())
			}

			// R2 wrote no backup_size: then nothing bounds a VM's data.
			for _, vm := range openLegacy(t, data, "").all() {
				if (vm.Size == 0) != v.l.noSize {
					t.Errorf("%s: backup-size %d", vm.Name, vm.Size)
				}
			}

			// (a) Into a fresh host.
			h := emptyHost(t, "user")
			res, err := restoreLegacy(t, h, data, "")
			if err != nil {
				t.Fatalf("%v\n%+v", err, res)
			}
			for _, r := range res.VMs {
				if r.Outcome != OutcomeRestored || r.Files == 0 {
					t.Errorf("%+v", r)
				}
			}
			src.checkRestore(t, h, res, v.opts.Version)

			// (b), (c) Verified and extracted.
			src.verifyAndExtract(t, data, "", v.opts.Version)

			// (d) A wrong passphrase changes nothing.
			h = emptyHost(t, "user")
			xml, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
			dirs := listDirs(t, h)
			_, err = Open(t.Context(), bytes.NewReader(data), OpenOptions{Passphrase: []byte("wrong horse")})
			wantErr(t, err, archive.ErrBadPassphrase)
			unchanged(t, h, xml, dirs)

			// (e) A flipped byte in a chunk of work's private image: work
			// is not added, nor sys-firewall, whose template comes after
			// the damage; vault, whose files all came before it, is.
			work := strings.TrimSuffix(v.l.path(4, "appvms/work"), "/")
			bad := w.Flip(work + "/private.img.001")
			res, err = restoreLegacy(t, h, bad, "")
			wantErr(t, err, archive.ErrCorrupt, work+"/private.img")
			outcome := map[string]Outcome{}
			for _, r := range res.VMs {
				outcome[r.Name] = r.Outcome
			}
			want := map[string]Outcome{"vault": OutcomeRestored, "work": OutcomeFailed, "sys-firewall": OutcomeFailed,
				"fedora-23": OutcomeNotDone, "dom0": OutcomeNotDone}
			if fmt.Sprint(outcome) != fmt.Sprint(want) {
				t.Errorf("outcomes %v, want %v", outcome, want)
			}
			db, _ := h.Load()
			var names []string
			for _, d := range db.Domains() {
				names = append(names, d.Name())
			}
			if slices.Sort(names); !slices.Equal(names, []string{"dom0", "vault"}) {
				t.Errorf("host VMs after the damage %v, want dom0 vault", names)
			}
			if left := listDirs(t, h); slices.ContainsFunc(left, func(p string) bool {
				return strings.Contains(p, ".restoring-") || strings.Contains(p, "home-restore") || strings.Contains(p, "/work")
			}) {
				t.Errorf("left %v", left)
			}
		})
	}
}

// The old writers stored images with `tar --sparse` (old GNU sparse
// members) and recorded backup_size as disk usage: a 64 MiB private image
// holding 4 MiB of data has a backup_size near 4 MiB. Such VMs restore,
// verify and extract, their images byte-identical and sparse; a VM whose
// data really exceeds its backup_size still fails.
func TestRestoreLegacySparseImages(t *testing.T) {
	src := makeLegacySource(t)
	rng := rand.New(rand.NewPCG(5, 6))
	work := filepath.Join(src.dir, "appvms/work/private.img")
	testutil.WriteSparse(t, work, 64<<20, rng, [2]int64{1 << 20, 2 << 20}, [2]int64{40 << 20, 2 << 20}, [2]int64{64<<20 - 4096, 4096})
	root := filepath.Join(src.dir, "vm-templates/fedora-23/root.img")
	testutil.WriteSparse(t, root, 256<<20, rng, [2]int64{0, 1 << 20}, [2]int64{200 << 20, 512 << 10})
	src.images["work"]["private"], src.images["fedora-23"]["root"] = work, root
	if du := diskUsage(src.dir, "appvms/work"); du > 5<<20 {
		t.Fatalf("the fixture's work uses %d bytes: not sparse here", du)
	}
	for _, v := range []legacyVariant{
		{"3/encrypted+gzip", testutil.LegacyOptions{Version: 3, Encrypt: true, Compress: true, Chunk: 1 << 20}, legacyLayout{hidden: true, diskUsage: true}},
		{"3/plain", testutil.LegacyOptions{Version: 3, Chunk: 1 << 20}, legacyLayout{diskUsage: true}},
		{"2/header+encrypted", testutil.LegacyOptions{Version: 2, Encrypt: true, Chunk: 1024}, legacyLayout{hidden: true, diskUsage: true}},
	} {
		t.Run(v.name, func(t *testing.T) {
			w := testutil.NewLegacyWriter(t, testPass, v.opts)
			w.Backup(src.dir, src.qubesXML(v.l))
			data := w.Bytes()
			for _, vm := range openLegacy(t, data, "").all() {
				if vm.Name == "work" && (vm.Size == 0 || vm.Size > 5<<20) {
					t.Fatalf("work's backup-size %d, want its disk usage", vm.Size)
				}
			}
			h := emptyHost(t, "user")
			res, err := restoreLegacy(t, h, data, "")
			if err != nil {
				t.Fatalf("%v\n%+v", err, res)
			}
			src.checkRestore(t, h, res, v.opts.Version)
			for vm, vol := range map[string]string{"work": "private", "fedora-23": "root"} {
				info, err := h.VolumeInfo(vm, vol)
				if err != nil {
					t.Fatal(err)
				}
				if du := diskUsage(filepath.Dir(info.Path), filepath.Base(info.Path)); du > 8<<20 {
					t.Errorf("%s:%s restored using %d bytes: not sparse", vm, vol, du)
				}
			}
			src.verifyAndExtract(t, data, "", v.opts.Version)
		})
	}
	// Data beyond the backup-size is still refused: work's data is 4 MiB
	// and more, its recorded size a tenth of that (and no fixed margin).
	defer func(s int64) { sizeSlack = s }(sizeSlack)
	sizeSlack = 0
	v := legacyVariant{"3/encrypted+gzip", testutil.LegacyOptions{Version: 3, Encrypt: true, Compress: true, Chunk: 1 << 20}, legacyLayout{hidden: true}}
	xml := strings.Replace(src.qubesXML(v.l), `backup_path="vm4" backup_size="1048576"`, `backup_path="vm4" backup_size="400000"`, 1)
	if xml == src.qubesXML(v.l) {
		t.Fatal("work's backup_size not found in the fixture's qubes.xml")
	}
	w := testutil.NewLegacyWriter(t, testPass, v.opts)
	w.Backup(src.dir, xml)
	h := emptyHost(t, "user")
	_, err := restoreLegacy(t, h, w.Bytes(), "")
	wantErr(t, err, sparsetar.ErrTooLarge, "work", "carries")
	wantErr(t, err, ErrSizeLimit)
}

// A format 1 backup is a directory (no encryption, no integrity check):
// it restores, verifies and extracts alike.
func TestRestoreLegacyFormat1(t *testing.T) {
	src := makeLegacySource(t)
	dir := testutil.LegacyV1Dir(t, src.dir, src.qubesXML(legacyLayout{r1: true}))
	h := emptyHost(t, "user")
	res, err := restoreLegacy(t, h, nil, dir)
	if err != nil {
		t.Fatalf("%v\n%+v", err, res)
	}
	for _, r := range res.VMs {
		if r.Outcome != OutcomeRestored || r.Files == 0 {
			t.Errorf("%+v", r)
		}
	}
	src.checkRestore(t, h, res, 1)
	src.verifyAndExtract(t, nil, dir, 1)
}

// A format 1 qubes.xml (not authenticated: anyone who can write the
// directory writes it) naming a VM "../../escaped" is refused before any
// file is written; --extract-to would otherwise write outside its target.
func TestRestoreLegacyFormat1BadName(t *testing.T) {
	src := makeLegacySource(t)
	xml := strings.Replace(src.qubesXML(legacyLayout{r1: true}), `name="work"`, `name="../../escaped"`, 1)
	dir := testutil.LegacyV1Dir(t, src.dir, xml)
	_, err := OpenDir(dir)
	wantErr(t, err, ErrBadMetadata, "escaped")
}
