package sql_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	tsql "github.com/tideline-dev/tideline/sql"
)

// TestClusterPlan: every migration has a cluster form; per-customer tables
// are sharded, definitions and cursors replicated-only, and materialized
// views read and write local tables.
func TestClusterPlan(t *testing.T) {
	p, err := tsql.ClusterPlan(mustMigrations(t), "c", "db")
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]tsql.Placement{
		"events": tsql.Sharded, "customer_attributes": tsql.Sharded, "audience_membership": tsql.Sharded,
		"audience_transitions": tsql.Sharded, "send_ledger": tsql.Sharded, "customer_touches": tsql.Sharded,
		"audiences": tsql.ReplicatedOnly, "campaigns": tsql.ReplicatedOnly, "evaluator_state": tsql.ReplicatedOnly,
		"trigger_cursors": tsql.ReplicatedOnly, "backfill_runs": tsql.ReplicatedOnly, "loader_progress": tsql.ReplicatedOnly,
	} {
		if got := p.Tables[table]; got != want {
			t.Errorf("%s placed %d, want %d", table, got, want)
		}
	}
	for v, stmts := range p.Statements {
		for _, s := range stmts {
			if !strings.HasPrefix(s, "INSERT") && !strings.Contains(s, " ON CLUSTER c") {
				t.Errorf("migration %d: %.80q runs on one node only", v, s)
			}
			if strings.HasPrefix(s, "CREATE MATERIALIZED VIEW") && (strings.Contains(s, "FROM db.events ") || strings.Contains(s, "FROM db.events\n")) {
				t.Errorf("migration %d: view reads the Distributed events, not events_local: %.120q", v, s)
			}
		}
	}
	if _, err := tsql.ClusterPlan([]tsql.Migration{{Name: "x.sql", Statement: "RENAME TABLE a TO b"}}, "c", "db"); err == nil {
		t.Error("a statement of unknown shape was given a cluster form")
	}
}

// TestClusterMigrate: every migration applies on the local cluster, and
// each node holds the same tables: NAME Distributed over NAME_local for
// the sharded ones, replicated-only tables under their own names.
func TestClusterMigrate(t *testing.T) {
	c := testenv.ClusterConfig(t)
	testenv.ClickHouseWith(t, c)
	p, err := tsql.ClusterPlan(mustMigrations(t), c.Cluster, c.Database)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, addr := range testenv.ClusterAddrs(t) {
		node := c
		node.Addr = addr
		conn, err := chdb.Open(ctx, node, false)
		if err != nil {
			t.Fatalf("node %s: %v", addr, err)
		}
		engines := map[string]string{}
		rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			engines[name] = engine
		}
		rows.Close()
		conn.Close()
		for table, placement := range p.Tables {
			switch placement {
			case tsql.Sharded:
				if engines[table] != "Distributed" || !strings.HasPrefix(engines[table+tsql.LocalSuffix], "Replicated") {
					t.Errorf("node %s: %s is %q over %q, want Distributed over Replicated*", addr, table, engines[table], engines[table+tsql.LocalSuffix])
				}
			case tsql.ReplicatedOnly:
				if !strings.HasPrefix(engines[table], "Replicated") {
					t.Errorf("node %s: %s is %q, want Replicated*", addr, table, engines[table])
				}
			}
		}
	}
}
