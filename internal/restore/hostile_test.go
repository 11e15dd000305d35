package restore

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/backup"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

// Hostile archives: whatever the archive does, the restore fails with an
// error that names the problem, and the host is as it was.

// craftedFile is one stored file of a crafted archive: its inner tar.
type craftedFile struct {
	name string
	tar  func(tw *tar.Writer)
}

// craft writes a format 4 archive whose qubes.xml holds one StandaloneVM
// "box" (backup-path vm1/, a private volume of 1 MiB) and the dom0 home
// of "user", with the given files, using our writer: well-formed and
// authentic, and hostile only inside.
func craft(t *testing.T, edit func(db *host.DB), files ...craftedFile) []byte {
	t.Helper()
	return craftXML(t, craftDB(t, edit), files...)
}

// craftEdited is craft with qubes.xml further edited as text by editXML:
// what no DB edit can make.
func craftEdited(t *testing.T, editXML func([]byte) []byte, files ...craftedFile) []byte {
	t.Helper()
	return craftXML(t, editXML(craftDB(t, nil)), files...)
}

// replaceOnce edits qubes.xml text: find, which must be there, becomes
// replace.
func replaceOnce(t *testing.T, find, replace string) func([]byte) []byte {
	return func(x []byte) []byte {
		y := bytes.Replace(x, []byte(find), []byte(replace), 1)
		if bytes.Equal(x, y) {
			t.Fatalf("no %s", find)
		}
		return y
	}
}

