package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLoaderKilled SIGKILLs the `tideline ingest` process at random points
// while a load is produced, restarting it each time under the same static
// group identity, then checks every event arrived once: killing between
// ClickHouse's acknowledgement and the offset commit redelivers a batch
// (raw rows above unique ids), which deduplication must absorb, and nothing
// may be lost.
func TestLoaderKilled(t *testing.T) {
	n := pick(100_000, 1_000_000)
	kills := pick(10, 50)
	produceFor := pick(15*time.Second, 150*time.Second)
	maxGap := pick(2400*time.Millisecond, 4500*time.Millisecond)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 20*time.Minute))
	defer cancel()
	br := faultBroker(t)
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	group := "rel-" + testenv.Name(t)
	env := loaderEnv(chCfg, br, group, "TIDELINE_LOADER_INSTANCE_ID=loader-a")
	const seed = 11

	var acked atomic.Int64
	prodErr := make(chan error, 1)
	feed := newFeed(seed, 20_000)
	// The producer stops when it has written n events or ctx ends.
	go func() { prodErr <- produceFeed(ctx, br, feed, n, float64(n)/produceFor.Seconds(), &acked) }()

	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	var loader *proc
	for i := 0; i < kills; i++ {
		loader = startLoader(t, fmt.Sprintf("loader-%d", i), env)
		gap := 300*time.Millisecond + time.Duration(rng.Int64N(int64(maxGap-300*time.Millisecond)))
		select {
		case <-time.After(gap):
		case <-loader.done:
			t.Fatalf("loader exited by itself before kill %d: %v\n%s", i+1, loader.err, loader.tail(30))
		}
		loader.kill()
		t.Logf("kill %d/%d after %s: %d events produced", i+1, kills, gap.Round(time.Millisecond), acked.Load())
	}
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	loader = startLoader(t, "loader-final", env)
	f := waitLoaded(ctx, t, conn, seed, n, pick(3*time.Minute, 10*time.Minute), func() string { return loader.tail(30) })
	if err := loader.term(time.Minute); err != nil {
		t.Errorf("final loader: %v\n%s", err, loader.tail(30))
	}
	ok, behind, err := testenv.CommittedEverything(ctx, br, group)
	if err != nil {
		t.Fatalf("read committed offsets: %v", err)
	}
	if !ok {
		t.Errorf("after a clean stop the group has not committed everything: %s", behind)
	}
	f, redeliveredRows := loadedFigures(ctx, t, conn, seed, n)
	r := &report{
		Scenario: "loader killed", Broker: br.Name,
		Load:     fmt.Sprintf("%d events over %s into web and server lanes (4 partitions each)", n, produceFor),
		Faults:   fmt.Sprintf("%d SIGKILLs of `tideline ingest`, %s–%s apart, restarted with the same static member id", kills, 300*time.Millisecond, maxGap),
		Produced: acked.Load(), Events: f, Lost: int64(n) - int64(f.Unique),
		Extra: map[string]any{"redelivered_rows": redeliveredRows},
	}
	r.derive(ctx, t, conn)
	r.publish(t, start)
	checkExactlyOnce(t, r)
}
