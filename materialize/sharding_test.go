package materialize

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/shares"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestShardedEvaluators runs the oracle's randomized stream (identity
// claims, duplicates, reordering, late events) through several evaluators
// that share customers through a consumer group on each broker. After
// every pass it checks that what the pass wrote belongs to the shards the
// evaluator owned; midway one evaluator leaves (its shards handed over with
// its position), one stops without saving its position (as in a crash
// between a write and the next save) and a new one joins; at the end the
// memberships, transitions and their dates equal the model's, exactly as
// with one evaluator, and a fresh unsharded evaluator's full sweep finds
// nothing to change.
func TestShardedEvaluators(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) { runSharded(t, br, 4) })
	}
}

func runSharded(t *testing.T, br testenv.Broker, seed uint64) {
	conn := testenv.ClickHouse(t)
	plan := applyDirs(t, conn, oracleSettings, "audiences", "testdata/oracle")
	h := newHarness(t, br, conn, "sharded")
	h.startLoader("live", []string{"web", "server"}, nil)

	cfg := testConfig()
	cfg.Sharding, cfg.Shards, cfg.SessionTimeout = "group", 8, 6*time.Second
	cfg.Group = "evaluate-" + testenv.Name(t)
	ctx := context.Background()
	join := func(name string) *Evaluator {
		t.Helper()
		ev, err := NewEvaluator(cfg, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t).With("evaluator", name)})
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Join(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ev.Leave)
		return ev
	}
	live := map[string]*Evaluator{"a": join("a"), "b": join("b"), "c": join("c")}
	// divided waits until the live evaluators own every shard between them,
	// each at least one and no shard twice.
	divided := func(what string) {
		t.Helper()
		testenv.Eventually(t, 90*time.Second, what, func() (bool, string) {
			count := make([]int, cfg.Shards)
			var desc []string
			ok := true
			for _, name := range slices.Sorted(maps.Keys(live)) {
				n := 0
				for s, mine := range live[name].own.Snapshot() {
					if mine {
						count[s]++
						n++
					}
				}
				ok = ok && n > 0
				desc = append(desc, fmt.Sprintf("%s owns %d", name, n))
			}
			for _, c := range count {
				ok = ok && c == 1
			}
			return ok, strings.Join(desc, ", ")
		})
	}
	divided("three evaluators split the shards")

	// pass runs one pass of ev and checks that every transition it wrote
	// or rewrote is of a customer of its shards (a linked anonymous id's
	// exit goes with its user's shard).
	checked := 0
	pass := func(name string, ev *Evaluator) Stats {
		t.Helper()
		before := map[transitionRow]bool{}
		for _, r := range transitions(t, conn) {
			before[r] = true
		}
		st := evaluate(t, ev)
		var written []string
		for _, r := range transitions(t, conn) {
			if !before[r] {
				written = append(written, r.Customer)
			}
		}
		owner := ownersOf(t, conn, written)
		for _, c := range written {
			if s := shares.Of(owner[c], cfg.Shards); !slices.Contains(st.Shards, s) {
				t.Errorf("evaluator %s wrote a transition of %s (shard %d) while owning %v", name, c, s, st.Shards)
			}
		}
		checked += len(written)
		return st
	}

	recs, dups := oracleStream(seed, 150, 3000)
	m := newModel()
	var maxEvent uint64
	for i, chunk := range split(append(recs, dups...), 6) {
		switch i {
		case 2:
			// A graceful stop: its shards go to the others with its
			// position.
			live["c"].Leave()
			delete(live, "c")
			divided("a and b take over c's shards")
		case 4:
			// A stop that saves no position: the next owners start from
			// the last position b saved and repeat its work.
			live["b"].own.OnRevoke = nil
			live["b"].Leave()
			delete(live, "b")
			live["d"] = join("d")
			divided("d joins and b's shards are owned again")
		}
		maxEvent = max(maxEvent, h.feed(chunk, m))
		for _, name := range slices.Sorted(maps.Keys(live)) {
			pass(name, live[name])
		}
	}
	h.waitWatermark(max(maxEvent, ms(time.Now())) + 1)
	// Each evaluator's customers are compared with the model as of its own
	// last pass (the watermark moves on between two evaluators' passes).
	wantMembers := map[string][]string{}
	wantQual := map[[2]string]qualification{}
	lastAsOf := map[string]uint64{}
	for _, name := range slices.Sorted(maps.Keys(live)) {
		st := pass(name, live[name])
		lastAsOf[name] = st.AsOfMs
		mine := func(customer string) bool { return slices.Contains(st.Shards, shares.Of(customer, cfg.Shards)) }
		for a, cs := range m.members(plan, st.AsOfMs) {
			for _, c := range cs {
				if mine(c) {
					wantMembers[a] = append(wantMembers[a], c)
				}
			}
		}
		q := m.qualifications(plan, st.AsOfMs)
		var ids []string
		for k := range q {
			ids = append(ids, k[1])
		}
		owner := ownersOf(t, conn, ids)
		for k, v := range q {
			if mine(owner[k[1]]) {
				wantQual[k] = v
			}
		}
	}
	for a := range wantMembers {
		slices.Sort(wantMembers[a])
	}

	got := members(t, conn)
	compareMembers(t, got, wantMembers, plan)
	checkTransitions(t, conn, got)
	dated := compareQualifications(t, conn, wantQual)

	// Leaving saves every shard's position; the evaluators' progress, as
	// backfill reads it, is the earliest of their last passes.
	earliest := uint64(math.MaxUint64)
	for _, name := range slices.Sorted(maps.Keys(live)) {
		earliest = min(earliest, lastAsOf[name])
		live[name].Leave()
	}
	if got, err := EvaluatedTo(ctx, conn, cfg); err != nil || got != earliest {
		t.Errorf("EvaluatedTo over the shards = %d %v, want the earliest last pass %d", got, err, earliest)
	}
	more := cfg
	more.Shards++
	if got, err := EvaluatedTo(ctx, conn, more); err != nil || got != 0 {
		t.Errorf("EvaluatedTo with a shard nobody evaluated = %d %v, want 0", got, err)
	}

	alone := testConfig()
	alone.EvaluatorID = "alone"
	ev, err := NewEvaluator(alone, component.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if st := evaluate(t, ev); !st.FullSweep || st.Entered+st.Exited != 0 {
		t.Errorf("a fresh unsharded evaluator's full sweep changed memberships after the sharded ones: %+v", st)
	}
	t.Logf("on %s: %d transitions written, each by its shard's owner; %d transition dates equal the model's", br.Name, checked, dated)
}

