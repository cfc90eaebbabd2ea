package sql

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Cluster mode places every table of the migrations on a ClickHouse
// cluster. The migrations themselves are written for one server; this file
// is the one place that decides how each statement runs on a cluster, so a
// migration added later needs no cluster variant:
//
//   - a MergeTree-family table with a customer_id column is sharded by
//     cityHash64(customer_id): NAME_local is a Replicated*MergeTree on every
//     node (ZooKeeper path per shard, database and table; {shard} and
//     {replica} are the server's macros), and NAME is a Distributed table
//     over it that readers and writers use. One customer's events,
//     attributes, signals, touches, memberships, transitions and ledger
//     entries share a shard, so every per-customer view stays on it;
//   - any other MergeTree-family table (definitions: audiences, campaigns,
//     catalogs; cursors and positions: loader_progress, evaluator_state,
//     trigger_cursors; runs: backfill_runs, checkpoints; small per-lane
//     aggregates such as ingest_delay_minutes, input_lanes and
//     identity_links; schema_migrations) is replicated-only: one
//     Replicated*MergeTree whose replicas are every node of the cluster,
//     under its own name, so each server holds all of it and reads it
//     locally;
//   - a materialized view reads and writes local tables (NAME_local for
//     sharded ones), so each node's views fire on the blocks inserted into
//     its own local tables, which a Distributed insert routes by customer;
//   - plain views, DROP and ALTER run ON CLUSTER (an ALTER of a sharded
//     table on the local and the Distributed table); INSERT ... SELECT
//     fills run as written, through the Distributed tables, synchronously
//     (chdb.ClusterSettings).
//
// A statement of any other shape is refused with the migration's name
// rather than run on one node only.

// Placement is how a table lives on the cluster.
type Placement int

// Placements.
const (
	// Sharded: NAME_local on every node, NAME Distributed over it.
	Sharded Placement = iota + 1
	// ReplicatedOnly: NAME replicated to every node.
	ReplicatedOnly
)

// ShardingKey is the Distributed tables' sharding expression.
const ShardingKey = "cityHash64(customer_id)"

// LocalSuffix names the local table under a sharded Distributed table.
const LocalSuffix = "_local"

var (
	reComment     = regexp.MustCompile(`(?m)^\s*--.*$`)
	reCreateTable = regexp.MustCompile(`(?is)^CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*ENGINE\s*=\s*(\w*MergeTree)\(([^)]*)\)(.*)$`)
	reCustomerCol = regexp.MustCompile(`(?m)^\s*customer_id\s+[A-Z]`)
	reMV          = regexp.MustCompile(`(?is)^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+)\s+AS\s+(.*)$`)
	reView        = regexp.MustCompile(`(?is)^CREATE VIEW IF NOT EXISTS (\w+)\s+AS\s+(.*)$`)
	reDrop        = regexp.MustCompile(`(?is)^DROP TABLE IF EXISTS (\w+)\s*$`)
	reAlter       = regexp.MustCompile(`(?is)^ALTER TABLE (\w+)\s+(.*)$`)
	reTruncate    = regexp.MustCompile(`(?is)^TRUNCATE TABLE IF EXISTS (\w+)\s*$`)
	reInsert      = regexp.MustCompile(`(?is)^INSERT INTO \w+`)
	reSource      = regexp.MustCompile(`(?i)\b(FROM|JOIN)\s+(\w+)\b`)
	reSubquery    = regexp.MustCompile(`(?i)\bFROM\s*\(`)
	reColComment  = regexp.MustCompile(`\s+COMMENT\s+'(?:[^'\\]|''|\\.)*'`)
)

// uncommented drops column comments: ClickHouse 18.16 keeps them in a
// replicated table's ZooKeeper metadata and then refuses the second
// replica ("Table structure in ZooKeeper is too different from local table
// structure"). The migrations' files keep them as the columns' documentation.
func uncommented(cols string) string { return reColComment.ReplaceAllString(cols, "") }

