package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	tsql "github.com/tideline-dev/tideline/sql"
)

// clusterCeilings measures the ceiling with every view attached on the
// cluster of cfg.Cluster in cluster mode, with the same batches as the
// single server's, next to it in the same run: inserted through the
// Distributed events table synchronously (what tideline does: the insert
// returns once every shard's local table took its rows and fired its
// views), then asynchronously (the initiator acknowledges a spool file and
// forwards it later, which a crash of the initiator loses), and straight
// into one node's local table (no routing at all: the bound a loader that
// routed rows to shards itself could approach; views attached to the
// Distributed table do not fire there). Server CPU is summed over every
// node of the cluster.
func (r *run) clusterCeilings(ctx context.Context, batches []*ingest.EventRows) {
	c := r.h.ClickHouse
	c.Addr, c.Cluster = r.cfg.Cluster, r.cfg.ClusterName
	c.Database = "bench_" + r.id + "_cluster"
	addrs := strings.Split(c.Addr, ",")
	name := fmt.Sprintf("cluster (%d servers): pre-built columnar inserts", len(addrs))
	fail := func(how string, err error) {
		r.res.Throughput = append(r.res.Throughput, Throughput{Name: name + ", " + how, Views: "attached", Error: err.Error()})
	}
	r.step("cluster ceiling: migrating %s on %s (cluster %s)", c.Database, c.Addr, c.Cluster)
	conn, err := chdb.Open(ctx, c, true)
	if err != nil {
		fail("Distributed sync", err)
		return
	}
	defer conn.Close()
	if !r.cfg.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := conn.Exec(dctx, "DROP DATABASE IF EXISTS "+c.Database+c.OnCluster()); err != nil {
				r.log.Warn("drop cluster bench database", "database", c.Database, "err", err)
			}
		}()
	}
	if _, err := tsql.Up(ctx, conn, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		fail("Distributed sync", fmt.Errorf("migrate: %w", err))
		return
	}
	if r.h.Views != nil {
		if err := r.h.Views(ctx, conn); err != nil {
			fail("Distributed sync", fmt.Errorf("install views: %w", err))
			return
		}
	}
	nodes := "remote('" + strings.Join(addrs, ",") + "', system.events)"
	for _, v := range []struct {
		how  string
		sync int
	}{{"Distributed sync", 1}, {"Distributed async", 0}} {
		vctx := chdb.Settings(ctx, clickhouse.Settings{"insert_distributed_sync": v.sync})
		r.step("cluster ceiling (%s, views attached): %d inserters for %s", v.how, r.cfg.CeilingInserters, r.cfg.Duration)
		before, _ := serverEvents(ctx, conn, nodes)
		t, err := runCeiling(vctx, r.cfg, conn, batches)
		if err != nil {
			fail(v.how, err)
			continue
		}
		t.Name, t.Views = name+", "+v.how, "attached"
		t.Server = serverSince(ctx, conn, nodes, before)
		r.step("cluster ceiling (%s): %.0f events/s", v.how, t.EventsPerSec)
		r.res.Throughput = append(r.res.Throughput, t)
	}
	// One node's local table: the same batches, no Distributed layer.
	lc := c
	lc.Addr, lc.Cluster = addrs[0], ""
	local, err := chdb.Open(ctx, lc, false)
	if err != nil {
		fail("one node's events_local", err)
		return
	}
	defer local.Close()
	r.step("cluster ceiling (one node's events_local): %d inserters for %s", r.cfg.CeilingInserters, r.cfg.Duration)
	before, _ := serverEvents(ctx, conn, nodes)
	t, err := runCeilingInto(ctx, r.cfg, local, batches, true)
	if err != nil {
		fail("one node's events_local", err)
		return
	}
	t.Name, t.Views = name+", one node's events_local", "attached"
	t.Server = serverSince(ctx, conn, nodes, before)
	r.step("cluster ceiling (one node's events_local): %.0f events/s", t.EventsPerSec)
	r.res.Throughput = append(r.res.Throughput, t)
}
