package pipeline

import (
	"strings"
	"testing"
)

// TestBlockFitsTerminal: the status block never wraps on an 80-column
// terminal, however many audiences there are, and keeps every reading.
func TestBlockFitsTerminal(t *testing.T) {
	snap := Snapshot{Uptime: 3725, Accepted: 123456789, Rejected: 4321,
		Lanes: []LaneStatus{{Lane: "web", Rate: 12345, Lag: 1234567, WatermarkAge: 3600, Inserted: 987654321}, {Lane: "server", WatermarkAge: -1}}}
	for i := range 12 {
		snap.Readings = append(snap.Readings, Reading{Group: "audiences", Name: strings.Repeat("a", 5+i) + "_audience", Value: int64(i * 1000)})
	}
	snap.Readings = append(snap.Readings, Reading{Group: "campaigns", Name: "fired", Value: 7})
	lines := snap.Block()
	text := strings.Join(lines, "\n")
	for _, l := range lines {
		if len(l) > 80 {
			t.Errorf("line of %d columns: %q", len(l), l)
		}
	}
	for _, r := range snap.Readings {
		if !strings.Contains(text, r.Name) {
			t.Errorf("reading %s missing from the block:\n%s", r.Name, text)
		}
	}
	if !strings.Contains(text, "campaigns fired 7") {
		t.Errorf("campaigns row missing:\n%s", text)
	}
}
