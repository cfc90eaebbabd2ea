package trigger

import (
	"context"
	"maps"
	"testing"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestFiredQualifiedAt: the fired entries, late or not, whose qualifying
// event time is in the window, each by its newest version.
func TestFiredQualifiedAt(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(testenv.ClickHouse(t))
	entry := func(key string, d Action, qualifiedMs, version uint64) *Entry {
		return &Entry{Key: key, CampaignID: "c", CustomerID: "u-" + key, Decision: string(d), QualifiedEventTimeMs: qualifiedMs,
			DetectedAtMs: 5000, UpdatedAtMs: version}
	}
	if err := l.Insert(ctx, []*Entry{
		entry("fired", Fire, 1000, 1),
		entry("late", FireLate, 1999, 1),
		entry("skipped", Skip, 1500, 1),
		entry("before", Fire, 999, 1),
		entry("after", Fire, 2000, 1),
		entry("unfired", Fire, 1200, 1), entry("unfired", Skip, 1200, 2),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := l.FiredQualifiedAt(ctx, 1000, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{"fired": 1000, "late": 1999}; !maps.Equal(got, want) {
		t.Errorf("fired in [1000, 2000): %v, want %v", got, want)
	}
}
