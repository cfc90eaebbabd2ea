package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestStopLosesNothingAccepted stops dev while the demo workload is in
// full flow: every event the collector answered 2xx for must be in
// ClickHouse (inserted, or dead-lettered by the loader) when Run returns.
func TestStopLosesNothingAccepted(t *testing.T) {
	for _, b := range testenv.Brokers(t) {
		t.Run(b.Name, func(t *testing.T) {
			chCfg := testenv.ClickHouseConfig(t)
			conn := testenv.ClickHouseWith(t, chCfg)
			col := ingest.DefaultCollectorConfig()
			col.Addr, col.MetricsAddr = "127.0.0.1:0", ""
			ld := ingest.DefaultLoaderConfig()
			ld.MetricsAddr = ""
			ld.Lanes = []string{"web", "server", "dlq"}
			// Small batches keep the loader behind the workload, so there
			// is a backlog to drain when dev stops; the drain may take
			// its time on a busy machine.
			ld.BatchSize = 20
			ld.ShutdownTimeout = 3 * time.Minute
			var out bytes.Buffer
			cfg := DevConfig{
				ClickHouse: chCfg, Kafka: b.Config, Seeds: b.Seeds, Collector: col, Loader: ld,
				Rate: 1500, Customers: 500, Seed: 7, Duration: 2 * time.Second, Out: &out,
			}
			cfg.StatusAddr, cfg.StatusInterval = testenv.FreeAddr(t), 200*time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// /status is read while dev runs.
			got := make(chan Snapshot, 1)
			go func() {
				for ctx.Err() == nil {
					var snap Snapshot
					resp, err := http.Get("http://" + cfg.StatusAddr + "/status")
					if err == nil {
						err = json.NewDecoder(resp.Body).Decode(&snap)
						resp.Body.Close()
						if err == nil && snap.Accepted > 0 {
							got <- snap
							return
						}
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			sum, err := RunDev(ctx, cfg, nil, testenv.Logger(t))
			t.Log("\n" + out.String())
			if err != nil {
				t.Fatal(err)
			}
			q := "SELECT lane, uniqExact(message_id) FROM events GROUP BY lane"
			rows, err := conn.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			inCH := map[string]uint64{}
			for rows.Next() {
				var lane string
				var n uint64
				if err := rows.Scan(&lane, &n); err != nil {
					t.Fatal(err)
				}
				inCH[lane] = n
			}
			rows.Close()
			for _, l := range sum.Lanes {
				if l.Accepted == 0 {
					t.Fatalf("lane %s accepted nothing: the workload did not run", l.Lane)
				}
				if m := l.Missing(); m != 0 {
					t.Errorf("lane %s: accepted %d, inserted %d + dead-lettered %d: %d missing", l.Lane, l.Accepted, l.Inserted, l.DeadLettered, m)
				}
				// The workload's clients saw every 2xx the collector gave.
				if l.Sent-l.Rejected != l.Accepted {
					t.Errorf("lane %s: the workload counted %d accepted, the collector %d", l.Lane, l.Sent-l.Rejected, l.Accepted)
				}
				if got := inCH[l.Lane]; int64(got) != l.Accepted-l.DeadLettered {
					t.Errorf("lane %s: %d distinct events in ClickHouse, want %d", l.Lane, got, l.Accepted-l.DeadLettered)
				}
			}
			if sum.Drained == 0 {
				t.Errorf("the loader had no backlog when dev stopped: the test proves nothing")
			}
			select {
			case snap := <-got:
				if len(snap.Lanes) < 2 || snap.Lanes[0].Lane != "web" || snap.Lanes[1].Lane != "server" {
					t.Errorf("/status lanes %+v, want web and server", snap.Lanes)
				}
			default:
				t.Errorf("/status never showed an accepted event while dev ran")
			}
			if len(sum.Left) > 0 {
				t.Errorf("left unloaded: %s", ingest.DescribeBacklog(sum.Left))
			}
		})
	}
}