// Plan is what cluster mode runs for each migration, and where each table
// lives.
type Plan struct {
	Statements map[int][]string
	Tables     map[string]Placement
	// views are the plain and materialized views created so far.
	views map[string]bool
}

// ClusterPlan rewrites ms for cluster on database. It walks every
// migration, applied or not, since a later statement depends on where an
// earlier one put its table.
func ClusterPlan(ms []Migration, cluster, database string) (Plan, error) {
	p := Plan{Statements: map[int][]string{}, Tables: map[string]Placement{}, views: map[string]bool{}}
	for _, m := range ms {
		stmts, err := p.rewrite(m.Statement, cluster, database)
		if err != nil {
			return p, fmt.Errorf("migration %s in cluster mode: %w", m.Name, err)
		}
		p.Statements[m.Version] = stmts
	}
	return p, nil
}

// local is the table a view or a fill on one node reads or writes for name.
func (p Plan) local(name string) string {
	if p.Tables[name] == Sharded {
		return name + LocalSuffix
	}
	return name
}

// qualified prefixes the tables and views a SELECT reads with db, local
// ones (materialized views) or not: a server running DDL for the cluster
// resolves bare names in its own default database.
func (p Plan) qualified(sel, db string, local bool) string {
	return reSource.ReplaceAllStringFunc(sel, func(s string) string {
		sm := reSource.FindStringSubmatch(s)
		name := sm[2]
		if _, table := p.Tables[name]; !table && !p.views[name] {
			return s
		}
		if local {
			name = p.local(name)
		}
		return sm[1] + " " + db + "." + name
	})
}

func (p Plan) rewrite(stmt, cluster, db string) ([]string, error) {
	body := strings.TrimSpace(reComment.ReplaceAllString(stmt, ""))
	on := " ON CLUSTER " + cluster
	if m := reCreateTable.FindStringSubmatch(body); m != nil {
		name, cols, engine, args, rest := m[1], uncommented(m[2]), m[3], strings.TrimSpace(m[4]), m[5]
		if reCustomerCol.MatchString(m[2]) {
			p.Tables[name] = Sharded
			local := name + LocalSuffix
			return []string{
				fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (%s) ENGINE = Replicated%s(%s)%s",
					local, on, cols, engine, replicatedArgs("{shard}", db, local, args), rest),
				p.distributed(name, cluster, db),
			}, nil
		}
		p.Tables[name] = ReplicatedOnly
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (%s) ENGINE = Replicated%s(%s)%s",
			name, on, cols, engine, replicatedArgs("all", db, name, args), rest)}, nil
	}
	if m := reMV.FindStringSubmatch(body); m != nil {
		name, target, sel := m[1], m[2], m[3]
		// The view fires on inserts into the table its first FROM names.
		if src := reSource.FindStringSubmatch(sel); src != nil && p.Tables[target] == Sharded && p.Tables[src[2]] == ReplicatedOnly {
			return nil, fmt.Errorf("view %s reads replicated-only %s into sharded %s: its rows would land on the shard of whichever node took the insert", name, src[2], target)
		}
		p.views[name] = true
		if reSubquery.MatchString(sel) {
			// ClickHouse 18.16 fails a view selecting from a subquery on
			// the local table a Distributed insert writes ("There is no
			// query", code 393). Such a view reads the Distributed table:
			// it fires once, on the server that took the insert, and its
			// rows reach their shards through the Distributed target.
			return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s.%s AS %s",
				name, on, db, target, p.qualified(sel, db, false))}, nil
		}
		return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s.%s AS %s",
			name, on, db, p.local(target), p.qualified(sel, db, true))}, nil
	}
	if m := reView.FindStringSubmatch(body); m != nil {
		p.views[m[1]] = true
		return []string{fmt.Sprintf("CREATE VIEW IF NOT EXISTS %s%s AS %s", m[1], on, p.qualified(m[2], db, false))}, nil
	}
	if m := reDrop.FindStringSubmatch(body); m != nil {
		name := m[1]
		out := []string{"DROP TABLE IF EXISTS " + name + on}
		if p.Tables[name] == Sharded {
			out = append(out, "DROP TABLE IF EXISTS "+name+LocalSuffix+on)
		}
		delete(p.Tables, name)
		delete(p.views, name)
		return out, nil
	}
	if m := reAlter.FindStringSubmatch(body); m != nil {
		name, rest := m[1], uncommented(m[2])
		if p.Tables[name] == Sharded {
			// A Distributed table over replicated shards refuses ALTER ON
			// CLUSTER; it holds no rows, so it is made again over the
			// altered local table.
			return append([]string{"ALTER TABLE " + name + " " + rest, "DROP TABLE IF EXISTS " + name + on},
				p.distributed(name, cluster, db)), nil
		}
		return []string{"ALTER TABLE " + name + " " + rest}, nil
	}
	if m := reTruncate.FindStringSubmatch(body); m != nil {
		// The rows are in the replicated tables. TRUNCATE ON CLUSTER has
		// every replica of a shard ask its leader at once, which 18.16
		// fails ("Leader was suddenly changed"); a DELETE of every row
		// runs on one replica of each set and replicates.
		return []string{"ALTER TABLE " + m[1] + " DELETE WHERE 1"}, nil
	}
	if reInsert.MatchString(body) {
		return []string{body}, nil
	}
	return nil, fmt.Errorf("no cluster form for %.60q: teach sql/cluster.go its shape", body)
}

