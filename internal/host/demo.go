package host

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// DemoImageSize is the nominal size of the demo's root images and of every
// private image; only a few MiB of each hold data.
const DemoImageSize = 2 << 30

// demoVM is one VM of the demo host.
type demoVM struct {
	name, class string
	opts        VMOptions
	features    []Feature
	tags        []string
	devices     []Device
}

var demoVMs = []demoVM{
	{name: "debian-12", class: TemplateVM, opts: VMOptions{Label: "black", Props: map[string]string{"installed_by_rpm": "True"}},
		features: []Feature{{"qrexec", "1"}, {"gui", "1"}, {"os", "Linux"}}},
	{name: "sys-net", class: AppVM, opts: VMOptions{Label: "red", Template: "debian-12",
		Props: map[string]string{"provides_network": "True", "netvm": "", "memory": "425"}},
		devices: []Device{{Class: "pci", Backend: "dom0", Port: "00_1f.6", Mode: "required", Identity: "0x0200",
			Options: []Feature{{"no-strict-reset", "True"}}}}},
	{name: "sys-firewall", class: AppVM, opts: VMOptions{Label: "green", Template: "debian-12",
		Props: map[string]string{"provides_network": "True", "netvm": "sys-net"}}},
	{name: "debian-12-dvm", class: AppVM, opts: VMOptions{Label: "red", Template: "debian-12",
		Props: map[string]string{"template_for_dispvms": "True"}},
		features: []Feature{{"appmenus-dispvm", "1"}}},
	{name: "work", class: AppVM, opts: VMOptions{Label: "blue", Template: "debian-12",
		Props: map[string]string{"netvm": "sys-firewall", "vcpus": "4", "maxmem": "8000"}},
		features: []Feature{{"service.cups", "1"}}, tags: []string{"backup-me"}},
	{name: "personal", class: AppVM, opts: VMOptions{Label: "green", Template: "debian-12"},
		features: []Feature{{"service.cups", ""}}, tags: []string{"backup-me", "audio"}},
	{name: "vault", class: StandaloneVM, opts: VMOptions{Label: "black", Props: map[string]string{"netvm": ""}},
		features: []Feature{{"qrexec", "1"}, {"gui", "1"}}},
	{name: "disp123", class: DispVM, opts: VMOptions{Label: "red", Template: "debian-12-dvm",
		Props: map[string]string{"include_in_backups": "False"}}},
}

var demoGlobals = [][2]string{
	{"default_template", "debian-12"}, {"default_netvm", "sys-firewall"}, {"default_dispvm", "debian-12-dvm"},
	{"clockvm", "sys-net"}, {"updatevm", "sys-firewall"}, {"default_kernel", "6.6.48-1.fc37"},
}

