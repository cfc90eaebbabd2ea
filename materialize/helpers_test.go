package materialize

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// applyPlan compiles the definitions in dirs and applies them.
func applyDirs(t testing.TB, conn *chdb.Conn, settings AttributeSettings, dirs ...string) *Plan {
	t.Helper()
	var auds []*Audience
	for _, dir := range dirs {
		a, err := LoadDefinitions(dir)
		if err != nil {
			t.Fatalf("load %s: %v", dir, err)
		}
		auds = append(auds, a...)
	}
	plan, err := Compile(auds, settings)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if _, err := Apply(context.Background(), conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return plan
}

// obj marshals a JSON object the way the collector stores it (compact).
func obj(t testing.TB, m map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// insertDirect inserts events as the loader would, bypassing Kafka.
func insertDirect(t testing.TB, conn *chdb.Conn, lane string, evs ...*ingest.Event) {
	t.Helper()
	var rows ingest.EventRows
	for i, ev := range evs {
		rows.Add(ev, lane, "events."+lane, 0, int64(i))
	}
	if err := rows.Insert(context.Background(), conn, chdb.NowMs()); err != nil {
		t.Fatalf("insert events: %v", err)
	}
}

// setWatermark records progress rows putting both live lanes at ms.
func setWatermark(t testing.TB, conn *chdb.Conn, ms uint64) {
	t.Helper()
	at := chdb.NowMs()
	if err := ingest.InsertProgress(context.Background(), conn, []ingest.Progress{
		{Lane: "web", Topic: "events.web", WatermarkMs: ms},
		{Lane: "server", Topic: "events.server", WatermarkMs: ms},
	}, at); err != nil {
		t.Fatalf("insert progress: %v", err)
	}
}

func testEvaluator(t testing.TB, conn *chdb.Conn) *Evaluator {
	t.Helper()
	ev, err := NewEvaluator(conn, DefaultConfig(), nil, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func evaluate(t testing.TB, ev *Evaluator) Stats {
	t.Helper()
	st, err := ev.EvaluateOnce(context.Background())
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	return st
}

// members returns the current members of each audience.
func members(t testing.TB, conn *chdb.Conn) map[string][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT audience_id, customer_id FROM
(SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m FROM audience_membership GROUP BY audience_id, customer_id)
WHERE m = 1 ORDER BY audience_id, customer_id`)
	if err != nil {
		t.Fatalf("read members: %v", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			t.Fatal(err)
		}
		out[a] = append(out[a], c)
	}
	return out
}

// transitionRow is one row of audience_transitions.
type transitionRow struct {
	Audience, Customer, Kind, Message, Lane string
	Episode                                 uint32
	EventTime, IngestTime, DerivedAt        uint64
}

func transitions(t testing.TB, conn *chdb.Conn) []transitionRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT audience_id, customer_id, kind, message_id, lane, episode, event_time_ms, ingest_time_ms, derived_at_ms
FROM audience_transitions FINAL ORDER BY audience_id, customer_id, episode, kind DESC`)
	if err != nil {
		t.Fatalf("read transitions: %v", err)
	}
	defer rows.Close()
	var out []transitionRow
	for rows.Next() {
		var r transitionRow
		if err := rows.Scan(&r.Audience, &r.Customer, &r.Kind, &r.Message, &r.Lane, &r.Episode, &r.EventTime, &r.IngestTime, &r.DerivedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func ms(t time.Time) uint64 { return uint64(t.UnixMilli()) }
