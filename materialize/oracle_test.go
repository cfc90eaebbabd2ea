package materialize

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// oracleSettings maintain the demo's traits plus first_source, which keeps
// its first value.
var oracleSettings = AttributeSettings{Declared: []string{"email", "first_source"}, SetOnce: []string{"first_source"}}

// oracleSeeds are the seeds TestOracle runs; TIDELINE_TEST_SEEDS=4,5 picks others.
func oracleSeeds(t *testing.T) []uint64 {
	env := os.Getenv("TIDELINE_TEST_SEEDS")
	if env == "" {
		return []uint64{1, 2, 3}
	}
	var out []uint64
	for _, s := range strings.Split(env, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			t.Fatalf("TIDELINE_TEST_SEEDS: %q is not a number", s)
		}
		out = append(out, n)
	}
	return out
}

// TestOracle feeds randomized streams (anonymous visitors logging in,
// conflicting identity claims, traits set and unset, duplicated and
// shuffled records, events hours late and seconds early) through Kafka and
// the real loader, evaluating audiences as it goes, and then compares every
// customer's attributes, event aggregates, signal totals and audience
// memberships in ClickHouse with the in-Go model.
//
// The first seed runs against every broker (kfake, and Apache Kafka when
// TIDELINE_TEST_KAFKA is set); the others against kfake only, which keeps
// the suite's time bounded: what they vary is the stream, not the broker.
func TestOracle(t *testing.T) {
	for i, seed := range oracleSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("reproduce with: TIDELINE_TEST_SEEDS=%d go test ./materialize -run TestOracle -v", seed)
				}
			})
			var brokers []testenv.Broker
			if i == 0 {
				brokers = testenv.Brokers(t)
			} else {
				brokers = []testenv.Broker{testenv.Embedded(t)}
			}
			for _, br := range brokers {
				t.Run(br.Name, func(t *testing.T) { runOracle(t, br, seed) })
			}
		})
	}
}

func runOracle(t *testing.T, br testenv.Broker, seed uint64) {
	start := time.Now()
	conn := testenv.ClickHouse(t)
	plan := applyDirs(t, conn, oracleSettings, "audiences", "testdata/oracle")
	h := newHarness(t, br, conn, "oracle")
	h.startLoader("live", []string{"web", "server"}, nil)
	ev := testEvaluator(t, conn)

	const customers, events = 150, 3000
	recs, dups := oracleStream(seed, customers, events)
	m := newModel()
	var maxEvent uint64
	passes := 0
	for i, chunk := range split(append(recs, dups...), 5) {
		maxEvent = max(maxEvent, h.feed(chunk, m))
		st := evaluate(t, ev)
		passes++
		if i == 0 && !st.FullSweep {
			t.Errorf("the first pass was not a full sweep: %+v", st)
		}
	}
	// Wait until every event, including those stamped a few seconds
	// ahead, is behind the watermark, then evaluate as of it.
	h.waitWatermark(max(maxEvent, ms(time.Now())) + 1)
	st := evaluate(t, ev)
	passes++
	converged := time.Since(start)

	want := m.members(plan, st.AsOfMs)
	got := members(t, conn)
	compareMembers(t, got, want, plan)
	checkAttributes(t, conn, m, plan)
	checkBuckets(t, conn, m)
	checkSignals(t, conn, m, plan)
	checkTransitions(t, conn, got)
	dated := compareQualifications(t, conn, m.qualifications(plan, st.AsOfMs))
	var sizes []string
	for _, id := range slices.Sorted(maps.Keys(want)) {
		sizes = append(sizes, fmt.Sprintf("%s=%d", id, len(want[id])))
	}
	t.Logf("seed %d on %s: %d customers, %d distinct events (%d records with redeliveries), %d passes, converged in %s; members: %s; %d transition dates checked",
		seed, br.Name, customers, len(m.msgs), len(recs)+len(dups), passes, converged.Round(time.Millisecond), strings.Join(sizes, " "), dated)
}

// feed produces chunk, adds it to the model, and waits until the loader
// has loaded it and the watermark has passed the moment it was produced;
// it returns the latest event time in it.
func (h *harness) feed(chunk []record, m *model) uint64 {
	h.t.Helper()
	producedAt := ms(time.Now())
	h.produce(chunk)
	h.rows += int64(len(chunk))
	var latest uint64
	for _, r := range chunk {
		m.add(r.ev)
		latest = max(latest, evTime(r.ev))
	}
	h.waitRows(h.rows)
	h.waitWatermark(producedAt)
	return latest
}

