package backfill

import (
	"context"
	"testing"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestRunsRoundTrip: every column of backfill_runs reads back into the
// field its tag names, through each of the run queries.
func TestRunsRoundTrip(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	want := Run{RunID: "r-1", PlanID: "p-1", Kind: KindApply, State: StateRunning, Phase: PhaseLoad, Who: "ops", Host: "h",
		PID: 42, Command: "tideline backfill apply", Source: "kafka", Lanes: "web,server", Campaigns: "c",
		WindowFromMs: 1, WindowToMs: 2, StartedAtMs: 3, FinishedAtMs: 4, EventsInWindow: 5, EventsMissing: 6, EventsLate: 7,
		EventsReingested: 8, EventsRestored: 9, CustomersStale: 10, CustomersRederive: 11, Qualifications: 12,
		Fired: 13, FiredLate: 14, Skipped: 15, Error: "e"}
	if err := want.save(ctx, conn); err != nil {
		t.Fatal(err)
	}
	listed, err := ListRuns(ctx, conn, KindApply, 10)
	if err != nil {
		t.Fatal(err)
	}
	of, err := runsOf(ctx, conn, "p-1")
	if err != nil {
		t.Fatal(err)
	}
	run, err := running(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]Run{"ListRuns": listed, "runsOf": of, "running": run} {
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s = %+v, want [%+v]", name, got, want)
		}
	}
}