// distributed creates the Distributed table name over its local table. AS
// names the database: a server running DDL for the cluster resolves a bare
// name in its own default database.
func (p Plan) distributed(name, cluster, db string) string {
	local := name + LocalSuffix
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s.%s ENGINE = Distributed(%s, %s, %s, %s)",
		name, cluster, db, local, cluster, db, local, ShardingKey)
}

// replicatedArgs are a Replicated*MergeTree's engine arguments: its
// ZooKeeper path (one per shard, or "all" for a table every node
// replicates), the replica macro, then the plain engine's own arguments.
func replicatedArgs(shard, db, table, args string) string {
	out := fmt.Sprintf("'/clickhouse/tables/%s/%s/%s', '{replica}'", shard, db, table)
	if args != "" {
		out += ", " + args
	}
	return out
}

// reAlterStorage is the ALTER a cluster plan sends through
// chdb.Conn.AlterStorage: the plan never writes ALTER ... ON CLUSTER.
var reAlterStorage = regexp.MustCompile(`(?is)^ALTER TABLE (\w+) (.*)$`)

// run sends one statement of a plan: in cluster mode an ALTER goes to the
// replicated table holding the rows, on one replica of each replica set
// (chdb.Conn.AlterStorage says why not ON CLUSTER); anything else as is.
func run(ctx context.Context, conn *chdb.Conn, stmt string) error {
	if conn.Cluster != "" {
		if m := reAlterStorage.FindStringSubmatch(stmt); m != nil {
			return conn.AlterStorage(ctx, m[1], m[2])
		}
	}
	return conn.Exec(ctx, stmt)
}

// Exec runs stmt, a statement written for one server, on conn: as is on
// one server, in its cluster form in cluster mode (OnConn).
func Exec(ctx context.Context, conn *chdb.Conn, stmt string) error {
	stmts, err := OnConn(conn, stmt)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if err := run(ctx, conn, s); err != nil {
			return err
		}
	}
	return nil
}

// OnConn is what runs for stmt, a statement written for one server (a
// migration, or a view `tideline audiences apply` compiles), on conn: stmt
// itself on one server, its cluster form when conn is in cluster mode.
func OnConn(conn *chdb.Conn, stmt string) ([]string, error) {
	if conn.Cluster == "" {
		return []string{stmt}, nil
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	p, err := ClusterPlan(ms, conn.Cluster, conn.Database)
	if err != nil {
		return nil, err
	}
	return p.rewrite(stmt, conn.Cluster, conn.Database)
}
