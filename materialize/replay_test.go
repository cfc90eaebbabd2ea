package materialize

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestReplayChangesNothing loads a stream through Kafka and the loader,
// evaluates, then delivers every record a second time (a consumer replay:
// new offsets, new ingest times) and evaluates again. Every derived table
// must read exactly as before — attribute ingest times included, since a
// value keeps the ingest time of its first delivery — and no transition or
// membership row may be written.
func TestReplayChangesNothing(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			applyDirs(t, conn, oracleSettings, "audiences", "testdata/oracle")
			h := newHarness(t, br, conn, "replay")
			h.startLoader("live", []string{"web", "server"}, nil)
			ev := testEvaluator(t, conn)
			g := newGenerator(7, 100, time.Now())
			// Within five hours and never ahead of now, so no window of the
			// audiences (the shortest is 6h) ends while the test runs.
			g.span, g.noFuture = 5*time.Hour, true
			var recs []record
			for range 1500 {
				recs = append(recs, g.next())
			}
			load := func() {
				producedAt := ms(time.Now())
				h.produce(recs)
				h.rows += int64(len(recs))
				h.waitRows(h.rows)
				h.waitWatermark(producedAt)
				evaluate(t, ev)
				// A second pass after the touches settled.
				settle()
				evaluate(t, ev)
			}
			load()
			counts := map[string]string{
				"transition rows": "SELECT toString(count()) FROM audience_transitions",
				"membership rows": "SELECT toString(count()) FROM audience_membership",
			}
			transitionsQ := map[string]string{"audience_transitions": `SELECT concat(audience_id, '|', customer_id, '|', toString(episode), '|', kind, '|', toString(event_time_ms), '|', toString(ingest_time_ms), '|', toString(derived_at_ms), '|', message_id, '|', lane) FROM audience_transitions FINAL`}
			// Raw row counts of replacing tables change with merges:
			// count after a forced one, before and after the replay.
			testenv.Merge(t, conn, "audience_transitions", "audience_membership")
			before := snapshot(t, conn, derivedQueries(true))
			beforeT := snapshot(t, conn, transitionsQ)
			beforeN := snapshot(t, conn, counts)

			load()
			var rows uint64
			// Deliveries are counted in event_positions, which merges do not
			// collapse (events keeps one row per message once merged).
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM event_positions").Scan(&rows); err != nil || rows != uint64(2*len(recs)) {
				t.Fatalf("event_positions holds %d deliveries, want every record twice (%d): %v", rows, 2*len(recs), err)
			}
			testenv.Merge(t, conn, "audience_transitions", "audience_membership")
			sameSnapshots(t, "after the replay", before, snapshot(t, conn, derivedQueries(true)))
			sameSnapshots(t, "after the replay", beforeT, snapshot(t, conn, transitionsQ))
			sameSnapshots(t, "after the replay", beforeN, snapshot(t, conn, counts))
			t.Logf("%s: %d events replayed; %d transitions, %d attribute rows unchanged", br.Name, len(recs), len(beforeT["audience_transitions"]), len(before["customer_attributes"]))
		})
	}
}
