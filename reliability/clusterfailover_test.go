package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
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

	f, err := countEvents(ctx, conn, seed, n)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{
		Scenario: "cluster replica killed", Broker: br.Name,
		Load:     fmt.Sprintf("%d events over %s into 2 shards x 2 replicas", n, produceFor),
		Faults:   fmt.Sprintf("SIGKILL of node 1 (shard 1 replica 1, the loader's first server) at %d events produced, down %s", atKill, down),
		Produced: acked.Load(), Events: f, Lost: int64(n) - int64(f.Unique),
		Extra: map[string]any{"queries_answered_while_down": answered, "queries_asked_again": retried, "queries_failed_while_down": failed,
			"insert_retries_logged": retries, "caught_up": lag},
	}
	r.derive(ctx, t, conn)
	r.publish(t, start)
	checkExactlyOnce(t, r)
}

// cluster runs scripts/cluster.sh with args and fails t if it fails.
func cluster(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../scripts/cluster.sh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/cluster.sh %v: %v\n%s", args, err, out)
	}
}