// craftDB is craft's qubes.xml, edited by edit (if not nil).
func craftDB(t *testing.T, edit func(db *host.DB)) []byte {
	t.Helper()
	h, err := host.Init(filepath.Join(t.TempDir(), "root"), host.InitOptions{User: "user", Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CreateVM("box", host.StandaloneVM, host.VMOptions{Label: "red"}); err != nil {
		t.Fatal(err)
	}
	if err := h.ResizeVolume("box", "private", 1<<20, true); err != nil {
		t.Fatal(err)
	}
	db, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	box, _ := db.Domain("box")
	box.SetFeature("backup-content", "True")
	box.SetFeature("backup-path", "vm1/")
	box.SetFeature("backup-size", "1048576")
	dom0, _ := db.Domain("dom0")
	dom0.SetFeature("backup-content", "True")
	dom0.SetFeature("backup-path", "dom0-home/user")
	dom0.SetFeature("backup-size", "65536")
	if edit != nil {
		edit(db)
	}
	return db.Marshal()
}

// craftXML is craft with the given qubes.xml, for shapes a DB cannot take.
func craftXML(t *testing.T, xml []byte, files ...craftedFile) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := archive.NewWriter(&out, archive.WriterOptions{Passphrase: testPass, Compression: "gzip",
		Params: scryptenc.Params{LogN: 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddBytes(archive.QubesXMLName, xml); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		err := w.AddFile(f.name, func(out io.Writer) error {
			tw := tar.NewWriter(out)
			f.tar(tw)
			return tw.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func regular(tw *tar.Writer, name string, data []byte) {
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1e9, 0)})
	tw.Write(data)
}

var goodRoot = craftedFile{"vm1/root.img", func(tw *tar.Writer) {
	regular(tw, "vm1/root.img", []byte("a small root"))
}}

var goodPrivate = craftedFile{"vm1/private.img", func(tw *tar.Writer) {
	regular(tw, "vm1/private.img", append(make([]byte, 1<<19), []byte("box data")...))
}}

var goodHome = craftedFile{"dom0-home/user", func(tw *tar.Writer) {
	tw.WriteHeader(&tar.Header{Name: "dom0-home/user/", Typeflag: tar.TypeDir, Mode: 0o755})
	regular(tw, "dom0-home/user/notes", []byte("hi\n"))
}}

// verifyAndExtractFail checks that VerifyOnly and ExtractTo refuse data
// (with target, unless nil), and that the extraction leaves nothing.
func verifyAndExtractFail(t *testing.T, data []byte, target error) {
	t.Helper()
	run := func(what string, pass func(b *Backup, p *Plan) error) {
		b, err := Open(t.Context(), bytes.NewReader(data), OpenOptions{Passphrase: testPass})
		if err == nil {
			defer b.Close()
			var p *Plan
			if p, err = NewPlan(nil, b, PlanOptions{}); err == nil {
				err = pass(b, p)
			}
		}
		if err == nil {
			t.Fatalf("%s: no error for what restore refuses", what)
		}
		if target != nil && !errors.Is(err, target) {
			t.Errorf("%s: %v, want %v", what, err, target)
		}
	}
	run("verify", func(b *Backup, p *Plan) error {
		_, err := VerifyOnly(t.Context(), b, p, nil)
		return err
	})
	out := filepath.Join(t.TempDir(), "out")
	run("extract", func(b *Backup, p *Plan) error { return ExtractTo(t.Context(), b, p, out, nil) })
	if _, err := os.Lstat(out); err == nil {
		t.Errorf("extract left %s", out)
	}
}

// restoreFails restores data into a fresh host and checks that it fails
// (with target, unless nil) and that the host is unchanged.
func restoreFails(t *testing.T, data []byte, target error, words ...string) {
	t.Helper()
	h := emptyHost(t, "user")
	xml, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	dirs := listDirs(t, h)
	b, err := Open(t.Context(), bytes.NewReader(data), OpenOptions{Passphrase: testPass})
	if err == nil {
		defer b.Close()
		var p *Plan
		if p, err = NewPlan(h, b, PlanOptions{IgnoreUsernameMismatch: true}); err == nil {
			if err = p.Err(); err == nil {
				_, err = Restore(t.Context(), h, b, p, Options{}, nil)
			}
		}
	}
	if err == nil {
		t.Fatal("restored")
	}
	if target != nil {
		wantErr(t, err, target, words...)
	}
	unchanged(t, h, xml, dirs)
}

func TestRestoreHostileInner(t *testing.T) {
	// The crafted archive is fine as it is.
	h := emptyHost(t, "user")
	if _, err := restoreInto(t, h, craft(t, nil, goodRoot, goodPrivate, goodHome), PlanOptions{}, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if info, err := h.VolumeInfo("box", "private"); err != nil || info.Size != 1<<19+8 {
		t.Fatalf("%+v %v", info, err)
	}

	zeros := make([]byte, 64<<20)
	outside := t.TempDir() // where a hostile home's symlink points
	cases := []struct {
		name   string
		files  []craftedFile
		target error
		words  []string
	}{
		{"decompression bomb beyond the volume's size", []craftedFile{goodRoot, {"vm1/private.img", func(tw *tar.Writer) {
			regular(tw, "vm1/private.img", zeros) // 64 MiB of zeros: 64 KiB compressed
		}}, goodHome}, sparsetar.ErrTooLarge, []string{"vm1/private.img"}},
		{"another member than the file", []craftedFile{goodRoot, {"vm1/private.img", func(tw *tar.Writer) {
			regular(tw, "vm1/root.img", []byte("x"))
		}}, goodHome}, sparsetar.ErrUnexpectedMember, []string{"vm1/root.img"}},
		{"a second member", []craftedFile{goodRoot, {"vm1/private.img", func(tw *tar.Writer) {
			regular(tw, "vm1/private.img", []byte("x"))
			regular(tw, "vm1/firewall.xml", []byte("x"))
		}}, goodHome}, sparsetar.ErrUnexpectedMember, nil},
		{"unsafe name", []craftedFile{goodRoot, {"vm1/private.img", func(tw *tar.Writer) {
			regular(tw, "vm1/../../etc/passwd", []byte("x"))
		}}, goodHome}, sparsetar.ErrUnsafeName, nil},
		{"file below the VM's directory", []craftedFile{goodRoot, {"vm1/sub/private.img", func(tw *tar.Writer) {
			regular(tw, "vm1/sub/private.img", []byte("x"))
		}}, goodHome}, archive.ErrUnexpectedMember, []string{"vm1/sub/private.img"}},
		{"home symlink out, then a file through it", []craftedFile{goodRoot, goodPrivate, {"dom0-home/user", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/", Typeflag: tar.TypeDir, Mode: 0o755})
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/out", Typeflag: tar.TypeSymlink, Linkname: outside})
			regular(tw, "dom0-home/user/out/pwned", []byte("x"))
		}}}, sparsetar.ErrUnsafeName, nil},
		{"a VM's files apart", []craftedFile{goodRoot, goodPrivate, goodHome, {"vm1/notes.txt", func(tw *tar.Writer) {
			regular(tw, "vm1/notes.txt", []byte("x"))
		}}}, archive.ErrUnexpectedMember, []string{"vm1/notes.txt comes after files of another VM"}},
		{"a bad firewall", []craftedFile{goodRoot, goodPrivate, {"vm1/firewall.xml", func(tw *tar.Writer) {
			regular(tw, "vm1/firewall.xml", []byte("<firewall><rules><rule><properties><property name=\"action\">maybe</property></properties></rule></rules></firewall>"))
		}}, goodHome}, host.ErrInvalid, []string{"firewall"}},
		{"a volume image that is a directory", []craftedFile{goodRoot, {"vm1/private.img", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "vm1/private.img/", Typeflag: tar.TypeDir, Mode: 0o755})
		}}, goodHome}, sparsetar.ErrUnexpectedMember, nil},
		{"a home with a member twice", []craftedFile{goodRoot, goodPrivate, {"dom0-home/user", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/", Typeflag: tar.TypeDir, Mode: 0o755})
			regular(tw, "dom0-home/user/a", []byte("1"))
			regular(tw, "dom0-home/user/a", []byte("2"))
		}}}, sparsetar.ErrUnexpectedMember, nil},
		{"a home hard link to /etc/passwd", []craftedFile{goodRoot, goodPrivate, {"dom0-home/user", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/", Typeflag: tar.TypeDir, Mode: 0o755})
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/pw", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"})
		}}}, sparsetar.ErrUnsafeName, nil},
		{"a home that is a file", []craftedFile{goodRoot, goodPrivate, {"dom0-home/user", func(tw *tar.Writer) {
			regular(tw, "dom0-home/user", []byte("x"))
		}}}, sparsetar.ErrUnexpectedMember, nil},
		{"a home member of unknown type", []craftedFile{goodRoot, goodPrivate, {"dom0-home/user", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/", Typeflag: tar.TypeDir, Mode: 0o755})
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/d", Typeflag: 'D', Mode: 0o755})
		}}}, sparsetar.ErrUnexpectedMember, nil},
		{"a home name of 300 bytes", []craftedFile{goodRoot, goodPrivate, {"dom0-home/user", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "dom0-home/user/", Typeflag: tar.TypeDir, Mode: 0o755})
			regular(tw, "dom0-home/user/"+strings.Repeat("n", 300), []byte("x"))
		}}}, nil, nil},
		// (With no home in the backup: the home, complete, would be kept.)
		{"a missing volume image", []craftedFile{goodRoot, {"vm1/notes.txt", func(tw *tar.Writer) {
			regular(tw, "vm1/notes.txt", []byte("x"))
		}}}, archive.ErrIncomplete, []string{"private"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noHome := func(db *host.DB) {
				if !slices.ContainsFunc(c.files, func(f craftedFile) bool { return f.name == goodHome.name }) {
					d, _ := db.Domain("dom0")
					d.DeleteFeature("backup-content")
				}
			}
			data := craft(t, noHome, c.files...)
			restoreFails(t, data, c.target, c.words...)
			// Verify promises what restore does: it refuses too, and so
			// does an extraction, which leaves nothing.
			verifyAndExtractFail(t, data, c.target)
			if entries, _ := os.ReadDir(outside); len(entries) > 0 {
				t.Errorf("written through a symlink: %v", entries)
			}
		})
	}
}

