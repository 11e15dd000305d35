package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/gui"
	"pedos.dev/backup/internal/host"
)

// The real program on a real X server: each way of starting it opens its
// window, which a key closes again, and the program exits with status 0.
func TestSmokeOnX(t *testing.T) {
	requireX11Tool(t, "Xvfb", "xvfb")
	requireX11Tool(t, "xdotool", "xdotool")
	dir := t.TempDir()
	bin := filepath.Join(dir, "pedos-manager")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	if _, err := host.Demo(root, host.InitOptions{User: "user"}); err != nil {
		t.Fatal(err)
	}
	display := startXvfb(t)
	// The pointer is parked in a corner, away from every window: Fyne
	// 2.7.1 can crash (a nil GLFW window in processMouseMoved, fyne-io/fyne
	// issue 5981) on a pointer event that reaches a window not yet or no
	// longer drawn, which Xvfb's pointer, centred on the windows as they
	// open, made happen in one run of three.
	xdotool(t, display, "mousemove", "0", "0")
	env := append(os.Environ(),
		"DISPLAY="+display,
		"LIBGL_ALWAYS_SOFTWARE=1", // mesa's software GL: Xvfb has no GPU
		"PEDOS_ROOT="+root,
		"HOME="+filepath.Join(dir, "home"), // Fyne keeps its settings there
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)

	for _, c := range []struct {
		args  []string
		title string
		key   string
	}{
		{nil, gui.Title, "ctrl+q"}, // the Quit shortcut
		{[]string{"backup"}, gui.BackupTitle, "Escape"},
		{[]string{"restore"}, gui.RestoreTitle, "Escape"},
	} {
		name := strings.Join(append([]string{"pedos-manager"}, c.args...), " ")
		t.Run(name, func(t *testing.T) {
			// Output goes to a file, which the program writes itself, so
			// the test can read it at any time.
			logFile := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
			out, err := os.Create(logFile)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			output := func() string { b, _ := os.ReadFile(logFile); return string(b) }
			cmd := exec.Command(bin, c.args...)
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var exitErr error
			go func() { exitErr = cmd.Wait(); close(done) }()
			defer func() { cmd.Process.Kill(); <-done }()

			// xdotool can report a failure for a key the program did get
			// (it quits before xdotool is done with its window), and the
			// search can find a window GLFW is still setting up, which
			// refuses the key: unless the program has ended, find the
			// window again and retry.
		keys:
			for attempt := 1; ; attempt++ {
				win := waitForWindow(t, display, c.title, done, output)
				err := xdotoolErr(display, "key", "--window", win, c.key)
				if err == nil {
					break
				}
				select {
				case <-done:
					break keys
				case <-time.After(time.Second): // time to end, if it got the key
				}
				if attempt == 5 {
					t.Fatalf("%v\n%s", err, output())
				}
			}
			select {
			case <-done:
				if exitErr != nil {
					t.Fatalf("exit: %v\n%s", exitErr, output())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("still running 30s after %s\n%s", c.key, output())
			}
		})
	}
}

// requireX11Tool fails the test, naming the Debian package, when an X
// program the smoke test needs is missing: a skipped smoke test would
// prove nothing.
func requireX11Tool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (scripts/test.sh installs it)", name, pkg)
	}
}

// startXvfb starts an X server of its own for the test and returns its
// display. Xvfb picks a free display number itself (-displayfd), so tests
// and desktops that run at once never collide.
func startXvfb(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logFile := filepath.Join(t.TempDir(), "xvfb.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	output := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	number := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		number <- strings.TrimSpace(line)
	}()
	select {
	case n := <-number:
		if n == "" {
			t.Fatalf("Xvfb did not start:\n%s", output())
		}
		return ":" + n
	case <-time.After(60 * time.Second):
		t.Fatalf("Xvfb gave no display in 60s:\n%s", output())
		return ""
	}
}

// waitForWindow waits until the window called title is shown on display
// and returns its id. It fails at once if the program exits (done) first.
func waitForWindow(t *testing.T, display, title string, done <-chan struct{}, output func() string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	search := exec.CommandContext(ctx, "xdotool", "search", "--sync", "--onlyvisible", "--name", "^"+title+"$")
	search.Env = append(os.Environ(), "DISPLAY="+display)
	found := make(chan string, 1)
	go func() {
		out, _ := search.Output()
		found <- strings.TrimSpace(string(out))
	}()
	select {
	case id := <-found:
		if id == "" {
			t.Fatalf("no window %q within 60s\n%s", title, output())
		}
		return strings.Fields(id)[0]
	case <-done:
		cancel()
		<-found
		t.Fatalf("exited before its window %q showed\n%s", title, output())
		return ""
	}
}

func xdotool(t *testing.T, display string, args ...string) {
	t.Helper()
	if err := xdotoolErr(display, args...); err != nil {
		t.Fatal(err)
	}
}

func xdotoolErr(display string, args ...string) error {
	cmd := exec.Command("xdotool", args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("xdotool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Usage errors exit with status 2 before any window opens, so they need
// no X server.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"frob"}, {"backup", "extra"}, {"--no-such-flag"}} {
		var stderr bytes.Buffer
		if code := run(args, &stderr); code != 2 || !strings.Contains(stderr.String(), "Usage: pedos-manager") {
			t.Errorf("%v: exit %d, want 2 with the usage\n%s", args, code, &stderr)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, &stderr); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}

// The desktop entries in dist/ start the wizard their name promises, whose
// window has that name, and are shown only where pedos-manager is
// installed.
func TestDesktopEntries(t *testing.T) {
	for file, want := range map[string]struct{ name, exec string }{
		"pedos-backup.desktop":  {gui.BackupTitle, "pedos-manager backup"},
		"pedos-restore.desktop": {gui.RestoreTitle, "pedos-manager restore"},
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "dist", file))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if lines[0] != "[Desktop Entry]" {
			t.Errorf("%s: first line %q", file, lines[0])
		}
		keys := map[string]string{}
		for _, l := range lines[1:] {
			k, v, ok := strings.Cut(l, "=")
			if !ok || keys[k] != "" {
				t.Errorf("%s: line %q", file, l)
			}
			keys[k] = v
		}
		for k, v := range map[string]string{
			"Type": "Application", "Name": want.name, "Exec": want.exec,
			"TryExec": "pedos-manager", "Terminal": "false", "Categories": "System;",
		} {
			if keys[k] != v {
				t.Errorf("%s: %s=%q, want %q", file, k, keys[k], v)
			}
		}
	}
}