// oracleStream is a randomized stream of events by customers, shuffled,
// and the records of it delivered again later (about one in ten), as after
// a producer retry or a consumer replay.
func oracleStream(seed uint64, customers, events int) (recs, dups []record) {
	g := newGenerator(seed, customers, time.Now())
	rng := rand.New(rand.NewPCG(seed, 99))
	for range events {
		recs = append(recs, g.next())
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	for _, r := range recs {
		if rng.IntN(10) == 0 {
			dups = append(dups, r)
		}
	}
	return recs, dups
}

// compareQualifications checks that the latest transition of every
// customer in every audience says what the model says of it: entered while
// a member, exited otherwise, at the moment the condition took that value
// and kept it, with the message that made it so. It returns how many it
// checked.
func compareQualifications(t *testing.T, conn *chdb.Conn, want map[[2]string]qualification) int {
	t.Helper()
	latest := map[[2]string]transitionRow{}
	for _, r := range transitions(t, conn) {
		k := [2]string{r.Audience, r.Customer}
		have, ok := latest[k]
		if !ok || r.Episode > have.Episode || r.Episode == have.Episode && r.Kind == "exited" {
			latest[k] = r
		}
	}
	checked, wrong := 0, 0
	for _, k := range sortedPairs(latest) {
		r := latest[k]
		q, ok := want[k]
		if !ok {
			// A linked anonymous id: it left at the link (checkTransitions).
			continue
		}
		checked++
		kind := "exited"
		if q.member {
			kind = "entered"
		}
		if r.Kind != kind || r.EventTime != q.t || r.Message != q.msg {
			wrong++
			if wrong <= 20 {
				t.Errorf("%s %s: latest transition %s at %d by %q; the model says %s at %d by %q",
					k[0], k[1], r.Kind, r.EventTime, r.Message, kind, q.t, q.msg)
			}
		}
	}
	if wrong > 20 {
		t.Errorf("... %d transitions dated wrong in all", wrong)
	}
	if checked == 0 {
		t.Error("no transition to check: the test proves nothing")
	}
	return checked
}

func sortedPairs[V any](m map[[2]string]V) [][2]string {
	out := make([][2]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0]+"\x00"+out[i][1] < out[j][0]+"\x00"+out[j][1] })
	return out
}

// split cuts recs into n nearly equal chunks.
func split(recs []record, n int) [][]record {
	var out [][]record
	size := (len(recs) + n - 1) / n
	for i := 0; i < len(recs); i += size {
		out = append(out, recs[i:min(i+size, len(recs))])
	}
	return out
}

func compareMembers(t *testing.T, got, want map[string][]string, plan *Plan) {
	t.Helper()
	for _, c := range plan.Audiences {
		id := c.Audience.ID
		g, w := toSet(got[id]), toSet(want[id])
		var extra, missing []string
		for x := range g {
			if !w[x] {
				extra = append(extra, x)
			}
		}
		for x := range w {
			if !g[x] {
				missing = append(missing, x)
			}
		}
		sort.Strings(extra)
		sort.Strings(missing)
		if len(extra)+len(missing) > 0 {
			t.Errorf("audience %s: %d members, model says %d; not in the model: %v; missing: %v", id, len(g), len(w), head(extra), head(missing))
		}
	}
	for id := range got {
		if plan.Audience(id) == nil {
			t.Errorf("members of unknown audience %s", id)
		}
	}
}

func toSet(xs []string) map[string]bool {
	s := map[string]bool{}
	for _, x := range xs {
		s[x] = true
	}
	return s
}

func head(xs []string) []string {
	if len(xs) > 10 {
		return append(xs[:10:10], fmt.Sprintf("... %d more", len(xs)-10))
	}
	return xs
}

// checkAttributes compares, per raw customer id and maintained attribute,
// the latest and the first value with the model.
func checkAttributes(t *testing.T, conn *chdb.Conn, m *model, plan *Plan) {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT customer_id, attribute, l.1, l.2, l.3, l.4, l.5, f.1, f.2, f.3, f.5
FROM (SELECT customer_id, attribute, argMaxMerge(last_value) AS l, argMinMerge(first_value) AS f FROM customer_attributes GROUP BY customer_id, attribute)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type pair struct{ last, first attrValue }
	got := map[[2]string]pair{}
	now := chdb.NowMs()
	for rows.Next() {
		var c, a string
		var p pair
		var ln, fn uint8
		var ingest uint64
		if err := rows.Scan(&c, &a, &p.last.value, &ln, &p.last.eventTime, &ingest, &p.last.message, &p.first.value, &fn, &p.first.eventTime, &p.first.message); err != nil {
			t.Fatal(err)
		}
		p.last.isNull, p.first.isNull = ln == 1, fn == 1
		if ingest == 0 || ingest > now {
			t.Errorf("attribute %s of %s has ingest time %d", a, c, ingest)
		}
		got[[2]string{c, a}] = p
	}
	want := map[[2]string]pair{}
	raw := map[string]bool{}
	for _, ev := range m.msgs {
		raw[ev.CustomerID()] = true
	}
	for c := range raw {
		for _, a := range plan.Attributes {
			last, ok := m.attribute([]string{c}, a.Name, false)
			if !ok {
				continue
			}
			first, _ := m.attribute([]string{c}, a.Name, true)
			want[[2]string{c, a.Name}] = pair{last, first}
		}
	}
	diffMaps(t, "attribute", got, want)
}

