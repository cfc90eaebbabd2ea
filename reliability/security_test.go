package reliability

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// Error codes ClickHouse refuses a read-only user's writes with: READONLY
// on 18.16, ACCESS_DENIED on servers with SQL access control.
const (
	codeReadonly     = 164
	codeAccessDenied = 497
)

// readOnlyUser connects to conn's database as one of the users of
// scripts/clickhouse/users.xml.
func readOnlyUser(t *testing.T, conn *chdb.Conn, user, password string) *chdb.Conn {
	t.Helper()
	c := testenv.ClickHouseConfig(t)
	c.Database, c.User, c.Password = conn.Database, user, password
	ro, err := chdb.Open(context.Background(), c, false)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

// TestReadOnlyUsers proves that the analyst and grafana users can read but
// every way of writing, altering, dropping, escaping through table
// functions or lifting their limits through settings is refused — and that
// the refusals leave the tables as they were.
func TestReadOnlyUsers(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "INSERT INTO send_ledger (ledger_key, campaign_id, customer_id, detected_at) SELECT 'k1', 'c1', 'u1', now()"); err != nil {
		t.Fatal(err)
	}
	schemaBefore := schemaFingerprint(t, conn)
	attempts := []struct{ name, sql string }{
		{"insert select", "INSERT INTO events (message_id, customer_id, event_time) SELECT 'x', 'y', now()"},
		{"insert into send_ledger", "INSERT INTO send_ledger (ledger_key, campaign_id, customer_id, detected_at) SELECT 'k2', 'c1', 'u2', now()"},
		{"alter add column", "ALTER TABLE events ADD COLUMN stolen String"},
		{"alter delete (mutation)", "ALTER TABLE send_ledger DELETE WHERE 1"},
		{"alter update (mutation)", "ALTER TABLE send_ledger UPDATE delivery_state = 'delivered' WHERE 1"},
		{"drop table", "DROP TABLE send_ledger"},
		{"drop database", "DROP DATABASE " + conn.Database},
		{"truncate", "TRUNCATE TABLE events"},
		{"rename", "RENAME TABLE events TO events_gone"},
		{"detach", "DETACH TABLE events"},
		{"create table", "CREATE TABLE stolen (a String) ENGINE = Memory"},
		{"create view", "CREATE VIEW stolen_view AS SELECT 1"},
		{"optimize", "OPTIMIZE TABLE events FINAL"},
		{"set", "SET max_memory_usage = 100000000000"},
		{"settings clause", "SELECT 1 SETTINGS max_execution_time = 100000"},
		{"file table function", "SELECT * FROM file('/etc/passwd', 'CSV', 'line String')"},
		{"url table function", "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'line String')"},
		{"remote table function", "SELECT * FROM remote('127.0.0.1:19000', system.one)"},
		{"system command", "SYSTEM FLUSH LOGS"},
	}
	for _, u := range []struct{ user, password string }{{"analyst", "analyst"}, {"grafana", "grafana"}} {
		t.Run(u.user, func(t *testing.T) {
			ro := readOnlyUser(t, conn, u.user, u.password)
			// Reading works, with a deadline as the plugin's requests carry
			// (clickhouse-go turns it into a max_execution_time setting).
			qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			var n uint64
			if err := ro.QueryRow(qctx, "SELECT count() FROM send_ledger").Scan(&n); err != nil || n != 1 {
				t.Fatalf("%s cannot read: %d, %v", u.user, n, err)
			}
			for _, a := range attempts {
				t.Run(a.name, func(t *testing.T) {
					err := ro.Exec(ctx, a.sql)
					if !refused(err) {
						t.Errorf("%s: %s was not refused as read-only (err %v)", u.user, a.sql, err)
					}
				})
			}
			t.Run("kill another user's query", func(t *testing.T) {
				// ClickHouse checks the right to kill per matching query, so
				// a query of the default user must be running: with none, the
				// statement matches nothing and succeeds whatever the rights.
				id := fmt.Sprintf("tideline-victim-%s-%d", u.user, time.Now().UnixNano())
				victim := make(chan error, 1)
				go func() {
					vctx := clickhouse.Context(ctx, clickhouse.WithQueryID(id))
					victim <- conn.Exec(vctx, "SELECT sleep(3)")
				}()
				deadline := time.Now().Add(10 * time.Second)
				for {
					var running uint64
					if err := conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id = ?", id).Scan(&running); err != nil {
						t.Fatal(err)
					}
					if running > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the default user's query never showed in system.processes")
					}
					time.Sleep(20 * time.Millisecond)
				}
				err := ro.Exec(ctx, "KILL QUERY WHERE query_id = ? SYNC", id)
				if !refused(err) {
					t.Errorf("%s: KILL QUERY of the default user's query was not refused (err %v)", u.user, err)
				}
				if err := <-victim; err != nil {
					t.Errorf("the default user's query did not run to its end: %v", err)
				}
			})
			t.Run("native batch insert", func(t *testing.T) {
				b, err := ro.PrepareBatch(ctx, "INSERT INTO send_ledger (ledger_key, campaign_id, customer_id)")
				if err == nil {
					if err = b.Append("k3", "c1", "u3"); err == nil {
						err = b.Send()
					}
				}
				if !refused(err) {
					t.Errorf("batch insert was not refused: %v", err)
				}
			})
			t.Run("protocol settings cannot lift limits", func(t *testing.T) {
				sctx := chdb.Settings(ctx, clickhouse.Settings{"readonly": 0, "max_memory_usage": 0, "max_execution_time": 0, "max_result_rows": 0})
				var readonly, mem, exec, rows string
				err := ro.QueryRow(sctx, "SELECT anyIf(value, name = 'readonly'), anyIf(value, name = 'max_memory_usage'), anyIf(value, name = 'max_execution_time'), anyIf(value, name = 'max_result_rows') FROM system.settings").Scan(&readonly, &mem, &exec, &rows)
				if err != nil {
					// Newer servers refuse the settings outright: as good.
					if !refused(err) {
						t.Fatalf("query with protocol settings: %v", err)
					}
					return
				}
				if readonly == "0" || mem == "0" || exec == "0" || rows == "0" {
					t.Errorf("settings sent by %s took effect: readonly=%s max_memory_usage=%s max_execution_time=%s max_result_rows=%s", u.user, readonly, mem, exec, rows)
				}
				if err := ro.Exec(sctx, "CREATE TABLE stolen2 (a String) ENGINE = Memory"); !refused(err) {
					t.Errorf("create with readonly=0 sent as a protocol setting was not refused: %v", err)
				}
			})
		})
	}
	if after := schemaFingerprint(t, conn); after != schemaBefore {
		t.Errorf("the schema changed during the refusals:\nbefore %s\nafter  %s", schemaBefore, after)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM send_ledger WHERE delivery_state = ''").Scan(&n); err != nil || n != 1 {
		t.Errorf("send_ledger changed: %d rows as written (%v)", n, err)
	}
}

