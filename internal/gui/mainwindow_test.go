package gui

import (
	"image/color"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// want is a table line as qvm-ls shows the demo host, plus the label's
// colour, the disk usage and the last backup.
type want struct {
	cells  []string // Name ... NetVM, Last backup; the Disk column is checked against the images
	swatch uint32   // 0xRRGGBB
}

func checkTable(t *testing.T, m *MainWindow, h *host.Host, wants []want) {
	t.Helper()
	lines := tableLines(m.table)
	var header []string
	for _, c := range lines[0] {
		header = append(header, c.text)
	}
	if got := strings.Join(header, "|"); got != "Name|State|Class|Label|Template|NetVM|Disk|Last backup" {
		t.Fatalf("header: %s", got)
	}
	if len(lines)-1 != len(wants) {
		t.Fatalf("the table shows %d VMs, want %d: %v", len(lines)-1, len(wants), lines)
	}
	for i, w := range wants {
		line := lines[i+1]
		var texts []string
		for _, c := range line {
			texts = append(texts, c.text)
		}
		wantCells := slices.Insert(slices.Clone(w.cells), 6, diskText(t, h, w.cells[0]))
		if got, exp := strings.Join(texts, "|"), strings.Join(wantCells, "|"); got != exp {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, got, exp)
		}
		wantColor := color.NRGBA{R: uint8(w.swatch >> 16), G: uint8(w.swatch >> 8), B: uint8(w.swatch), A: 0xff}
		if got := line[labelColumn].swatch; got != wantColor {
			t.Errorf("%s: label swatch %v, want %v", w.cells[0], got, wantColor)
		}
		for col, c := range line {
			if col == labelColumn {
				continue
			}
			if c.swatch != nil {
				t.Errorf("%s: a swatch in column %d", w.cells[0], col)
			}
			if c.x != lines[0][col].x {
				t.Errorf("%s: column %d starts at %v, its header at %v", w.cells[0], col, c.x, lines[0][col].x)
			}
		}
	}
}

// diskText is the Disk column for vm: what its images take on disk,
// added up from the host, or "-" for a VM without an image of its own.
func diskText(t *testing.T, h *host.Host, vm string) string {
	vols, err := h.Volumes(vm)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	images := 0
	for _, v := range vols {
		if v.Path != "" {
			sum += v.Usage
			images++
		}
	}
	if images == 0 {
		return "-"
	}
	return cli.FormatSize(sum)
}

// The demo host as qvm-ls lists it, after work was started and backed up.
func demoWants(lastBackup string) []want {
	return []want{
		{[]string{"dom0", "Running", "AdminVM", "black", "-", "-", "never"}, 0x000000},
		{[]string{"debian-12", "Halted", "TemplateVM", "black", "-", "-", "never"}, 0x000000},
		{[]string{"debian-12-dvm", "Halted", "AppVM", "red", "debian-12", "sys-firewall", "never"}, 0xcc0000},
		{[]string{"disp123", "Halted", "DispVM", "red", "debian-12-dvm", "sys-firewall", "never"}, 0xcc0000},
		{[]string{"personal", "Halted", "AppVM", "green", "debian-12", "sys-firewall", "never"}, 0x73d216},
		{[]string{"sys-firewall", "Halted", "AppVM", "green", "debian-12", "sys-net", "never"}, 0x73d216},
		{[]string{"sys-net", "Halted", "AppVM", "red", "debian-12", "-", "never"}, 0xcc0000},
		{[]string{"vault", "Halted", "StandaloneVM", "black", "-", "-", "never"}, 0x000000},
		{[]string{"work", "Running", "AppVM", "blue", "debian-12", "sys-firewall", lastBackup}, 0x3465a4},
	}
}

func setBackupTime(t *testing.T, h *host.Host, vm string, when time.Time) {
	t.Helper()
	err := h.Update(func(db *host.DB) error {
		d, err := db.Domain(vm)
		if err != nil {
			return err
		}
		return d.SetProp("backup_timestamp", strconv.FormatInt(when.Unix(), 10))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The main window lists the host's VMs as qvm-ls does, with the label's
// colour, disk usage and last backup; Refresh shows a VM made after the
// window opened.
func TestMainWindowListsVMs(t *testing.T) {
	a := newApp(t)
	root, h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	backedUp := time.Date(2026, 11, 26, 3, 15, 0, 0, time.Local)
	setBackupTime(t, h, "work", backedUp)

	m := NewMainWindow(a, root, Hooks{})
	m.Window.Show()
	wants := demoWants("2026-11-26 03:15")
	checkTable(t, m, h, wants)
	if got, want := m.status.Text, "9 VMs, 2 running"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}

	if err := h.CreateVM("media", host.AppVM, host.VMOptions{Label: "purple", Template: "debian-12"}); err != nil {
		t.Fatal(err)
	}
	checkTable(t, m, h, wants) // not before a refresh
	test.Tap(m.refresh)
	media := want{[]string{"media", "Halted", "AppVM", "purple", "debian-12", "sys-firewall", "never"}, 0x75507b}
	checkTable(t, m, h, slices.Insert(wants, 4, media))
	if m.status.Text != "10 VMs, 2 running" {
		t.Errorf("status %q after the refresh", m.status.Text)
	}
}

// A root without a host shows why in the window; once there is a host,
// Refresh lists it.
func TestMainWindowWithoutHost(t *testing.T) {
	a := newApp(t)
	root := t.TempDir()
	m := NewMainWindow(a, root, Hooks{})
	m.Window.Show()
	if !strings.Contains(m.status.Text, "no PedOS host at "+root) {
		t.Errorf("status %q", m.status.Text)
	}
	if lines := tableLines(m.table); len(lines) != 1 {
		t.Errorf("the table shows %v, want the header alone", lines)
	}
	h, err := host.Demo(root, host.InitOptions{User: "user"})
	if err != nil {
		t.Fatal(err)
	}
	m.Refresh()
	wants := demoWants("never")
	wants[8].cells[1] = "Halted" // work, not started here
	checkTable(t, m, h, wants)
}

// Backup and Restore, on the toolbar and in the menu, call the hooks the
// caller gave; without a hook the action is disabled.
func TestMainWindowHooks(t *testing.T) {
	a := newApp(t)
	root, _ := demoHost(t)
	var calls []string
	m := NewMainWindow(a, root, Hooks{
		Backup:  func() { calls = append(calls, "backup") },
		Restore: func() { calls = append(calls, "restore") },
	})
	m.Window.Show()
	test.Tap(m.backup)
	test.Tap(m.restore)
	menu := m.Window.MainMenu().Items[0]
	item := func(label string) *fyne.MenuItem {
		for _, it := range menu.Items {
			if it.Label == label {
				return it
			}
		}
		t.Fatalf("no menu item %q in %s", label, menu.Label)
		return nil
	}
	item("Backup…").Action()
	item("Restore…").Action()
	if got := strings.Join(calls, ","); got != "backup,restore,backup,restore" {
		t.Errorf("hooks called: %s", got)
	}
	if quit := item("Quit"); !quit.IsQuit || quit.Shortcut == nil {
		t.Error("Quit is not the quit item with a shortcut")
	}

	none := NewMainWindow(a, root, Hooks{})
	if !none.backup.Disabled() || !none.restore.Disabled() {
		t.Error("Backup or Restore enabled without a hook")
	}
	test.Tap(none.backup) // does nothing, and does not panic
}
