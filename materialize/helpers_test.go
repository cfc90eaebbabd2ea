package materialize

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
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

// testConfig is the evaluator config of the tests: the shortest settle
// time, so waiting for touches to settle costs little.
func testConfig() Config {
	c := DefaultConfig()
	c.TouchSettle = time.Second
	return c
}

// settle waits until every touch seen so far is settled.
func settle() { time.Sleep(testConfig().TouchSettle + time.Second) }

func testEvaluator(t testing.TB, conn *chdb.Conn) *Evaluator {
	t.Helper()
	ev, err := NewEvaluator(testConfig(), component.Env{Conn: conn, Log: testenv.Logger(t)})
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
	// The phases split the pass: they add up to no more than it took, and
	// a pass that wrote a transition spent time querying for it.
	ph := st.Phases
	if sum := ph.Read + ph.Candidates + ph.Evaluate + ph.Retire + ph.Record; sum > st.Duration {
		t.Errorf("pass phases %+v add up to %s, more than the pass took (%s)", ph, sum, st.Duration)
	}
	if ph.Query+ph.Date+ph.Write > ph.Evaluate {
		t.Errorf("pass phases %+v: query, date and write exceed evaluate", ph)
	}
	if st.Entered+st.Exited > 0 && ph.Query == 0 {
		t.Errorf("a pass that wrote %d transitions spent no time querying (%+v)", st.Entered+st.Exited, ph)
	}
	return st
}

// members returns the current members of each audience.
func members(t testing.TB, conn *chdb.Conn) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := conn.Each(context.Background(), `SELECT audience_id, customer_id FROM
(SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m FROM audience_membership GROUP BY audience_id, customer_id)
WHERE m = 1 ORDER BY audience_id, customer_id`, nil, func(rows chdb.Rows) error {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			return err
		}
		out[a] = append(out[a], c)
		return nil
	})
	if err != nil {
		t.Fatalf("read members: %v", err)
	}
	return out
}

// transitionRow is one row of audience_transitions.
type transitionRow struct {
	Audience   string `ch:"audience_id"`
	Customer   string `ch:"customer_id"`
	Kind       string `ch:"kind"`
	Message    string `ch:"message_id"`
	Lane       string `ch:"lane"`
	Episode    uint32 `ch:"episode"`
	EventTime  uint64 `ch:"event_time_ms"`
	IngestTime uint64 `ch:"ingest_time_ms"`
	DerivedAt  uint64 `ch:"derived_at_ms"`
}

func transitions(t testing.TB, conn *chdb.Conn) []transitionRow {
	t.Helper()
	var out []transitionRow
	if err := conn.Select(context.Background(), &out, `SELECT audience_id, customer_id, kind, message_id, lane, episode, event_time_ms, ingest_time_ms, derived_at_ms
FROM audience_transitions FINAL ORDER BY audience_id, customer_id, episode, kind`); err != nil {
		t.Fatalf("read transitions: %v", err)
	}
	return out
}

func ms(t time.Time) uint64 { return uint64(t.UnixMilli()) }

// derivedQueries read every derived table as text rows in a fixed order.
// withIngest includes attribute ingest times, which differ between two
// loads of the same events (but not between a load and its replay).
func derivedQueries(withIngest bool) map[string]string {
	ingest := ""
	if withIngest {
		ingest = ", '|', toString(l.4), '|', toString(f.4)"
	}
	return map[string]string{
		"customer_attributes": `SELECT concat(customer_id, '|', attribute, '|', l.1, '|', toString(l.2), '|', toString(l.3), '|', l.5, '|', f.1, '|', toString(f.2), '|', toString(f.3), '|', f.5` + ingest + `)
FROM (SELECT customer_id, attribute, argMaxMerge(last_value) AS l, argMinMerge(first_value) AS f FROM customer_attributes GROUP BY customer_id, attribute)`,
		"customer_event_buckets": `SELECT concat(customer_id, '|', type, '|', event, '|', toString(bucket), '|', toString(uniqExactMerge(messages)), '|', toString(minMerge(first_seen_ms)), '|', toString(maxMerge(last_seen_ms)))
FROM customer_event_buckets GROUP BY customer_id, type, event, bucket`,
		"customer_signals": `SELECT concat(customer_id, '|', signal, '|', toString(bucket), '|', arrayStringConcat(arrayMap(x -> concat(toString(x.1), ':', x.2, ':', toString(x.3)), arraySort(groupUniqArrayMerge(occurrences))), ','))
FROM customer_signals GROUP BY customer_id, signal, bucket`,
		"identity_links":            `SELECT concat(anonymous_customer_id, '|', tupleElement(argMinMerge(link), 1)) FROM identity_links GROUP BY anonymous_customer_id`,
		"identity_claims":           `SELECT DISTINCT concat(user_id, '|', anonymous_customer_id) FROM identity_claims`,
		"customer_activity_seconds": `SELECT DISTINCT concat(toString(second), '|', type, '|', event, '|', customer_id) FROM customer_activity_seconds`,
		"audience_membership": `SELECT concat(audience_id, '|', customer_id, '|', toString(argMax(member, updated_at_ms)), '|', toString(argMax(episode, updated_at_ms)))
FROM audience_membership GROUP BY audience_id, customer_id`,
	}
}

// stateQueries are derivedQueries with current members only: runs that saw
// the same events in a different order end in the same state, but with
// different histories (episodes, former members).
func stateQueries() map[string]string {
	q := derivedQueries(false)
	q["audience_membership"] = `SELECT concat(audience_id, '|', customer_id) FROM
(SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m FROM audience_membership GROUP BY audience_id, customer_id) WHERE m = 1`
	return q
}

// snapshot runs queries and returns each one's rows, sorted.
func snapshot(t testing.TB, conn *chdb.Conn, queries map[string]string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, q := range queries {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("snapshot %s: %v", name, err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("snapshot %s: %v", name, err)
			}
			got = append(got, s)
		}
		rows.Close()
		sort.Strings(got)
		out[name] = got
	}
	return out
}

// sameSnapshots reports tables whose rows differ.
func sameSnapshots(t testing.TB, what string, a, b map[string][]string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(a)) {
		x, y := a[name], b[name]
		if len(x) == 0 {
			t.Errorf("%s: %s is empty: the comparison would prove nothing", what, name)
		}
		if !reflect.DeepEqual(x, y) {
			inX, inY := toSet(x), toSet(y)
			var onlyA, onlyB []string
			for _, r := range x {
				if !inY[r] {
					onlyA = append(onlyA, r)
				}
			}
			for _, r := range y {
				if !inX[r] {
					onlyB = append(onlyB, r)
				}
			}
			t.Errorf("%s: %s differs (%d vs %d rows); only before: %v; only after: %v", what, name, len(x), len(y), head(onlyA), head(onlyB))
		}
	}
}
