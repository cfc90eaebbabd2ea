package bench

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// testBrokers are the brokers a run is tested against: the embedded one
// always, Apache Kafka too when TIDELINE_TEST_KAFKA names it.
func testBrokers(t *testing.T) map[string]broker.Config {
	out := map[string]broker.Config{"kfake": broker.DefaultConfig()}
	if os.Getenv(testenv.EnvKafka) != "" {
		out["kafka"] = testenv.Kafka(t).Config
	}
	return out
}

func testHarness(t *testing.T, bc broker.Config) Harness {
	mat := materialize.DefaultConfig()
	// The test binary runs in bench/: point at the repo's definitions.
	mat.AudiencesDir = "../" + materialize.DefaultAudiencesDir
	trg := trigger.DefaultConfig()
	trg.CampaignsDir = "../" + trg.CampaignsDir
	return Harness{
		// The scenarios measure one server next to its peer; on the local
		// cluster (cluster mode) TestRun adds the cluster ceiling.
		ClickHouse:  testenv.ServerConfig(t),
		Kafka:       bc,
		Loader:      ingest.DefaultLoaderConfig(),
		Collector:   ingest.DefaultCollectorConfig(),
		Materialize: mat,
		Trigger:     trg,
		Exe:         os.Args[0],
		ExeEnv:      []string{envChild + "=1"},
		Views:       AudienceViews(mat, testenv.Logger(t)),
		Log:         testenv.Logger(t),
	}
}

// smallConfig is a run of every scenario in well under a minute.
func smallConfig(t *testing.T) Config {
	c := DefaultConfig()
	// Long enough that a fresh Apache Kafka has the collector producing
	// inside the window (2 s sometimes measured nothing at all).
	c.Duration = 6 * time.Second
	c.Events = 30000
	c.Customers = 2000
	c.Rate = 800
	c.Backlog = 5 * time.Second
	c.ResultsDir = t.TempDir()
	return c
}

// runKept runs cfg within the given time with the run's databases kept for
// the test to read, and drops them when the test ends; conn is on the
// server's default database.
func runKept(t *testing.T, cfg Config, h Harness, within time.Duration) (*Result, *chdb.Conn) {
	t.Helper()
	cfg.Keep = true
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	res, err := Run(ctx, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	boot := h.ClickHouse
	boot.Database = "default"
	conn, err := chdb.Open(context.Background(), boot, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer conn.Close()
		ctx := context.Background()
		dbs, err := conn.Strings(ctx, "SELECT name FROM system.databases WHERE startsWith(name, ?)", "bench_"+res.RunID+"_")
		if err != nil {
			t.Errorf("list the run's databases: %v", err)
		}
		for _, db := range dbs {
			if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
				t.Errorf("drop the run's database %s: %v", db, err)
			}
		}
	})
	return res, conn
}

// TestRun runs every scenario on a small scale and checks that each one
// measured what it claims: every produced event was loaded by the loader
// and by the peer, with the same column values; latencies were observed;
// the backlog drained; every child reported its memory.
func TestRun(t *testing.T) {
	for name, bc := range testBrokers(t) {
		t.Run(name, func(t *testing.T) {
			cfg := smallConfig(t)
			if testenv.ClusterMode() {
				cfg.Cluster = strings.Join(testenv.ClusterAddrs(t), ",")
				cfg.ClusterName = testenv.ClusterName
			}
			h := testHarness(t, bc)
			within := 3 * time.Minute
			if cfg.Cluster != "" {
				// Migrating on the cluster is DDL ON CLUSTER.
				within = 8 * time.Minute
			}
			res, conn := runKept(t, cfg, h, within)
			ctx := context.Background()

			kinds := map[string]int{}
			for _, tp := range res.Throughput {
				if tp.Error != "" {
					t.Errorf("%s (views %s): %s", tp.Name, tp.Views, tp.Error)
					continue
				}
				onCluster := strings.HasPrefix(tp.Name, "cluster (")
				if onCluster {
					kinds["cluster"]++
				} else {
					kinds[tp.Name]++
				}
				if tp.EventsPerSec <= 0 || tp.Rows <= 0 {
					t.Errorf("%s (views %s) measured nothing: %+v", tp.Name, tp.Views, tp)
				}
				if tp.Name != "ceiling: pre-built columnar inserts" && !onCluster && (!tp.Drained || tp.Rows != cfg.Events) {
					t.Errorf("%s (views %s): %d of %d rows, drained %v", tp.Name, tp.Views, tp.Rows, cfg.Events, tp.Drained)
				}
			}
			if kinds["tideline loader"] == 0 || kinds["peer: ClickHouse Kafka engine"] != 1 || kinds["ceiling: pre-built columnar inserts"] == 0 || (cfg.Cluster != "") != (kinds["cluster"] > 0) {
				t.Errorf("throughput measurements: %v", kinds)
			}
			if res.Produced == nil || res.Produced.PerLane["web"]+res.Produced.PerLane["server"] != cfg.Events {
				t.Errorf("produced: %+v", res.Produced)
			}

			var peerDB string
			for _, tp := range res.Throughput {
				if tp.Name == "peer: ClickHouse Kafka engine" {
					peerDB = "bench_" + res.RunID + "_peer_" + tp.Views
				}
			}
			if len(res.Views) == 0 {
				t.Error("the result lists no views for the attached scenarios")
			}
			loaded := eventRows(t, conn, "bench_"+res.RunID+"_tideline_detached")
			peered := eventRows(t, conn, peerDB)
			if len(loaded) != int(cfg.Events) || len(peered) != len(loaded) {
				t.Fatalf("loader wrote %d distinct rows, peer %d; want %d each", len(loaded), len(peered), cfg.Events)
			}
			for id, row := range loaded {
				if peered[id] != row {
					t.Fatalf("message %s: loader wrote %q, peer %q", id, row, peered[id])
				}
			}

			// The live scenarios load their own traffic only, not the
			// throughput scenarios' data (its event times precede the run).
			for _, db := range []string{"latency", "backlog"} {
				var old uint64
				q := "SELECT count() FROM bench_" + res.RunID + "_" + db + ".events WHERE event_time_ms < ?"
				if err := conn.QueryRow(ctx, q, uint64(res.Date.UnixMilli())).Scan(&old); err != nil {
					t.Fatal(err)
				}
				if old != 0 {
					t.Errorf("the %s scenario loaded %d events of the pre-produced data", db, old)
				}
			}
			if l := res.Latency; l == nil || l.Error != "" || l.Visible.Count < int(l.Accepted)/2 || l.Visible.P50 <= 0 || l.Accepted == 0 {
				t.Errorf("latency: %+v", l)
			} else if l.Transition == nil || l.Transition.Count == 0 || l.Webhook == nil || l.Webhook.Count == 0 {
				t.Errorf("latency: no transitions or webhooks measured: %+v / %+v", l.Transition, l.Webhook)
			}
			if b := res.Backlog; b == nil || b.Error != "" || !b.Drained || b.BacklogEvents == 0 || b.DrainSeconds <= 0 || b.LiveBefore.Count == 0 {
				t.Errorf("backlog: %+v", b)
			}
			roles := map[string]int{}
			for _, m := range res.Memory {
				if m.PeakRSSMB <= 0 {
					t.Errorf("no peak RSS for %s in %s", m.Process, m.Scenario)
				}
				roles[m.Process]++
			}
			if roles["loader"] < 4 || roles["collector"] != 2 || roles["evaluator"] != 1 || roles["trigger poller"] != 1 {
				t.Errorf("memory of %v processes; want at least 4 loaders, 2 collectors, an evaluator and a trigger poller", roles)
			}

			path, err := res.Save(cfg.ResultsDir)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.RunID != res.RunID || len(back.Throughput) != len(res.Throughput) || back.Machine.Cores == 0 || back.Machine.ClickHouse == "" {
				t.Errorf("saved result does not round-trip: %+v", back)
			}
		})
	}
}

