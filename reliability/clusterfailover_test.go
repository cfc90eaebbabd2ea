package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
)

// TestClusterReplicaKilled loads events into the local ClickHouse cluster
// (scripts/cluster.sh: 2 shards x 2 replicas) in cluster mode and SIGKILLs
// node 1 (shard 1, replica 1, the first server the loader talks to) once a
// third of the load is produced. The loader must move to the next server
// and lose nothing it acknowledged; queries must keep answering from the
// other replica while node 1 is down; and once node 1 is back it must
// catch up: its local tables end with the rows its replica holds.
func TestClusterReplicaKilled(t *testing.T) {
	n := pick(30_000, 300_000)
	produceFor := pick(15*time.Second, 120*time.Second)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(5*time.Minute, 20*time.Minute))
	defer cancel()
	chCfg := testenv.ClusterConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	br := faultBroker(t)
	group := "rel-" + testenv.Name(t)
	loader := startLoader(t, "loader", loaderEnv(chCfg, br, group, "TIDELINE_CLICKHOUSE_CLUSTER="+chCfg.Cluster))
	const seed = 14

	var acked atomic.Int64
	prodErr := make(chan error, 1)
	// The producer stops when it has written n events or ctx ends.
	go func() {
		prodErr <- produceFeed(ctx, br, newFeed(seed, 20_000), n, float64(n)/produceFor.Seconds(), &acked)
	}()
	for acked.Load() < int64(n/3) {
		if loader.exited() {
			t.Fatalf("loader exited: %v\n%s", loader.err, loader.tail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cluster(t, "kill", "1")
	// node 1 stays down a while whatever happens, so the loader must work
	// through the others; a restarted node 1 must not be restarted by the
	// cleanup of a failed test before this one is over.
	t.Cleanup(func() { _ = exec.Command("../scripts/cluster.sh", "start-node", "1").Run() })
	t0 := time.Now()
	// A query in flight on node 1 when it died fails with its connection,
	// as on any server crash; asked again, as a client asks again on a
	// broken connection, it must be answered by the others. Each query gets
	// one such retry; a query failing twice is a failure of the cluster.
	var answered, retried, failed int
	for time.Since(t0) < pick(8*time.Second, 30*time.Second) {
		var c uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&c)
		if err != nil {
			retried++
			t.Logf("query while node 1 is down, asked again: %v", err)
			err = conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&c)
		}
		if err != nil {
			failed++
			t.Logf("query while node 1 is down: %v", err)
		} else {
			answered++
		}
		time.Sleep(200 * time.Millisecond)
	}
	if failed > 0 {
		t.Errorf("%d of %d queries failed twice while one replica was down", failed, answered+failed)
	}
	atKill := acked.Load()
	cluster(t, "start-node", "1")
	down := time.Since(t0).Round(100 * time.Millisecond)
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	f := waitLoaded(ctx, t, conn, seed, n, pick(3*time.Minute, 10*time.Minute), func() string { return loader.tail(30) })
	retries := loader.count(`"msg":"loader retrying"`)
	if err := loader.term(time.Minute); err != nil {
		t.Errorf("loader: %v\n%s", err, loader.tail(30))
	}

	// Caught up: after SYSTEM SYNC REPLICA the restarted replica holds what
	// its peer holds, table by table.
	addrs := testenv.ClusterAddrs(t)
	node := func(i int) *chdb.Conn {
		c := chCfg
		c.Addr = addrs[i]
		nc, err := chdb.Open(ctx, c, false)
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	n1, n2 := node(0), node(1)
	// Every replicated table of the database first: the test's
	// connection reads node 1 again now, the replicated-only tables (every
	// node holds a replica) are read there, and Distributed reads prefer
	// the first replica of a shard (load_balancing in_order).
	syncReplicas(ctx, t, n1)
	syncReplicas(ctx, t, n2)
	var lag []string
	// FINAL where a merge could change the count, so the two replicas are
	// compared on what no merge changes.
	for _, table := range []string{"events_local FINAL", "event_positions_local", "customer_touches_local", "customer_event_buckets_local FINAL"} {
		// Both ways: node 2 fetches what node 1 wrote after its restart.
		for i, n := range []*chdb.Conn{n1, n2} {
			if err := n.Exec(ctx, "SYSTEM SYNC REPLICA "+strings.TrimSuffix(table, " FINAL")); err != nil {
				t.Fatalf("sync replica %s on node %d: %v", table, i+1, err)
			}
		}
		var c1, c2 uint64
		if err := n1.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&c1); err != nil {
			t.Fatal(err)
		}
		if err := n2.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&c2); err != nil {
			t.Fatal(err)
		}
		if c1 != c2 {
			t.Errorf("%s: node 1 holds %d rows after catching up, its replica node 2 %d", table, c1, c2)
		}
		lag = append(lag, fmt.Sprintf("%s %d=%d", table, c1, c2))
	}

	// A pool that lived through the failover holds connections to node 2
	// and, since node 1 is back, to node 1: replicated-only tables are
	// replicated asynchronously, so such a pool can miss its own write for
	// a moment. The evaluation runs on a pool opened now, whose
	// connections all go to node 1, as a restarted service's would.
	fresh, err := chdb.Open(ctx, chCfg, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	conn = fresh
	c3 := chCfg
	c3.Addr = addrs[2]
	evalFigures := evaluateThroughKill(ctx, t, conn, c3)

	f, err = countEvents(ctx, conn, seed, n)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{
		Scenario: "cluster replica killed", Broker: br.Name,
		Load:     fmt.Sprintf("%d events over %s into 2 shards x 2 replicas", n, produceFor),
		Faults:   fmt.Sprintf("SIGKILL of node 1 (shard 1 replica 1, the loader's first server) at %d events produced, down %s", atKill, down),
		Produced: acked.Load(), Events: f, Lost: int64(n) - int64(f.Unique),
		Extra: map[string]any{"queries_answered_while_down": answered, "queries_asked_again": retried, "queries_failed_while_down": failed,
			"insert_retries_logged": retries, "caught_up": lag, "evaluation": evalFigures},
	}
	r.derive(ctx, t, conn)
	r.publish(t, start)
	checkExactlyOnce(t, r)
}

