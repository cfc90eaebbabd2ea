package reliability

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestIngestDrainsOnSIGTERM gives a separate `tideline ingest` process a
// backlog in Kafka and SIGTERMs it as soon as its lanes started, on each
// broker: it must keep loading until its groups committed everything the
// lanes held at the signal, so every accepted (acknowledged) event is in
// ClickHouse and nothing is left for the next loader.
func TestIngestDrainsOnSIGTERM(t *testing.T) {
	n := pick(20_000, 200_000)
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 15*time.Minute))
			defer cancel()
			chCfg := testenv.ClickHouseConfig(t)
			conn := testenv.ClickHouseWith(t, chCfg)
			group := "rel-" + testenv.Name(t)
			const seed = 17
			var acked atomic.Int64
			if err := produceFeed(ctx, br, newFeed(seed, 5_000), n, 0, &acked); err != nil {
				t.Fatalf("produce the backlog: %v", err)
			}
			if got := acked.Load(); got != int64(n) {
				t.Fatalf("%d of %d events acknowledged", got, n)
			}
			env := loaderEnv(chCfg, br, group, "TIDELINE_LOADER_SHUTDOWN_TIMEOUT="+pick("2m", "10m"))
			loader := startLoader(t, "loader", env, "--log-level", "info")
			for loader.count("loader lane started") < 2 {
				select {
				case <-loader.done:
					t.Fatalf("loader exited before its lanes started: %v\n%s", loader.err, loader.tail(30))
				case <-ctx.Done():
					t.Fatalf("lanes not started: %s", loader.tail(30))
				case <-time.After(20 * time.Millisecond):
				}
			}
			before, err := countEvents(ctx, conn, seed, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := loader.term(pick(3*time.Minute, 12*time.Minute)); err != nil {
				t.Fatalf("loader did not stop cleanly on SIGTERM: %v\n%s", err, loader.tail(30))
			}
			after, err := countEvents(ctx, conn, seed, n)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d of %d events in ClickHouse when SIGTERM was sent, %d when the loader exited", br.Name, before.Unique, n, after.Unique)
			if after.Unique != uint64(n) || after.Foreign != 0 {
				t.Errorf("after SIGTERM %d of %d acknowledged events are in ClickHouse (%d foreign rows)\n%s", after.Unique, n, after.Foreign, loader.tail(30))
			}
			if ok, behind, err := testenv.CommittedEverything(ctx, br, group); err != nil || !ok {
				t.Errorf("the group has not committed everything the lanes held: %s %v", behind, err)
			}
			if log := loader.logText(); !strings.Contains(log, "every record in the lanes loaded") {
				t.Errorf("the loader did not say it left nothing behind:\n%s", loader.tail(30))
			}
			if strings.Contains(loader.logText(), "not loaded yet") {
				t.Errorf("the loader reported records left:\n%s", loader.grep("not loaded yet", 5))
			}
		})
	}
}