// eventRows reads a database's events as message id → the columns both the
// loader and the peer derive from the event (not the Kafka position or the
// ingest time, which differ by design).
func eventRows(t *testing.T, conn *chdb.Conn, db string) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT message_id, concat(type, '|', customer_id, '|', user_id, '|', anonymous_id, '|', event, '|', properties, '|', traits, '|', toString(event_time), '|', toString(event_time_ms), '|', toString(sent_at_ms), '|', toString(received_at_ms), '|', source, '|', lane, '|', "+strings.Join(peerContextColumns, ", '|', ")+") FROM "+db+".events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, row string
		if err := rows.Scan(&id, &row); err != nil {
			t.Fatal(err)
		}
		if prev, dup := out[id]; dup && prev != row {
			t.Fatalf("%s: message %s loaded twice with different columns", db, id)
		}
		out[id] = row
	}
	return out
}

// TestLoaderProcesses: two loader processes of one consumer group share the
// throughput scenario's partitions and load every event exactly once.
func TestLoaderProcesses(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Scenarios = []string{"throughput"}
	cfg.LoaderProcesses = 2
	res, conn := runKept(t, cfg, testHarness(t, broker.DefaultConfig()), 3*time.Minute)
	ctx := context.Background()
	if len(res.Throughput) != 2 {
		t.Fatalf("throughput measurements: %+v; want views detached and attached", res.Throughput)
	}
	for _, tp := range res.Throughput {
		if tp.Error != "" || tp.Name != "tideline loader ×2" || !tp.Drained || tp.Rows != cfg.Events {
			t.Errorf("%s (views %s): %d of %d rows, drained %v, error %q", tp.Name, tp.Views, tp.Rows, cfg.Events, tp.Drained, tp.Error)
		}
	}
	for _, views := range []string{"detached", "attached"} {
		db := "bench_" + res.RunID + "_tideline_" + views
		if rows := eventRows(t, conn, db); len(rows) != int(cfg.Events) {
			t.Errorf("views %s: %d distinct events loaded, want %d", views, len(rows), cfg.Events)
		}
		// Every position once: the group split the partitions.
		var positions, distinct uint64
		q := "SELECT count(), uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM " + db + ".event_positions"
		if err := conn.QueryRow(ctx, q).Scan(&positions, &distinct); err != nil {
			t.Fatal(err)
		}
		if positions != uint64(cfg.Events) || distinct != positions {
			t.Errorf("views %s: %d positions, %d distinct; want %d once each", views, positions, distinct, cfg.Events)
		}
	}
	loaders := 0
	for _, m := range res.Memory {
		if m.Process == "loader" && m.PeakRSSMB > 0 {
			loaders++
		}
	}
	if loaders != 4 {
		t.Errorf("peak RSS of %d loader processes; want 2 per views scenario", loaders)
	}
}
