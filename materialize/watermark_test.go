package materialize

import (
	"testing"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestWatermarkRule pins the one rule the evaluator, the poller and backfill
// share: the lowest watermark of the lanes asked for, a lane without one
// counting as 0, and lanes not asked for ignored.
func TestWatermarkRule(t *testing.T) {
	conn := testenv.ClickHouse(t)
	check := func(lanes []string, wantMs uint64, wantOK bool) {
		t.Helper()
		got, ok, err := Watermark(t.Context(), conn, lanes)
		if err != nil {
			t.Fatal(err)
		}
		if got != wantMs || ok != wantOK {
			t.Errorf("Watermark(%v) = %d, %v; want %d, %v", lanes, got, ok, wantMs, wantOK)
		}
	}
	check([]string{"web", "server"}, 0, false)
	progress := func(lane string, partition int32, ms uint64) {
		t.Helper()
		if err := ingest.InsertProgress(t.Context(), conn, []ingest.Progress{
			{Lane: lane, Topic: "events." + lane, Partition: partition, WatermarkMs: ms},
		}, chdb.NowMs()); err != nil {
			t.Fatal(err)
		}
	}
	progress("web", 0, 5_000)
	progress("web", 1, 3_000)
	check([]string{"web"}, 3_000, true)
	check([]string{"web", "server"}, 0, false)
	progress("server", 0, 9_000)
	progress("backfill", 0, 1_000)
	check([]string{"web", "server"}, 3_000, true)
	check([]string{"server"}, 9_000, true)
}