// Demo makes a realistic host in root for trying the tools: a template
// debian-12, sys-net and sys-firewall, a disposable template debian-12-dvm
// and a named DispVM disp123, AppVMs work and personal, a StandaloneVM
// vault; the global defaults a Qubes install has; sparse images with
// recognisable data; a firewall for work, notes for personal. If
// opts.Home is empty the dom0 home is $ROOT/home/<user>; a home directory
// that does not exist yet is made and filled with sample files.
func Demo(root string, opts InitOptions) (*Host, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if opts.Home == "" {
		if opts.User == "" {
			if opts.User, err = currentUser(); err != nil {
				return nil, err
			}
		}
		if !dom0UserRE.MatchString(opts.User) {
			return nil, errorf(ErrInvalid, "invalid dom0 user name %q", opts.User)
		}
		opts.Home = filepath.Join(abs, "home", opts.User)
	}
	h, err := Init(abs, opts)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Host, error) { return nil, fmt.Errorf("making the demo host: %w", err) }
	err = h.locked(func() error {
		db, old, err := h.load()
		if err != nil {
			return err
		}
		for _, vm := range demoVMs {
			d, _, err := db.addVM(vm.name, vm.class, vm.opts)
			if err != nil {
				return err
			}
			for _, f := range vm.features {
				if err := d.SetFeature(f.Name, f.Value); err != nil {
					return err
				}
			}
			for _, t := range vm.tags {
				if err := d.AddTag(t); err != nil {
					return err
				}
			}
			for _, dev := range vm.devices {
				if err := d.AssignDevice(dev); err != nil {
					return err
				}
			}
			if root, err := d.Volume("root"); err == nil && root.SaveOnStop {
				root.Size = DemoImageSize
				d.setVolume(root)
			}
			if _, err := h.makeFiles(d, nil); err != nil {
				return err
			}
		}
		for _, g := range demoGlobals {
			if err := db.SetGlobalProp(g[0], g[1]); err != nil {
				return err
			}
		}
		return h.save(db, old)
	})
	if err != nil {
		return fail(err)
	}
	for _, vm := range []string{"debian-12", "vault"} {
		if err := demoFill(h, vm, "root", 8, 512<<10); err != nil {
			return fail(err)
		}
	}
	for _, vm := range []string{"debian-12", "sys-net", "sys-firewall", "debian-12-dvm", "work", "personal", "vault"} {
		if err := demoFill(h, vm, "private", 4, 256<<10); err != nil {
			return fail(err)
		}
	}
	rules := []FirewallRule{
		{Action: "accept", Proto: "tcp", DstHost: "qubes-os.org", DstPorts: "443", Comment: "project site"},
		{Action: "accept", DstHost: "192.168.1.0/24"},
		{Action: "accept", SpecialTarget: "dns"},
		{Action: "accept", Proto: "icmp", ICMPType: "8"},
		{Action: "drop"},
	}
	fw, err := MarshalFirewall(rules)
	if err == nil {
		err = h.SetFirewall("work", fw)
	}
	if err == nil {
		err = h.SetNotes("personal", "Personal qube: banking and e-mail.\nPasswords live in vault (offline).\nCafé receipts → ~/Documents/receipts\n")
	}
	for _, vm := range []string{"work", "personal", "vault"} {
		if err == nil {
			err = os.MkdirAll(h.path(vmFSDir, vm, "home", "user"), 0o755)
		}
	}
	if err == nil {
		err = demoHome(opts.Home)
	}
	if err != nil {
		return fail(err)
	}
	return h, nil
}

// demoFill writes n regions of size bytes, spread over the image, each a
// block of text ("/etc/hostname debian-12") followed by pseudo-random
// bytes seeded by the VM and volume name, so that two demos are equal. The
// last region of a root image ends at the end of the file.
func demoFill(h *Host, vm, vol string, n int, size int64) error {
	img, err := h.WorkingPath(vm, vol)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8(sha256.Sum256([]byte(vm + "/" + vol))))
	var text strings.Builder
	for i := 0; text.Len() < 16<<10; i++ {
		if vol == "root" {
			fmt.Fprintf(&text, "/etc/hostname %s\n", vm)
		} else {
			fmt.Fprintf(&text, "/home/user/notes-%d.txt belongs to %s\n", i, vm)
		}
	}
	buf := make([]byte, size)
	step := fi.Size() / int64(n) &^ (4096 - 1) // block aligned, like real data
	for i := range n {
		off := int64(i) * step
		if vol == "root" && i == n-1 {
			off = fi.Size() - size
		}
		c := copy(buf, text.String())
		for j := c; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return f.Close()
}

// demoHome fills a new dom0 home with nested files, names with spaces, a
// symlink and an empty directory. An existing directory is left alone.
func demoHome(home string) error {
	if _, err := os.Lstat(home); err == nil {
		return nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	photo := make([]byte, 64<<10)
	for i := range photo {
		photo[i] = byte(rng.Uint32())
	}
	files := map[string][]byte{
		".bashrc":                       []byte("# ~/.bashrc\nexport EDITOR=vim\nalias ll='ls -l'\n"),
		".config/pedos/manager.conf":    []byte("[view]\nshow_internal = false\n"),
		"Documents/report.txt":          []byte("Quarterly report\n================\nAll qubes backed up.\n"),
		"Documents/notes/todo.md":       []byte("- [ ] rotate backup passphrase\n- [x] test restore\n"),
		"Pictures/photo of a cat.jpg":   photo,
		"My Files/budget 2024 (v2).csv": []byte("month,amount\njan,100\nfeb,120\n"),
	}
	for name, data := range files {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(home, "Downloads"), 0o755); err != nil {
		return err
	}
	return os.Symlink("Documents/report.txt", filepath.Join(home, "current report"))
}