func TestRestoreHostileMetadata(t *testing.T) {
	// qubes.xml names VMs that are neither in the backup nor on the host:
	// app's template, box's netvm, box's device backend.
	edit := func(netvm bool) func(db *host.DB) {
		return func(db *host.DB) {
			for _, s := range []host.VMSpec{
				{Name: "tpl", Class: host.TemplateVM, Label: "black"},
				{Name: "netx", Class: host.AppVM, Label: "red", Template: "tpl", Props: []host.Property{{Name: "provides_network", Value: "True"}}},
				{Name: "app", Class: host.AppVM, Label: "red", Template: "tpl",
					Features: []host.Feature{{Name: "backup-content", Value: "True"}, {Name: "backup-path", Value: "vm9/"}, {Name: "backup-size", Value: "1"}}},
			} {
				if _, _, err := db.AddVM(s); err != nil {
					t.Fatal(err)
				}
			}
			box, _ := db.Domain("box")
			if netvm {
				box.SetProp("netvm", "netx")
			}
			if err := box.AssignDevice(host.Device{Class: "usb", Backend: "netx", Port: "1-1"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := emptyHost(t, "user")
	b := openBackup(t, craft(t, edit(true), goodRoot, goodPrivate, goodHome))
	p, err := NewPlan(h, b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perr := p.Err()
	wantErr(t, perr, perr, "tpl", "netx")
	if got := codes(p.VM("app")) + codes(p.VM("box")); got != "[missing-template][missing-netvm]" {
		t.Errorf("problems %s", got)
	}
	// Without the netvm, and app left out: box is restored, the device of
	// the unknown backend left out with a warning.
	h = emptyHost(t, "user")
	res, err := restoreInto(t, h, craft(t, edit(false), goodRoot, goodPrivate, goodHome), PlanOptions{Exclude: []string{"app"}}, Options{}, nil)
	if err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	if w := res.VMs[0].Warnings; len(w) != 1 || !strings.Contains(w[0], "netx") {
		t.Errorf("warnings %q", w)
	}
}

// A qubes.xml in which two VMs have one name (or one qid) is refused as
// it is read: the restore could pick either.
func TestRestoreAmbiguousMetadata(t *testing.T) {
	for _, c := range []struct{ find, replace, want string }{
		{`<property name="name">box</property>`, `<property name="name">box</property></properties></domain>` +
			`<domain id="domain-7" class="AppVM"><properties><property name="name">box</property><property name="qid">7</property>`,
			"two VMs named box: <domain> #2 (box, qid 1) and <domain> #3 (box, qid 7)"},
		{`<property name="name">box</property>`, `<property name="name">box</property></properties></domain>` +
			`<domain id="domain-7" class="AppVM"><properties><property name="name">other</property><property name="qid">1</property>`,
			"two VMs with qid 1"},
	} {
		data := craftEdited(t, replaceOnce(t, c.find, c.replace), goodRoot, goodPrivate, goodHome)
		restoreFails(t, data, ErrBadMetadata, c.want)
	}
}

// Every member of a real archive, damaged, and the archive cut at every
// member boundary: never a VM on the host.
func TestRestoreTamperedEverywhere(t *testing.T) {
	data, _ := goodArchive(t)
	ms := splitArchive(t, data)
	off := 0
	for _, m := range ms {
		t.Run(fmt.Sprintf("flip/%s", m.name), func(t *testing.T) {
			bad := bytes.Clone(data)
			bad[off+512+len(m.body)/2] ^= 0x20
			restoreFails(t, bad, nil)
		})
		off += len(m.data)
		if off < len(data) {
			t.Run(fmt.Sprintf("cut/after-%s", m.name), func(t *testing.T) {
				restoreFails(t, data[:off], nil)
			})
		}
	}
	// A chunk from another backup with the same passphrase.
	other := otherArchive(t)
	om := splitArchive(t, other)
	var swapped []byte
	for _, m := range ms {
		if strings.HasSuffix(m.name, "private.img.000.enc") && len(swapped) > 0 {
			for _, o := range om {
				if o.name == m.name {
					m = o
				}
			}
		}
		swapped = append(swapped, m.data...)
	}
	restoreFails(t, swapped, archive.ErrChunkMismatch)
}

// otherArchive is a second backup of the same demo VMs with the same
// passphrase (another backup id).
func otherArchive(t *testing.T) []byte {
	t.Helper()
	h := demoHost(t)
	out := filepath.Join(t.TempDir(), "other")
	p, err := backup.NewPlan(t.Context(), h, backup.Options{ScryptLogN: 10, Passphrase: testPass, Destination: backup.Destination{Path: out}})
	if err != nil || p.Err() != nil {
		t.Fatal(err, p.Err())
	}
	if _, err := backup.Run(t.Context(), p, nil, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// scrypt parameters beyond the limits in the header's key file are refused
// before any derivation starts: 2^30·8·128 bytes of memory, and costs
// whose 64-bit products wrap to 0 (which once passed the check and
// panicked in make).
func TestRestoreExcessiveScrypt(t *testing.T) {
	data, _ := goodArchive(t)
	ms := splitArchive(t, data)
	for _, p := range []scryptenc.Params{{LogN: 30, R: 8, P: 1}, {LogN: 40, R: 1 << 17, P: 1 << 7}, {LogN: 36, R: 1 << 21, P: 1 << 7}} {
		bad := bytes.Clone(data)
		hmacStart := len(ms[0].data) + 512 // backup-header.hmac's content
		head := bad[hmacStart : hmacStart+scryptenc.HeaderSize]
		head[7] = p.LogN
		binary.BigEndian.PutUint32(head[8:12], p.R)
		binary.BigEndian.PutUint32(head[12:16], p.P)
		sum := sha256.Sum256(head[:48])
		copy(head[48:64], sum[:16]) // a consistent header, as a forger would make it
		restoreFails(t, bad, scryptenc.ErrTooExpensive)
	}
}

// Text from the archive is shortened in messages: a 100 KB VM name or
// netvm name is not echoed whole, neither in an error nor in the summary.
func TestHostileTextIsShortened(t *testing.T) {
	var xml []byte
	craft(t, func(db *host.DB) { xml = db.Marshal() })
	long := strings.Repeat("a", 100000)
	shown := `"` + strings.Repeat("a", 64) + `"… (100000 bytes)`
	x := bytes.Replace(xml, []byte(`<property name="name">box</property>`), []byte(`<property name="name">`+long+`</property>`), 1)
	_, err := Open(t.Context(), bytes.NewReader(craftXML(t, x, goodRoot, goodPrivate, goodHome)), OpenOptions{Passphrase: testPass})
	if err == nil || !strings.Contains(err.Error(), "invalid VM name "+shown) || len(err.Error()) > 300 {
		t.Errorf("name: %.400v", err)
	}

	x = bytes.Replace(xml, []byte(`<property name="label">label-1</property>`),
		[]byte(`<property name="label">label-1</property><property name="netvm">`+long+`</property>`), 1)
	b := openBackup(t, craftXML(t, x, goodRoot, goodPrivate, goodHome))
	p, err := NewPlan(emptyHost(t, "user"), b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perr := p.Err()
	if perr == nil || !strings.Contains(perr.Error(), "its netvm "+strings.Repeat("a", 64)+"… is neither") || len(perr.Error()) > 300 {
		t.Errorf("plan: %.400v", perr)
	}
	if r := rowOf(p, "box"); r.NetVM != strings.Repeat("a", 64)+"…" {
		t.Errorf("summary row netvm %.100q", r.NetVM)
	}
}

// Junk after the manifest is no VM's fault: the VMs' files all ended
// before it. They are not added (the archive did not end cleanly), and
// each says what stopped the restore, rather than blaming the last VM.
func TestJunkAfterManifest(t *testing.T) {
	data, _ := goodArchive(t)
	var junk bytes.Buffer
	tw := tar.NewWriter(&junk)
	tw.WriteHeader(&tar.Header{Name: "junk", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3, Format: tar.FormatUSTAR})
	tw.Write([]byte("xyz"))
	tw.Close()
	h := emptyHost(t, "bob")
	xml, _ := os.ReadFile(filepath.Join(h.Root(), host.DBFile))
	dirs := listDirs(t, h)
	res, err := restoreInto(t, h, append(bytes.Clone(data), junk.Bytes()...), PlanOptions{IgnoreUsernameMismatch: true}, Options{}, nil)
	wantErr(t, err, archive.ErrUnexpectedMember, `"junk" after the manifest`)
	if strings.Contains(err.Error(), "VM dom0") {
		t.Errorf("blamed on dom0: %v", err)
	}
	unchanged(t, h, xml, dirs)
	for _, r := range res.VMs {
		if r.Outcome != OutcomeNotDone || !errors.Is(r.Err, ErrNotProven) || !strings.Contains(r.Err.Error(), `what stopped it: unexpected member in backup archive: "junk" after the manifest`) {
			t.Errorf("%s: %v %v", r.Name, r.Outcome, r.Err)
		}
	}
}

// A qubes.xml no restore can add from is refused when the backup is
// opened, so verify and extract refuse it as restore does.
func TestRestoreImpossibleMetadata(t *testing.T) {
	for _, c := range []struct{ name, find, replace, want string }{
		{"unknown class", `class="StandaloneVM"`, `class="FancyVM"`, "unknown class"},
		{"a VM named dom0", `<property name="name">box</property>`, `<property name="name">dom0</property>`, "dom0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := craftEdited(t, replaceOnce(t, c.find, c.replace), goodRoot, goodPrivate, goodHome)
			restoreFails(t, data, ErrBadMetadata, c.want)
			verifyAndExtractFail(t, data, ErrBadMetadata)
		})
	}
}

func TestCheckVMsTemplateCycle(t *testing.T) {
	b := &Backup{VMs: []*VM{
		{Name: "a", Class: host.TemplateVM, Template: "b"},
		{Name: "b", Class: host.TemplateVM, Template: "a"},
		{Name: "c", Class: host.AppVM, Template: "a"},
	}}
	if err := b.checkVMs(); !errors.Is(err, ErrBadMetadata) || !strings.Contains(err.Error(), "circle") {
		t.Errorf("a template cycle: %v", err)
	}
	b.VMs = b.VMs[1:]
	b.VMs[0].Template = ""
	if err := b.checkVMs(); err != nil {
		t.Errorf("no cycle: %v", err)
	}
}

// A file stored after qubes.xml in its member is an increment's map and
// nothing else: in a full backup, or under another name, the archive is
// refused before anything is written.
func TestRestoreStrayCompanion(t *testing.T) {
	for _, tc := range []struct {
		name, base, companion string
	}{
		{"a map in a full backup", "", chain.MapName},
		{"another file in an increment", "20260101T000000-00000000", "notes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w, err := archive.NewWriter(&out, archive.WriterOptions{Passphrase: testPass, Compression: "gzip",
				Params: scryptenc.Params{LogN: 10, R: 8, P: 1}, Base: tc.base})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.AddQubesXML(craftDB(t, nil), archive.Companion{Name: tc.companion, Data: []byte("pedos-chain 1\n")}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			restoreFails(t, out.Bytes(), ErrBadMetadata, "stored after qubes.xml", tc.companion)
		})
	}
}
