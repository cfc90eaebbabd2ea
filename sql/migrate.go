package sql

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/internal/chdb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migration is one schema step.
type Migration struct {
	Version   int
	Name      string
	Statement string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and an underscore", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, Statement: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Latest is the highest embedded version.
func Latest() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

const versionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version       UInt32 COMMENT 'migration number',
    name          String COMMENT 'migration file',
    applied_at_ms UInt64 COMMENT 'when it was applied, epoch ms'
) ENGINE = ReplacingMergeTree(applied_at_ms) ORDER BY version`

// Applied returns the versions recorded in schema_migrations.
func Applied(ctx context.Context, conn *chdb.Conn) (map[int]bool, error) {
	create := []string{versionTable}
	if conn.Cluster != "" {
		p, err := ClusterPlan([]Migration{{Name: "schema_migrations", Statement: versionTable}}, conn.Cluster, conn.Database)
		if err != nil {
			return nil, err
		}
		create = p.Statements[0]
	}
	for _, stmt := range create {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	applied := map[int]bool{}
	err := conn.Each(ctx, "SELECT DISTINCT version FROM schema_migrations", nil, func(rows chdb.Rows) error {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return err
		}
		applied[int(v)] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

// Version is the highest applied version (0 for an empty database).
func Version(ctx context.Context, conn *chdb.Conn) (int, error) {
	applied, err := Applied(ctx, conn)
	if err != nil {
		return 0, err
	}
	max := 0
	for v := range applied {
		if v > max {
			max = v
		}
	}
	return max, nil
}

// ClickHouse's codes for a column added twice: ILLEGAL_COLUMN on 18.16,
// DUPLICATE_COLUMN on later servers.
const (
	codeIllegalColumn   = 44
	codeDuplicateColumn = 15
)

// alreadyAdded reports whether err is an ALTER TABLE ... ADD COLUMN finding
// its column there: the statement ran before and its record was lost with
// the process that ran it. ClickHouse 18.16 has no ADD COLUMN IF NOT
// EXISTS, and the columns of one ALTER are added together, so such a
// migration is done.
func alreadyAdded(stmt string, err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == codeDuplicateColumn || ex.Code == codeIllegalColumn && strings.Contains(ex.Message, "already exists")) &&
		strings.Contains(strings.ToUpper(stmt), "ADD COLUMN")
}

// Up applies every embedded migration not yet recorded, in order, and
// returns how many it applied.
func Up(ctx context.Context, conn *chdb.Conn, log *slog.Logger) (int, error) {
	return UpWith(ctx, conn, log, nil)
}

// StepProgress is told when a migration starts; it returns what receives
// the rows the server read so far (with its estimate of the total, 0 when
// it has none) and what is called when the statement ended. A fill
// migration (INSERT ... SELECT over existing data) can take minutes.
type StepProgress func(m Migration) (read func(rows, total uint64), done func())

// UpWith is Up reporting each statement's progress to progress (nil: none).
func UpWith(ctx context.Context, conn *chdb.Conn, log *slog.Logger, progress StepProgress) (int, error) {
	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	applied, err := Applied(ctx, conn)
	if err != nil {
		return 0, err
	}
	var plan Plan
	if conn.Cluster != "" {
		if plan, err = ClusterPlan(ms, conn.Cluster, conn.Database); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		stmts := []string{m.Statement}
		if conn.Cluster != "" {
			stmts = plan.Statements[m.Version]
		}
		if err := apply(ctx, conn, m, stmts, progress); err != nil {
			return n, fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at_ms)")
		if err != nil {
			return n, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		if err := batch.Append(uint32(m.Version), m.Name, chdb.NowMs()); err != nil {
			return n, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		if err := batch.Send(); err != nil {
			return n, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		log.Info("migration applied", "version", m.Version, "name", m.Name)
		n++
	}
	return n, nil
}

// apply runs the statements of migration m (one, or the cluster plan's
// several), announced to progress as one step.
func apply(ctx context.Context, conn *chdb.Conn, m Migration, stmts []string, progress StepProgress) error {
	read := func(uint64, uint64) {}
	if progress != nil {
		var done func()
		read, done = progress(m)
		defer done()
	}
	// Progress packets carry increments.
	var rows, total uint64
	ctx = clickhouse.Context(ctx, clickhouse.WithProgress(func(p *clickhouse.Progress) {
		rows += p.Rows
		total += p.TotalRows
		read(rows, total)
	}))
	for _, stmt := range stmts {
		if err := run(ctx, conn, stmt); err != nil && !alreadyAdded(stmt, err) {
			return err
		}
	}
	return nil
}