// refused reports whether err is ClickHouse refusing a read-only user.
func refused(err error) bool {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code == codeReadonly || ex.Code == codeAccessDenied
	}
	// Older drivers surface the server's message only.
	return err != nil && strings.Contains(err.Error(), "readonly mode")
}

// schemaFingerprint lists the database's tables and columns.
func schemaFingerprint(t *testing.T, conn *chdb.Conn) string {
	t.Helper()
	var s string
	err := conn.QueryRow(context.Background(),
		"SELECT toString(groupArray(concat(table, '.', name, ':', type))) FROM (SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name)", conn.Database).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secretColumn matches column names that would hold a credential.
var secretColumn = regexp.MustCompile(`(?i)secret|passw|token|credential|private|write_?key|api_?key|signing|hmac`)

// TestNoSecretColumns checks the schema has nowhere to keep a credential:
// webhook secrets live in the poller's environment (campaign YAML names
// the variable), write keys in the collector's config. ledger_key is the
// public webhook id.
func TestNoSecretColumns(t *testing.T) {
	conn := testenv.ClickHouse(t)
	rows, err := conn.Query(context.Background(), "SELECT table, name FROM system.columns WHERE database = ? ORDER BY table, name", conn.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	checked := 0
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		checked++
		if col == "ledger_key" {
			continue
		}
		if secretColumn.MatchString(col) {
			t.Errorf("column %s.%s looks like it holds a credential", table, col)
		}
	}
	if checked == 0 {
		t.Fatal("no columns found")
	}
}

// stringColumns lists every String column of the database, for scans.
func stringColumns(ctx context.Context, conn *chdb.Conn) ([][2]string, error) {
	rows, err := conn.Query(ctx, `SELECT c.table, c.name FROM system.columns AS c
		ANY INNER JOIN (SELECT name AS table FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree') AS t USING table
		WHERE c.database = ? AND c.type = 'String'`, conn.Database, conn.Database)
	if err != nil {
		return nil, fmt.Errorf("list string columns: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var tc [2]string
		if err := rows.Scan(&tc[0], &tc[1]); err != nil {
			return nil, err
		}
		out = append(out, tc)
	}
	return out, rows.Err()
}

// findInDatabase returns "table.column" for every String column of every
// table holding needle anywhere in a value.
func findInDatabase(ctx context.Context, conn *chdb.Conn, needle string) ([]string, error) {
	cols, err := stringColumns(ctx, conn)
	if err != nil {
		return nil, err
	}
	var hits []string
	for _, tc := range cols {
		if !chdb.ValidIdentifier(tc[0]) || !chdb.ValidIdentifier(tc[1]) {
			return nil, fmt.Errorf("unexpected identifier %s.%s", tc[0], tc[1])
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+tc[0]+" WHERE position("+tc[1]+", ?) > 0", needle).Scan(&n); err != nil {
			return nil, fmt.Errorf("scan %s.%s: %w", tc[0], tc[1], err)
		}
		if n > 0 {
			hits = append(hits, tc[0]+"."+tc[1])
		}
	}
	return hits, nil
}
