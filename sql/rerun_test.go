package sql_test

import (
	"context"
	"testing"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	tsql "github.com/tideline-dev/tideline/sql"
)

// TestUpAfterLostRecords: a migration that ran but whose record was lost
// (the process died between the two) runs again harmlessly, the ALTER
// that adds columns included, and the schema ends the same.
func TestUpAfterLostRecords(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	columns := func() uint64 {
		return queryUint(t, conn, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table IN ('events', 'events_unique')")
	}
	before := columns()
	if err := conn.Exec(ctx, "DROP TABLE schema_migrations"); err != nil {
		t.Fatal(err)
	}
	n, err := tsql.Up(ctx, conn, testenv.Logger(t))
	if err != nil {
		t.Fatalf("migrations again: %v", err)
	}
	if n != len(mustMigrations(t)) {
		t.Errorf("%d migrations recorded again, want all %d", n, len(mustMigrations(t)))
	}
	if after := columns(); after != before {
		t.Errorf("events and events_unique have %d columns, %d before", after, before)
	}
}

func mustMigrations(t *testing.T) []tsql.Migration {
	t.Helper()
	ms, err := tsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func queryUint(t *testing.T, conn *chdb.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestUpAgainAppliesNothing: migrate on a database that has every
// migration applies none and records none, as compose's migrate step does
// on every `up`.
func TestUpAgainAppliesNothing(t *testing.T) {
	conn := testenv.ClickHouse(t)
	recorded := func() uint64 { return queryUint(t, conn, "SELECT count() FROM schema_migrations") }
	before := recorded()
	n, err := tsql.Up(context.Background(), conn, testenv.Logger(t))
	if err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if n != 0 {
		t.Errorf("migrate again applied %d migrations, want none", n)
	}
	if after := recorded(); after != before {
		t.Errorf("schema_migrations has %d rows, %d before", after, before)
	}
}
