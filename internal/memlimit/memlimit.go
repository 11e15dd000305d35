package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultShare is the part of the available memory a run takes when the
// user sets no budget: the rest stays for the VMs and the desktop.
const DefaultShare = 2

// Available returns the memory this process can use now, in bytes: the
// kernel's MemAvailable, or the room left under the memory limit of the
// process's cgroup (cgroup v2 memory.max, v1 memory.limit_in_bytes, the
// tightest along the path), whichever is smaller.
func Available() (int64, error) {
	return available("/proc", "/sys/fs/cgroup")
}

// Default is the budget when the user sets none: half of Available.
func Default() (int64, error) {
	avail, err := Available()
	if err != nil {
		return 0, err
	}
	return avail / DefaultShare, nil
}

func available(proc, cgroupRoot string) (int64, error) {
	avail, err := memAvailable(filepath.Join(proc, "meminfo"))
	if err != nil {
		return 0, err
	}
	if room, ok := cgroupRoom(filepath.Join(proc, "self/cgroup"), cgroupRoot); ok && room < avail {
		avail = room
	}
	return max(avail, 0), nil
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("reading the available memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading the available memory: %s: %q", path, sc.Text())
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("reading the available memory: no MemAvailable in %s", path)
}

// cgroupRoom is the smallest limit-minus-usage of the process's cgroups
// and their parents; ok is false when none has a limit.
func cgroupRoom(selfCgroup, root string) (room int64, ok bool) {
	data, err := os.ReadFile(selfCgroup)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		// "0::/user.slice/..." (v2) or "4:memory:/user.slice/..." (v1)
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, limitFile, usageFile string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir, limitFile, usageFile = root, "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dir, limitFile, usageFile = filepath.Join(root, "memory"), "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		// The process's own cgroup and each parent up to the root.
		for p := filepath.Clean("/" + parts[2]); ; p = filepath.Dir(p) {
			limit, lok := readNumber(filepath.Join(dir, p, limitFile))
			// v1 says "no limit" with a number near 2^63.
			if lok && limit < 1<<60 {
				usage, _ := readNumber(filepath.Join(dir, p, usageFile))
				if r := limit - usage; !ok || r < room {
					room, ok = r, true
				}
			}
			if p == "/" {
				break
			}
		}
	}
	return room, ok
}

func readNumber(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	return n, err == nil // "max" (v2, no limit) is not a number
}

// ErrBudget: the work needs more memory than its budget allows.
var ErrBudget = errors.New("not enough memory in the budget")

// BudgetError says what did not fit the memory budget. It is an ErrBudget.
type BudgetError struct {
	What   string // "reading this backup"
	Need   int64  // bytes it needs at the least
	Budget int64  // bytes the budget allows
	Detail string // what the need is made of
}

func (e *BudgetError) Error() string {
	s := fmt.Sprintf("%s needs at least %s of memory, but the memory budget is %s", e.What, MiB(e.Need), MiB(e.Budget))
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *BudgetError) Unwrap() error { return ErrBudget }

// MiB words a size in whole MiB, rounded up.
func MiB(n int64) string { return fmt.Sprintf("%d MiB", (n+1<<20-1)>>20) }
