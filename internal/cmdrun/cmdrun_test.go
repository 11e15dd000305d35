package cmdrun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestFeedStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	c, err := Start(context.Background(), "cat > '"+out+"'", Config{Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c.Stdin, "archive bytes"); err != nil {
		t.Fatal(err)
	}
	c.Stdin.Close()
	if err := c.Wait(); err != nil || c.Killed() {
		t.Fatalf("wait: %v, killed %v", err, c.Killed())
	}
	if b, _ := os.ReadFile(out); string(b) != "archive bytes" {
		t.Errorf("the command got %q", b)
	}
}

func TestReadStdout(t *testing.T) {
	var stderr bytes.Buffer
	c, err := Start(context.Background(), "echo data; echo said >&2", Config{Stdout: true, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c.Stdout)
	c.Stdout.Close()
	if err != nil || string(b) != "data\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if stderr.String() != "said\n" || c.Output() != "said" {
		t.Errorf("stderr %q, output %q", stderr.String(), c.Output())
	}
}

// A failing command's status and the end of its output are its account.
func TestFailure(t *testing.T) {
	c, err := Start(context.Background(), "echo oops >&2; exit 3", Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("wait: %v", err)
	}
	if c.Killed() || c.Output() != "oops" {
		t.Errorf("killed %v, output %q", c.Killed(), c.Output())
	}
}

// Kill, and a cancelled context, stop everything the command started: the
// output pipe, which a background child holds too, reaches its end only
// once that child is gone.
func TestKillStopsTheGroup(t *testing.T) {
	for _, how := range []string{"kill", "cancel"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := Start(ctx, "sleep 60 & echo started; sleep 60", Config{Stdout: true})
			if err != nil {
				t.Fatal(err)
			}
			line := make([]byte, 8)
			if _, err := io.ReadFull(c.Stdout, line); err != nil || string(line) != "started\n" {
				t.Fatalf("read %q, %v", line, err)
			}
			if how == "kill" {
				c.Kill()
			} else {
				cancel()
			}
			if rest, err := io.ReadAll(c.Stdout); err != nil || len(rest) != 0 {
				t.Fatalf("after the kill: %q, %v", rest, err)
			}
			c.Stdout.Close()
			if err := c.Wait(); err == nil || !c.Killed() {
				t.Errorf("wait: %v, killed %v", err, c.Killed())
			}
			c.Kill() // ended: nothing to do
		})
	}
}

func TestStartFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, "true", Config{Stdin: true, Stdout: true}); err == nil {
		t.Error("started with a cancelled context")
	}
}
