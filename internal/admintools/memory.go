package admintools

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/pflag"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/memlimit"
)

// maxMemoryEnv sets the memory budget when --max-memory does not.
const maxMemoryEnv = "PEDOS_MAX_MEMORY"

func addMaxMemoryFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "max-memory", "", "use at most `SIZE` of memory for key derivations and chunk buffers (default: half of what is available; also "+maxMemoryEnv+")")
}

// memoryBudget resolves --max-memory, then PEDOS_MAX_MEMORY; 0 leaves the
// engines' default, half of what the machine and the cgroup have
// available. A budget also becomes the Go runtime's soft memory limit, so
// that released chunk buffers are collected before the heap outgrows it.
func memoryBudget(flag string) (int64, error) {
	s, what := flag, "--max-memory"
	if s == "" {
		s, what = os.Getenv(maxMemoryEnv), maxMemoryEnv
	}
	if s == "" {
		return 0, nil
	}
	n, err := cli.ParseSize(s)
	if err != nil {
		return 0, cli.AsUsage(fmt.Errorf("%s: %w", what, err))
	}
	if n < 64<<20 {
		return 0, cli.AsUsage(fmt.Errorf("%s: %s is below the 64 MiB any run needs", what, cli.FormatSize(n)))
	}
	debug.SetMemoryLimit(n)
	return n, nil
}

// memoryHint adds to a memory error the advice that resolves it.
func memoryHint(err error) error {
	if err == nil || cli.Hint(err) != "" {
		return err
	}
	var chunk *archive.ChunkTooLargeError
	switch {
	case errors.Is(err, memlimit.ErrBudget):
		hint := "raise the budget with --max-memory SIZE or " + maxMemoryEnv
		if d, derr := memlimit.Default(); derr == nil {
			hint += fmt.Sprintf(" (the default is half of the memory available now: %s)", memlimit.MiB(d))
		}
		return cli.WithHint(err, "%s", hint)
	case errors.As(err, &chunk):
		return cli.WithHint(err, "if you trust this backup, raise the limit with --max-chunk-size %s", memlimit.MiB(chunk.Size))
	}
	return err
}
