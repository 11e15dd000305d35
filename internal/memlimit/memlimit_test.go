package memlimit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const meminfo = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"

// The tightest of MemAvailable and each cgroup's room (limit less usage,
// along the path up to the root) wins; "max" and v1's huge number mean no
// limit.
func TestAvailable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cgroup string
		files  map[string]string
		want   int64
	}{
		{"no cgroup limit (v2)", "0::/user.slice/app\n", map[string]string{
			"user.slice/app/memory.max": "max\n", "user.slice/memory.max": "max\n"}, 8000000 << 10},
		{"v2 limit on the own group", "0::/user.slice/app\n", map[string]string{
			"user.slice/app/memory.max": "4294967296\n", "user.slice/app/memory.current": "1073741824\n"}, 3 << 30},
		{"v2 limit on a parent", "0::/user.slice/app\n", map[string]string{
			"user.slice/app/memory.max": "max\n", "user.slice/memory.max": "2147483648\n", "user.slice/memory.current": "0\n"}, 2 << 30},
		{"v1 limit", "12:memory:/machine\n5:cpu,cpuacct:/machine\n", map[string]string{
			"memory/machine/memory.limit_in_bytes": "1073741824\n", "memory/machine/memory.usage_in_bytes": "536870912\n"}, 512 << 20},
		{"v1 no limit", "12:cpuset,memory:/machine\n", map[string]string{
			"memory/machine/memory.limit_in_bytes": "9223372036854771712\n"}, 8000000 << 10},
		{"a limit above MemAvailable", "0::/\n", map[string]string{"memory.max": "99999999999999\n"}, 8000000 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "proc/meminfo"), meminfo)
			write(t, filepath.Join(dir, "proc/self/cgroup"), tc.cgroup)
			for p, c := range tc.files {
				write(t, filepath.Join(dir, "cg", p), c)
			}
			got, err := available(filepath.Join(dir, "proc"), filepath.Join(dir, "cg"))
			if err != nil || got != tc.want {
				t.Errorf("available = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "proc/meminfo"), "MemTotal: 1 kB\n")
	if _, err := available(filepath.Join(dir, "proc"), dir); err == nil {
		t.Error("no MemAvailable: no error")
	}
}

// On this machine: something sensible.
func TestAvailableHere(t *testing.T) {
	got, err := Available()
	if err != nil || got < 64<<20 {
		t.Errorf("Available = %d, %v", got, err)
	}
	d, err := Default()
	if err != nil || d > got || d < got/DefaultShare-1 {
		t.Errorf("Default = %d, %v (available %d)", d, err, got)
	}
}

func TestBudgetError(t *testing.T) {
	err := error(&BudgetError{What: "reading this backup", Need: 2<<30 + 1, Budget: 1 << 30, Detail: "key derivation logN=21"})
	if !errors.Is(err, ErrBudget) || err.Error() != "reading this backup needs at least 2049 MiB of memory, but the memory budget is 1024 MiB (key derivation logN=21)" {
		t.Errorf("%v", err)
	}
}
