package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/grafana/internal/seed"
	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	tsql "github.com/tideline-dev/tideline/sql"
)

// Benchmark sizes, from the environment: TIDELINE_BENCH_EVENTS (default
// 1,000,000) and TIDELINE_BENCH_CUSTOMERS (default 100,000). The seeded
// database (bench_grafana_<events>_<customers>) is kept and reused, so only
// the first run of a size pays for the seeding; drop it by hand.
func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkQueryData measures the QueryData handler per query type over a
// 24-hour dataset, for a dashboard's default view (the last 6 hours, a
// 1000-pixel panel), and reports p50/p95 latency per query type.
//
//	TIDELINE_BENCH_EVENTS=10000000 TIDELINE_BENCH_CUSTOMERS=1000000 \
//	  go test -run '^$' -bench QueryData -benchtime 40x ./grafana/plugin/
func BenchmarkQueryData(b *testing.B) {
	events := benchSize("TIDELINE_BENCH_EVENTS", 1_000_000)
	customers := benchSize("TIDELINE_BENCH_CUSTOMERS", 100_000)
	cfg := testenv.ClickHouseConfig(b)
	cfg.Database = fmt.Sprintf("bench_grafana_%d_%d", events, customers)
	cfg.ReadTimeout = 10 * time.Minute // seeding inserts on a shared, busy machine
	ctx := context.Background()
	conn, err := chdb.Open(ctx, cfg, true)
	if err != nil {
		b.Fatalf("ClickHouse is required (scripts/clickhouse.sh start): %v", err)
	}
	defer conn.Close()
	if _, err := tsql.Up(ctx, conn, testenv.Logger(b)); err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	sc := seed.Config{Seed: 42, Customers: customers, Events: events, Audiences: 3, Campaigns: 3, From: from, Span: 24 * time.Hour}
	var have uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have < uint64(events) {
		start := time.Now()
		// The benchmark measures the plugin's reads. The write side's
		// materialized views on events only slow the seeding down, so they
		// are dropped in this database (and nowhere else); the views that
		// keep the dashboards' own tables stay.
		var views []string
		if err := conn.QueryRow(ctx, "SELECT dependencies_table FROM system.tables WHERE database = ? AND name = 'events'", cfg.Database).Scan(&views); err != nil {
			b.Fatal(err)
		}
		views = slices.DeleteFunc(views, func(v string) bool { return v == "ingest_delay_minutes_mv" })
		for _, v := range views {
			if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+v); err != nil {
				b.Fatal(err)
			}
		}
		for _, t := range []string{"events", "audience_transitions", "audience_transition_keys", "audience_entry_times", "ingest_delay_minutes", "send_ledger", "ledger_sends", "audiences", "campaigns", "loader_progress", "dead_letters", "backfill_runs"} {
			if err := conn.Exec(ctx, "TRUNCATE TABLE IF EXISTS "+t); err != nil {
				b.Fatal(err)
			}
		}
		d, err := seed.Seed(ctx, conn, sc)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d events, %d transitions, %d ledger entries for %d customers in %s", d.EventCount, len(d.Transitions), len(d.Ledger), customers, time.Since(start).Round(time.Second))
	}

	d := open(b, instanceSettings(b, cfg))
	to := from.Add(24 * time.Hour)
	for _, m := range query.EveryModel() {
		name := string(m.QueryType)
		if m.Metric != "" {
			name += "/" + string(m.Metric)
		}
		raw, _ := json.Marshal(m)
		b.Run(name, func(b *testing.B) {
			q := backend.DataQuery{RefID: "A", QueryType: string(m.QueryType), JSON: raw,
				TimeRange: backend.TimeRange{From: to.Add(-6 * time.Hour), To: to}, Interval: 20 * time.Second, MaxDataPoints: 1000}
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				resp, err := d.QueryData(ctx, &backend.QueryDataRequest{Queries: []backend.DataQuery{q}})
				lat = append(lat, time.Since(start))
				if err != nil || resp.Responses["A"].Error != nil {
					b.Fatalf("%v %v", err, resp.Responses["A"].Error)
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p := func(level float64) float64 {
				return float64(lat[min(int(level*float64(len(lat))), len(lat)-1)].Microseconds()) / 1000
			}
			b.ReportMetric(p(0.5), "p50-ms")
			b.ReportMetric(p(0.95), "p95-ms")
		})
	}
}
