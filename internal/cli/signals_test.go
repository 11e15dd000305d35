package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalsHelper is the child of the Signals tests.
func TestSignalsHelper(t *testing.T) {
	mode := os.Getenv("PEDOS_TEST_SIGNALS")
	if mode == "" {
		t.Skip("only run as a child process")
	}
	s := WatchSignals(func(sig os.Signal) { fmt.Printf("idle exit (%v)\n", sig) })
	if mode == "busy" {
		end := s.Busy()
		fmt.Println("ready")
		<-s.Context().Done()
		fmt.Printf("cancelled: %v, interrupted %v\n", context.Cause(s.Context()), s.Interrupted())
		end()
		s.Stop()
		os.Exit(0)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// A signal outside a Busy section ends the program at once with
// ExitInterrupted and the idle sentence; inside one it cancels the context
// and the program goes on to clean up. SIGHUP and SIGTERM are handled like
// SIGINT.
func TestSignals(t *testing.T) {
	for _, c := range []struct {
		mode   string
		sig    syscall.Signal
		status int
		out    string
	}{
		{"idle", syscall.SIGTERM, ExitInterrupted, "idle exit (terminated)\n"},
		{"idle", syscall.SIGHUP, ExitInterrupted, "idle exit (hangup)\n"},
		{"busy", syscall.SIGINT, 0, "cancelled: interrupted (interrupt), interrupted true\n"},
		{"busy", syscall.SIGTERM, 0, "cancelled: interrupted (terminated), interrupted true\n"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignalsHelper$")
		cmd.Env = append(os.Environ(), "PEDOS_TEST_SIGNALS="+c.mode)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		if line, _ := r.ReadString('\n'); line != "ready\n" {
			t.Fatalf("%s: child said %q", c.mode, line)
		}
		cmd.Process.Signal(c.sig)
		var rest strings.Builder
		for {
			line, err := r.ReadString('\n')
			rest.WriteString(line)
			if err != nil {
				break
			}
		}
		err = cmd.Wait()
		if got := cmd.ProcessState.ExitCode(); got != c.status {
			t.Errorf("%s, %v: exit status %d (%v), want %d", c.mode, c.sig, got, err, c.status)
		}
		if got := strings.TrimSuffix(rest.String(), "PASS\n"); got != c.out {
			t.Errorf("%s, %v: child said %q, want %q", c.mode, c.sig, got, c.out)
		}
	}
}
