package backfill

import (
	"fmt"
	"strings"
	"time"
)

// Window is the half-open time range [From, To) a plan covers, in Kafka
// record time: the time the collector received each event, which is when it
// should have been loaded.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// FromMs and ToMs are the bounds in epoch milliseconds.
func (w Window) FromMs() int64 { return w.From.UnixMilli() }

// ToMs is the exclusive end in epoch milliseconds.
func (w Window) ToMs() int64 { return w.To.UnixMilli() }

// Overlaps reports whether w and o share an instant.
func (w Window) Overlaps(o Window) bool { return w.From.Before(o.To) && o.From.Before(w.To) }

// Validate says what is wrong with w.
func (w Window) Validate() error {
	switch {
	case w.From.IsZero() || w.To.IsZero():
		return fmt.Errorf("the window needs both --from and --to")
	case !w.From.Before(w.To):
		return fmt.Errorf("the window is empty: --from %s is not before --to %s", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	}
	return nil
}

func (w Window) String() string {
	return fmt.Sprintf("%s → %s (%s)", w.From.UTC().Format("2006-01-02 15:04:05"), w.To.UTC().Format("2006-01-02 15:04:05 MST"), dur(w.To.Sub(w.From).Milliseconds()))
}

// ParseTime reads a window bound: RFC 3339 ("2025-12-14T18:58:00Z"), a
// UTC date and time ("2025-12-14 18:58", "2025-12-14 18:58:05"), a date, an
// epoch in milliseconds, "now", or a duration before now ("-6h", "-90m").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s[1:]); err == nil {
			return now.Add(-d), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	var ms int64
	if _, err := fmt.Sscanf(s, "%d", &ms); err == nil && fmt.Sprint(ms) == s && ms > 1e11 {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2025-12-14T18:58:00Z), \"2025-12-14 18:58\" (UTC), epoch milliseconds, now, or -6h", s)
}
