package reliability

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestClickHouseRestarted restarts the loader's ClickHouse (a server of the
// test's own) three times while events are produced: twice by SIGKILL, once
// by SIGTERM. The loader must retry its inserts with backoff, commit no
// offset for an insert that failed, and end with every event present once.
func TestClickHouseRestarted(t *testing.T) {
	n := pick(60_000, 1_000_000)
	produceFor := pick(12*time.Second, 150*time.Second)
	down := pick(2*time.Second, 5*time.Second)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 20*time.Minute))
	defer cancel()
	own := startOwnClickHouse(t)
	chCfg := own.config()
	chCfg.Database = "test_" + testenv.Name(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	br := faultBroker(t)
	group := "rel-" + testenv.Name(t)
	loader := startLoader(t, "loader", loaderEnv(chCfg, br, group))
	const seed = 12

	var acked atomic.Int64
	prodErr := make(chan error, 1)
	// The producer stops when it has written n events or ctx ends.
	go func() {
		prodErr <- produceFeed(ctx, br, newFeed(seed, 20_000), n, float64(n)/produceFor.Seconds(), &acked)
	}()

	var outages []string
	for i, at := range []float64{0.25, 0.5, 0.75} {
		for acked.Load() < int64(at*float64(n)) {
			if loader.exited() {
				t.Fatalf("loader exited: %v\n%s", loader.err, loader.tail(30))
			}
			time.Sleep(50 * time.Millisecond)
		}
		sig := syscall.SIGKILL
		if i == 1 {
			sig = syscall.SIGTERM
		}
		t0 := time.Now()
		if err := own.signal(sig, time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(down)
		if err := own.start(t); err != nil {
			t.Fatalf("restart clickhouse: %v", err)
		}
		outage := time.Since(t0).Round(100 * time.Millisecond)
		outages = append(outages, fmt.Sprintf("%s at %d%%: down %s", sig, int(at*100), outage))
		t.Logf("clickhouse restart %d (%s) at %d events produced: down %s", i+1, sig, acked.Load(), outage)
	}
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	f := waitLoaded(ctx, t, conn, seed, n, pick(3*time.Minute, 10*time.Minute), func() string { return loader.tail(30) })
	if loader.exited() {
		t.Errorf("the loader exited during the restarts: %v\n%s", loader.err, loader.tail(30))
	}
	retries := loader.count(`"msg":"loader retrying"`)
	if err := loader.term(time.Minute); err != nil {
		t.Errorf("loader: %v\n%s", err, loader.tail(30))
	}
	if ok, behind, err := testenv.CommittedEverything(ctx, br, group); err != nil || !ok {
		t.Errorf("group has not committed everything after a clean stop: %s %v\nloader warnings:\n%s\nloader log tail:\n%s",
			behind, err, loader.grep(`"level":"WARN"`, 40), loader.tail(40))
	}
	f, redeliveredRows := loadedFigures(ctx, t, conn, seed, n)
	r := &report{
		Scenario: "clickhouse restarted", Broker: br.Name,
		Load:     fmt.Sprintf("%d events over %s", n, produceFor),
		Faults:   fmt.Sprintf("3 restarts of the loader's ClickHouse at 25/50/75%% of production (SIGKILL, SIGTERM, SIGKILL), each down ≥ %s", down),
		Produced: acked.Load(), Events: f, Lost: int64(n) - int64(f.Unique),
		Extra: map[string]any{"outages": outages, "insert_retries_logged": retries, "redelivered_rows": redeliveredRows},
	}
	r.derive(ctx, t, conn)
	r.publish(t, start)
	checkExactlyOnce(t, r)
	if retries == 0 {
		t.Errorf("the loader logged no retry although ClickHouse was down three times")
	}
}
