package admintools_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"pedos.dev/backup/internal/admintools"
	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/qrexec"
)

// TestMain makes the test binary double as every tool: testscript runs it
// under the tool's name for each command in a script.
func TestMain(m *testing.M) {
	qrexec.MaybeServe() // qvm-backup --dest-vm re-executes this binary as the VM side
	// Tests that need a tool in a process of its own (toolProcess).
	if name := os.Getenv(toolEnv); name != "" {
		os.Exit(admintools.Tools[name](os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	cmds := map[string]func(){}
	for name, run := range admintools.Tools {
		cmds[name] = func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
	}
	testscript.Main(m, cmds)
}

// TestScripts runs the terminal sessions in testdata/script. Each starts
// in an empty $WORK with PEDOS_ROOT=$WORK/host.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("..", "..", "testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("PEDOS_ROOT", filepath.Join(env.WorkDir, "host"))
			// The repository, for scripts that run its documents
			// (doc/emergency-restore.md).
			repo, err := filepath.Abs(filepath.Join("..", ".."))
			env.Setenv("REPO", repo)
			return err
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":    cmdStatus,
			"mksparse":  cmdMksparse,
			"sparse":    cmdSparse,
			"lsbackup":  cmdLsbackup,
			"lsdir":     cmdLsdir,
			"cmpsparse": cmdCmpsparse,
			"one":       cmdOne,
			"newest":    cmdNewest,
			"perm":      cmdPerm,
			"interrupt": cmdInterrupt,
			"tmpfs":     cmdTmpfs,
			"fill":      cmdFill,
			"fifo":      cmdFifo,
			"mklegacy":  cmdMklegacy,
			"replace":   cmdReplace,
			"expand":    cmdExpand,
			"fdrun":     cmdFdrun,
			"pipehead":  cmdPipehead,
			"dead":      cmdDead,
			"waitfor":   cmdWaitfor,
		},
		// [need:TOOL,...]: external programs (or "tmpfs") a script needs.
		Condition: func(cond string) (bool, error) {
			if list, ok := strings.CutPrefix(cond, "need:"); ok {
				return need(list)
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		// PEDOS_UPDATE_SCRIPTS=1 rewrites the expected output that cmp
		// compares against; review the diff before committing it.
		UpdateScripts: os.Getenv("PEDOS_UPDATE_SCRIPTS") != "",
	})
}

// need reports whether the external programs a script depends on exist
// ("tmpfs": whether small file systems can be mounted). Under CI a missing
// one is an error that fails the script, since a skipped interop test
// proves nothing there; elsewhere the script may skip.
func need(list string) (bool, error) {
	var missing []string
	for _, tool := range strings.Split(list, ",") {
		if tool == "tmpfs" {
			if !canMountTmpfs() {
				missing = append(missing, "a mountable tmpfs (needs root)")
			}
		} else if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 && os.Getenv("CI") != "" {
		return false, fmt.Errorf("missing under CI: %s (scripts/test.sh installs the tools)", strings.Join(missing, ", "))
	}
	return len(missing) == 0, nil
}

// status CODE PROG [ARG...] runs PROG like exec and checks its exit status.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status CODE PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// mksparse FILE SIZE [OFFSET+LEN...] makes a sparse file of SIZE bytes
// holding LEN bytes of non-zero data at each OFFSET (sizes as qvm-volume
// takes them).
func cmdMksparse(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mksparse FILE SIZE [OFFSET+LEN...]")
	}
	size, err := cli.ParseSize(args[1])
	ts.Check(err)
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	ts.Check(f.Truncate(size))
	for i, r := range args[2:] {
		o, l, ok := strings.Cut(r, "+")
		if !ok {
			ts.Fatalf("mksparse: %q is not OFFSET+LEN", r)
		}
		off, err := cli.ParseSize(o)
		ts.Check(err)
		n, err := cli.ParseSize(l)
		ts.Check(err)
		buf := make([]byte, n)
		for j := range buf {
			buf[j] = byte(j*7+i) | 1
		}
		_, err = f.WriteAt(buf, off)
		ts.Check(err)
	}
	ts.Check(f.Close())
}

// sparse FILE MAX checks that FILE takes at most MAX bytes of disk;
// "! sparse" checks that it takes more.
func cmdSparse(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sparse FILE MAX")
	}
	limit, err := cli.ParseSize(args[1])
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	used := fi.Sys().(*syscall.Stat_t).Blocks * 512
	if (used <= limit) == neg {
		ts.Fatalf("%s takes %d bytes of disk (its length is %d), limit %d", args[0], used, fi.Size(), limit)
	}
	fmt.Fprintf(ts.Stdout(), "%s takes %d bytes of disk\n", args[0], used)
}
