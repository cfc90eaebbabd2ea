package sql_test

import (
	"context"
	"testing"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	tsql "github.com/tideline-dev/tideline/sql"
)

// TestUpWithReportsEachStep: every migration applied is announced to the
// progress and ended, so a bar never stays open.
func TestUpWithReportsEachStep(t *testing.T) {
	cfg := testenv.ClickHouseConfig(t)
	ctx := context.Background()
	conn, err := chdb.Open(ctx, cfg, true)
	if err != nil {
		t.Fatalf("ClickHouse is required at %s (scripts/clickhouse.sh start): %v", cfg.Addr, err)
	}
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		conn.Close()
	})
	started, ended := map[string]bool{}, 0
	n, err := tsql.UpWith(ctx, conn, testenv.Logger(t), func(m tsql.Migration) (func(uint64, uint64), func()) {
		if started[m.Name] {
			t.Errorf("migration %s started twice", m.Name)
		}
		started[m.Name] = true
		return func(uint64, uint64) {}, func() { ended++ }
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := tsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || len(started) != len(ms) || ended != len(ms) {
		t.Errorf("applied %d of %d migrations, %d announced, %d ended", n, len(ms), len(started), ended)
	}
}