func checkBuckets(t *testing.T, conn *chdb.Conn, m *model) {
	t.Helper()
	var tz string
	if err := conn.QueryRow(context.Background(), "SELECT timezone()").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatalf("server time zone %s: %v", tz, err)
	}
	rows, err := conn.Query(context.Background(), `SELECT customer_id, type, event, toUInt32(bucket), uniqExactMerge(messages), minMerge(first_seen_ms), maxMerge(last_seen_ms)
FROM customer_event_buckets GROUP BY customer_id, type, event, bucket`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[bucketKey]bucketVal{}
	for rows.Next() {
		var k bucketKey
		var hour uint32
		var v bucketVal
		if err := rows.Scan(&k.customer, &k.typ, &k.event, &hour, &v.count, &v.first, &v.last); err != nil {
			t.Fatal(err)
		}
		k.hour = int64(hour)
		got[k] = v
	}
	diffMaps(t, "event bucket", got, m.buckets(loc))
}

func checkSignals(t *testing.T, conn *chdb.Conn, m *model, plan *Plan) {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT customer_id, signal, arrayUniq(arrayMap(x -> x.2, o)), arraySum(arrayMap(x -> x.3, o))
FROM (SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS o FROM customer_signals GROUP BY customer_id, signal)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type total struct {
		n   uint32
		sum float64
	}
	got := map[[2]string]total{}
	for rows.Next() {
		var c, s string
		var v total
		if err := rows.Scan(&c, &s, &v.n, &v.sum); err != nil {
			t.Fatal(err)
		}
		v.sum = math.Round(v.sum*1000) / 1000
		got[[2]string{c, s}] = v
	}
	want := map[[2]string]total{}
	raw := map[string]bool{}
	for _, ev := range m.msgs {
		raw[ev.CustomerID()] = true
	}
	for c := range raw {
		for _, s := range plan.Signals {
			occ := m.occurrences([]string{c}, s)
			if len(occ) == 0 {
				continue
			}
			var v total
			for _, o := range occ {
				v.n++
				v.sum += o.value
			}
			v.sum = math.Round(v.sum*1000) / 1000
			want[[2]string{c, s.ID}] = v
		}
	}
	diffMaps(t, "signal total", got, want)
}

// diffMaps reports keys whose values differ, at most ten.
func diffMaps[K comparable, V any](t *testing.T, what string, got, want map[K]V) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%v: missing, want %+v", k, w))
		} else if !reflect.DeepEqual(g, w) {
			diffs = append(diffs, fmt.Sprintf("%v: got %+v, want %+v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%v: unexpected %+v", k, g))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Errorf("%d of %d %s rows differ from the model:\n%s", len(diffs), len(want), what, strings.Join(head(diffs), "\n"))
	}
}

// checkTransitions checks each (audience, customer) history: episodes
// alternate entered/exited from 1, and the last transition agrees with the
// current membership.
func checkTransitions(t *testing.T, conn *chdb.Conn, current map[string][]string) {
	t.Helper()
	byKey := map[[2]string][]transitionRow{}
	for _, r := range transitions(t, conn) {
		k := [2]string{r.Audience, r.Customer}
		byKey[k] = append(byKey[k], r)
		if r.EventTime == 0 || r.DerivedAt == 0 {
			t.Errorf("transition %+v lacks times", r)
		}
		if r.Message != "" && (r.IngestTime == 0 || r.Lane == "") {
			t.Errorf("transition %+v names a message but not its ingest time and lane", r)
		}
	}
	isMember := map[[2]string]bool{}
	for a, cs := range current {
		for _, c := range cs {
			isMember[[2]string{a, c}] = true
		}
	}
	for k, rs := range byKey {
		for i, r := range rs {
			wantEp := uint32(i/2 + 1)
			wantKind := "entered"
			if i%2 == 1 {
				wantKind = "exited"
			}
			if r.Episode != wantEp || r.Kind != wantKind {
				t.Errorf("%v: transition %d is %s #%d, want %s #%d", k, i, r.Kind, r.Episode, wantKind, wantEp)
				break
			}
		}
		if last := rs[len(rs)-1]; (last.Kind == "entered") != isMember[k] {
			t.Errorf("%v: last transition %s but member=%v", k, last.Kind, isMember[k])
		}
	}
	for k := range isMember {
		if len(byKey[k]) == 0 {
			t.Errorf("%v is a member without an entered transition", k)
		}
	}
}