// evaluateThroughKill applies the repository's audiences, evaluates them
// in passes, and SIGKILLs node 3 (shard 2, replica 1) while a pass runs.
// Passes that fail with the server are retried, as the evaluator's Run
// loop does; node 3 is restarted once a pass succeeded without it. Then a
// second evaluator with a position of its own sweeps every customer from
// scratch: it must find every membership already right and write no
// transition, so the kill evaluated no customer into a different result.
func evaluateThroughKill(ctx context.Context, t *testing.T, conn *chdb.Conn, node3 chdb.Config) map[string]any {
	t.Helper()
	mc := materialize.DefaultConfig()
	mc.AudiencesDir = filepath.Join("..", materialize.DefaultAudiencesDir)
	plan, err := materialize.LoadPlan(mc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(ctx, conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatalf("apply audiences: %v", err)
	}
	ev, err := pipeline.NewEvaluator(mc, pipeline.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	type pass struct {
		st  materialize.Stats
		err error
	}
	passes := make(chan pass)
	// The evaluation goroutine ends when stop is closed; every pass is
	// reported, so the test sees the failures the kill caused.
	stop := make(chan struct{})
	go func() {
		defer close(passes)
		for {
			st, err := ev.EvaluateOnce(ctx)
			select {
			case passes <- pass{st, err}:
			case <-stop:
				return
			}
		}
	}()
	first := <-passes
	if first.err != nil {
		close(stop)
		t.Fatalf("first evaluation pass: %v", first.err)
	}
	// The second pass is running now: kill a server under it.
	cluster(t, "kill", "3")
	t.Cleanup(func() { _ = exec.Command("../scripts/cluster.sh", "start-node", "3").Run() })
	var failedPasses, okPasses int
	entered, exited := first.st.Entered, first.st.Exited
	for okPasses < 2 {
		p := <-passes
		if p.err != nil {
			failedPasses++
			t.Logf("evaluation pass while node 3 is down: %v", p.err)
			if failedPasses > 20 {
				close(stop)
				t.Fatalf("20 evaluation passes failed with one replica down: %v", p.err)
			}
			continue
		}
		okPasses++
		entered += p.st.Entered
		exited += p.st.Exited
	}
	cluster(t, "start-node", "3")
	// Node 3 is shard 2's first replica again: it serves that shard's
	// reads once it has caught up (see syncReplicas).
	n3, err := chdb.Open(ctx, node3, false)
	if err != nil {
		t.Fatalf("node 3: %v", err)
	}
	syncReplicas(ctx, t, n3)
	n3.Close()
	// One more pass with node 3 back, then the goroutine stops.
	for after := 0; ; after++ {
		p := <-passes
		if p.err == nil {
			entered += p.st.Entered
			exited += p.st.Exited
			break
		}
		if after > 20 {
			close(stop)
			t.Fatalf("evaluation passes keep failing after node 3 came back: %v", p.err)
		}
	}
	close(stop)
	for range passes {
	}
	fresh := mc
	fresh.EvaluatorID = "after_failover"
	check, err := pipeline.NewEvaluator(fresh, pipeline.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := check.EvaluateOnce(ctx)
	if err != nil {
		t.Fatalf("fresh evaluation: %v", err)
	}
	if !st.FullSweep || st.Entered+st.Exited != 0 {
		t.Errorf("a fresh full sweep after the failover changed %d entries and %d exits (full sweep %v): the evaluation under the kill left wrong memberships", st.Entered, st.Exited, st.FullSweep)
	}
	var members uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM audience_membership FINAL WHERE member = 1").Scan(&members); err != nil {
		t.Fatal(err)
	}
	if entered == 0 {
		t.Errorf("no customer entered any audience: the evaluation under the kill proved nothing")
	}
	return map[string]any{"entered": entered, "exited": exited, "members": members, "passes_failed_while_down": failedPasses,
		"fresh_sweep_customers": st.Customers, "fresh_sweep_changes": st.Entered + st.Exited}
}

// syncReplicas waits until the server of conn has fetched everything its
// replication queues hold for every replicated table of the database: a
// restarted replica answers queries at once, from what it had when it
// died, until then.
func syncReplicas(ctx context.Context, t *testing.T, conn *chdb.Conn) {
	t.Helper()
	tables, err := conn.Strings(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE 'Replicated%'")
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
			t.Fatalf("sync replica %s: %v", table, err)
		}
	}
}

// cluster runs scripts/cluster.sh with args and fails t if it fails.
func cluster(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../scripts/cluster.sh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/cluster.sh %v: %v\n%s", args, err, out)
	}
}
