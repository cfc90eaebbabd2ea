package materialize

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

var windowUnits = []struct {
	suffix string
	d      time.Duration
}{
	{"w", 7 * 24 * time.Hour},
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
}

// ParseWindow reads a window such as "7d", "36h", "1d12h" or "90m": whole
// numbers followed by w, d, h, m or s. Windows are whole seconds, at least
// one second and at most ten years.
func ParseWindow(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty window: write a number and a unit, e.g. 7d, 12h or 30m")
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("%q is not a window: write whole numbers with a unit w, d, h, m or s, e.g. 7d or 1d12h", in)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1<<40 {
			return 0, fmt.Errorf("%q is not a window: the number is too large", in)
		}
		var unit time.Duration
		for _, u := range windowUnits {
			if rest[i:i+1] == u.suffix {
				unit = u.d
			}
		}
		if unit == 0 {
			return 0, fmt.Errorf("%q is not a window: unknown unit %q (use w, d, h, m or s)", in, rest[i:i+1])
		}
		total += time.Duration(n) * unit
		if total > maxWindow {
			return 0, fmt.Errorf("window %q is longer than ten years", in)
		}
		rest = rest[i+1:]
	}
	if total < time.Second {
		return 0, fmt.Errorf("window %q is empty: it must be at least 1s", in)
	}
	return total, nil
}

// FormatWindow writes d in its largest whole unit ("7d", "36h"), the form
// generated names and explanations use.
func FormatWindow(d time.Duration) string {
	if d == 0 {
		return "ever"
	}
	for _, u := range windowUnits[1:] {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}
