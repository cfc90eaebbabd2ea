package backfill

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogProgress checks the structured progress lines written off a
// terminal: a start, throttled running lines with rate and ETA, and an end.
func TestLogProgress(t *testing.T) {
	var buf bytes.Buffer
	p := LogProgress{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Interval: time.Hour}
	b := p.Phase("reingest", "events", 1000)
	b.(*logBar).start = time.Now().Add(-2 * time.Second)
	b.Set(100) // the first Set after start is shown
	b.Set(200) // within the interval: not shown
	b.Note("yielding to live lanes (5000 behind)")
	b.Done()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	if lines[0]["state"] != "started" || lines[1]["done"] != float64(100) || lines[1]["eta"] == nil || lines[1]["rate_per_s"].(float64) < 40 {
		t.Fatalf("lines: %v", lines)
	}
	if lines[2]["note"] != "yielding to live lanes (5000 behind)" || lines[3]["state"] != "done" || lines[3]["done"] != float64(200) {
		t.Fatalf("lines: %v", lines)
	}
}
