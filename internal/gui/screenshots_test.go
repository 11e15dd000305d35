package gui

import (
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
)

var update = flag.Bool("update", false, "write the screenshots to doc/screenshots (scripts/screenshots.sh)")

// screenshotDir is where the documentation keeps its screenshots.
const screenshotDir = "../../doc/screenshots"

// TestScreenshots renders every window the documentation shows, with the
// test driver and the real theme. With -update it writes them to
// doc/screenshots; without, it still renders them, so a window that
// cannot be drawn fails here.
func TestScreenshots(t *testing.T) {
	shots := []struct {
		name string
		open func(t *testing.T, a fyne.App) fyne.Window
	}{
		{"main-window", func(t *testing.T, a fyne.App) fyne.Window {
			root, h := demoHost(t)
			for _, vm := range []string{"sys-net", "sys-firewall", "work"} {
				if err := h.Start(vm); err != nil {
					t.Fatal(err)
				}
			}
			for _, vm := range []string{"dom0", "work", "personal", "vault"} {
				setBackupTime(t, h, vm, time.Date(2026, 11, 26, 3, 15, 0, 0, time.Local))
			}
			m := NewMainWindow(a, root, Hooks{Backup: func() {}, Restore: func() {}})
			m.Window.Show()
			return m.Window
		}},
		{"backup-select", func(t *testing.T, a fyne.App) fyne.Window { return backupShot(t, a, 0) }},
		{"backup-destination", func(t *testing.T, a fyne.App) fyne.Window { return backupShot(t, a, 1) }},
		{"backup-browse-vm", browseVMShot},
		{"backup-summary", func(t *testing.T, a fyne.App) fyne.Window { return backupShot(t, a, 2) }},
		{"backup-summary-problem", func(t *testing.T, a fyne.App) fyne.Window { return backupShot(t, a, -1) }},
		{"backup-progress", func(t *testing.T, a fyne.App) fyne.Window { return backupShot(t, a, 3) }},
		{"backup-finish", func(t *testing.T, a fyne.App) fyne.Window { return backupShot(t, a, 4) }},
	}
	shots = append(shots, restoreScreenshots...)
	// A shot may change the working directory (t.Chdir) for its paths.
	dir, err := filepath.Abs(screenshotDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, shot := range shots {
		t.Run(shot.name, func(t *testing.T) {
			win := shot.open(t, newApp(t))
			img := win.Canvas().Capture()
			if colors := countColors(img); colors < 8 {
				t.Fatalf("the window renders as %d colours: nothing drawn?", colors)
			}
			if !*update {
				return
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(dir, shot.name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func countColors(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
		}
	}
	return len(seen)
}

// browseVMShot is the destination page's "…" browsing the running VM
// work, in the user's home there.
func browseVMShot(t *testing.T, a fyne.App) fyne.Window {
	root, h := demoHost(t)
	home := filepath.Join(startVM(t, h, "work"), "home", "user")
	if err := os.MkdirAll(filepath.Join(home, "backups"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "notes.txt"), make([]byte, 12345), 0o600); err != nil {
		t.Fatal(err)
	}
	hs := openBackupWizard(t, a, root)
	b := hs.b
	browsed := make(chan struct{}, 1)
	b.testHookBrowsed = func() { browsed <- struct{}{} }
	hs.next()
	b.targetVM.SetSelected("work")
	test.Tap(b.browse)
	wait(t, browsed, "the VM's home to be listed")
	return hs.win
}

// backupShot opens the Backup wizard on the demo host (work running) and
// goes on to page (0: Select VMs ... 4: Finish, verified); -1 is the
// summary of a backup of the dom0 home into itself.
func backupShot(t *testing.T, a fyne.App, page int) fyne.Window {
	root, h := demoHost(t)
	if err := h.Start("work"); err != nil {
		t.Fatal(err)
	}
	hs := openBackupWizard(t, a, root)
	b := hs.b
	if page == 0 {
		test.Tap(listItem(t, b.availList, "disp123"))
		return hs.win
	}
	hs.next()
	dest := filepath.Join(t.TempDir(), "backups")
	if page < 0 {
		u, err := h.Dom0()
		if err != nil {
			t.Fatal(err)
		}
		dest = u.Home
	} else if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	hs.fillDestination(dest, "correct horse battery staple")
	if page == 1 {
		return hs.win
	}
	hs.next()
	if page <= 2 {
		return hs.win
	}
	hs.next()
	if err := wait(t, hs.runDone, "the backup"); err != nil {
		t.Fatal(err)
	}
	if page == 3 {
		return hs.win
	}
	hs.next()
	test.Tap(b.verify)
	wait(t, hs.checked, "Verify")
	return hs.win
}
