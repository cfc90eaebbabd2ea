package trigger

import (
	"fmt"
	"testing"
)

// TestCompactProgress checks the bound on delivery progress kept while
// ClickHouse refuses it: one row per entry (the newest), then at most the
// limit, the newest entries kept.
func TestCompactProgress(t *testing.T) {
	var rows []*Entry
	for round := uint64(1); round <= 3; round++ {
		for i := range 10 {
			rows = append(rows, &Entry{Key: fmt.Sprintf("k%d", i), UpdatedAtMs: round*100 + uint64(i), Attempts: uint32(round)})
		}
	}
	got := compactProgress(rows, 0)
	if len(got) != 10 {
		t.Fatalf("%d rows, want one per key (10)", len(got))
	}
	for _, e := range got {
		if e.Attempts != 3 {
			t.Errorf("%s kept attempt %d, want the newest (3)", e.Key, e.Attempts)
		}
	}
	got = compactProgress(rows, 4)
	if len(got) != 4 || got[0].Key != "k6" || got[3].Key != "k9" {
		t.Errorf("bounded to 4: %v", describeRows(got))
	}
}

func describeRows(es []*Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s@%d", e.Key, e.UpdatedAtMs))
	}
	return out
}
