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
			// An ALTER goes to one replica of each replica set
			// (chdb.Conn.AlterStorage), never ON CLUSTER.
			alter := strings.HasPrefix(s, "ALTER TABLE ")
			if alter && strings.Contains(s, " ON CLUSTER ") {
				t.Errorf("migration %d: %.80q alters ON CLUSTER", v, s)
			}
			if !strings.HasPrefix(s, "INSERT") && !alter && !strings.Contains(s, " ON CLUSTER c") {
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

// TestClusterViewPlacement: a view selecting straight from a sharded table
// is attached to its local table and writes the local target; one selecting
// from a subquery is attached to the Distributed table; names are
// qualified with the database, and column comments (with quotes escaped
// inside) are dropped.
func TestClusterViewPlacement(t *testing.T) {
	conn := &chdb.Conn{Database: "db", Cluster: "c"}
	for _, tc := range []struct {
		stmt string
		want string
	}{
		{
			stmt: "CREATE MATERIALIZED VIEW IF NOT EXISTS v1 TO customer_signals AS\nSELECT customer_id FROM events\nWHERE type = 'track'",
			want: "CREATE MATERIALIZED VIEW IF NOT EXISTS v1 ON CLUSTER c TO db.customer_signals_local AS SELECT customer_id FROM db.events_local\nWHERE type = 'track'",
		},
		{
			stmt: "CREATE MATERIALIZED VIEW IF NOT EXISTS v2 TO customer_attributes AS\nSELECT customer_id\nFROM\n(\n    -- only rows with traits\n    SELECT customer_id FROM events\n)",
			want: "CREATE MATERIALIZED VIEW IF NOT EXISTS v2 ON CLUSTER c TO db.customer_attributes AS SELECT customer_id\nFROM\n(\n\n    SELECT customer_id FROM db.events\n)",
		},
		{
			stmt: "ALTER TABLE audiences ADD COLUMN x String DEFAULT '' COMMENT 'it''s new'",
			want: "ALTER TABLE audiences ADD COLUMN x String DEFAULT ''",
		},
	} {
		got, err := tsql.OnConn(conn, tc.stmt)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q\n got %q\nwant %q", tc.stmt, got, tc.want)
		}
	}
	one, err := tsql.OnConn(&chdb.Conn{Database: "db"}, "DROP TABLE IF EXISTS x")
	if err != nil || len(one) != 1 || one[0] != "DROP TABLE IF EXISTS x" {
		t.Errorf("one server: %q, %v; want the statement as written", one, err)
	}
}
