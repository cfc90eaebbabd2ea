package trigger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads the durations campaign files use: a number followed by
// ms, s, m, h, d (24h) or w (7d), e.g. "15m", "30d", "1d12h". Go's
// time.ParseDuration has no days, and campaign budgets are mostly days.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration: write e.g. 15m, 2h or 30d")
	}
	if in == "0" {
		return 0, nil
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("duration %q: expected a number at %q (write e.g. 15m, 2h or 30d)", in, rest)
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %q is not a number", in, rest[:i])
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		var unit time.Duration
		switch rest[:j] {
		case "ms":
			unit = time.Millisecond
		case "s":
			unit = time.Second
		case "m":
			unit = time.Minute
		case "h":
			unit = time.Hour
		case "d":
			unit = 24 * time.Hour
		case "w":
			unit = 7 * 24 * time.Hour
		case "":
			return 0, fmt.Errorf("duration %q: %q has no unit (ms, s, m, h, d or w)", in, rest)
		default:
			return 0, fmt.Errorf("duration %q: unknown unit %q (use ms, s, m, h, d or w)", in, rest[:j])
		}
		rest = rest[j:]
		total += time.Duration(num * float64(unit))
	}
	if total < 0 {
		return 0, fmt.Errorf("duration %q is negative", in)
	}
	return total, nil
}

// FormatDuration writes d the way campaign files do ("30d", "15m", "1h30m").
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return b.String()
}