// ownersOf maps each customer id to the customer it counts for: a linked
// anonymous id to its user, any other id to itself.
func ownersOf(t *testing.T, conn *chdb.Conn, ids []string) map[string]string {
	t.Helper()
	var anons []string
	out := map[string]string{}
	for _, id := range ids {
		out[id] = id
		if strings.HasPrefix(id, anonPrefix) {
			anons = append(anons, id)
		}
	}
	ls, err := links(context.Background(), conn, anons)
	if err != nil {
		t.Fatal(err)
	}
	for id, l := range ls {
		if l.user != "" {
			out[id] = l.user
		}
	}
	return out
}

// TestMergePositions checks the position a pass over several shards starts
// from: the earliest cursor and times (no shard's work is skipped), floors
// at the latest times (no shard goes back), a signature only when all
// agree, and a fresh start when one shard has none.
func TestMergePositions(t *testing.T) {
	a := &evalState{cursor: 100, asOf: 5000, signature: "s1", times: map[string]uint64{eagerKey: 5000, "web": 4000, "web,server": 3000}}
	b := &evalState{cursor: 90, asOf: 6000, signature: "s1", times: map[string]uint64{eagerKey: 6000, "web": 3500}}
	m := merge([]*evalState{a, b})
	if m.cursor != 90 || m.asOf != 5000 || m.signature != "s1" {
		t.Errorf("merged cursor, as-of and signature: %d %d %q, want 90 5000 s1", m.cursor, m.asOf, m.signature)
	}
	if want := map[string]uint64{eagerKey: 5000, "web": 3500}; !maps.Equal(m.times, want) {
		t.Errorf("merged times %v, want %v (a key one shard lacks is dropped, so its windows are looked at from the earliest time)", m.times, want)
	}
	if want := map[string]uint64{eagerKey: 6000, "web": 4000, "web,server": 3000}; !maps.Equal(m.floors, want) {
		t.Errorf("merged floors %v, want %v", m.floors, want)
	}
	if f, ok := m.floor("web"); !ok || f != 4000 {
		t.Errorf("floor(web) = %d %v, want 4000", f, ok)
	}
	b.signature = "s2"
	if m := merge([]*evalState{a, b}); m.signature != "" {
		t.Errorf("shards applied under different audiences merged to signature %q, want none (a full sweep)", m.signature)
	}
	if m := merge([]*evalState{a, nil}); m.cursor != 0 || m.asOf != 0 || len(m.times) != 0 || m.floors != nil {
		t.Errorf("a shard without a position must start over: %+v", m)
	}
	pc := newPass(&Plan{}, merge([]*evalState{a, b}), map[string]uint64{"web": 5500, "server": 5500}, 5500, nil, []string{"web", "server"})
	if pc.prevEager != 5000 || pc.eager != 6000 {
		t.Errorf("a pass from the merge: previous %d, now %d; want 5000 (the earliest shard) and 6000 (no shard evaluated earlier than it was)", pc.prevEager, pc.eager)
	}
}
