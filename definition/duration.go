package definition

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// units are the duration units, largest first.
var units = []struct {
	name string
	d    time.Duration
}{
	{"w", 7 * 24 * time.Hour},
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
}

// howTo ends every duration error: what a duration looks like.
const howTo = "write numbers each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g. 15m, 7d or 1d12h"

// ParseDuration reads the durations definition files use: one or more
// numbers, each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g.
// "15m", "30d", "1d12h", "1.5d"; "0" alone is zero. Go's time.ParseDuration
// has no days, and budgets and windows are mostly days. Callers bound the
// result (an audience window is whole seconds, at least 1s).
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration: %s", howTo)
	}
	if in == "0" {
		return 0, nil
	}
	var total float64
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("%q is not a duration: expected a number at %q; %s", in, rest, howTo)
		}
		numText := rest[:i]
		num, err := strconv.ParseFloat(numText, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: %q is not a number; %s", in, numText, howTo)
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		if j == 0 {
			return 0, fmt.Errorf("%q is not a duration: %s has no unit; %s", in, numText, howTo)
		}
		var unit time.Duration
		for _, u := range units {
			if rest[:j] == u.name {
				unit = u.d
			}
		}
		if unit == 0 {
			return 0, fmt.Errorf("%q is not a duration: unknown unit %q; %s", in, rest[:j], howTo)
		}
		rest = rest[j:]
		total += num * float64(unit)
		if total > math.MaxInt64/2 {
			return 0, fmt.Errorf("%q is not a duration: it is too large", in)
		}
	}
	return time.Duration(total), nil
}

// FormatDuration writes d the way definition files do ("30d", "15m",
// "1h30m"), in days and smaller units, so it parses back to d.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range units[1:] {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return b.String()
}

// FormatUnit writes d in its largest whole unit, days at most ("14d",
// "36h", "90m"), the form generated names use.
func FormatUnit(d time.Duration) string {
	for _, u := range units[1:] {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
