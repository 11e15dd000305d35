package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes Qubes' parse_size accepts: K, M, G, T (and
// KB...) are powers of 1000, Ki, Mi, Gi, Ti (and KiB...) powers of 1024.
// Longer suffixes come first so that "GiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KI", 1 << 10}, {"MI", 1 << 20}, {"GI", 1 << 30}, {"TI", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseSize reads a size in bytes: plain digits, or digits and a unit as
// Qubes writes them (10GiB, 512MiB, 1G = 10^9 bytes), case-insensitive.
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || t == "" || t[0] == '+' || t[0] == '-' {
		return 0, fmt.Errorf("invalid size %q (examples: 10GiB, 512MiB, 1G, 1073741824)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// FormatSize writes n bytes for people: whole binary units where exact
// ("2GiB"), else one decimal ("1.5MiB"), plain bytes below 1 KiB.
func FormatSize(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n < 1024 && n > -1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, u := float64(n), ""
	for _, u = range units {
		f /= 1024
		if math.Abs(f) < 1024 {
			break
		}
	}
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f%s", f, u)
	}
	return fmt.Sprintf("%.1f%s", f, u)
}
