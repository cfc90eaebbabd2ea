package sql_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	tsql "github.com/tideline-dev/tideline/sql"
)

// TestFillsMatchTheirViews writes rows through the materialized views, then
// empties each table a *_fill migration fills and runs that migration: the
// fill must rebuild exactly what the view wrote, so a database upgraded with
// history reads the same as one that had the view from the start.
func TestFillsMatchTheirViews(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	now := chdb.NowMs()
	exec := func(q string) {
		t.Helper()
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	batch := func(q string) driver.Batch {
		t.Helper()
		b, err := conn.PrepareBatch(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return b
	}
	events := batch("INSERT INTO events (message_id, type, customer_id, event, event_time, event_time_ms, received_at_ms, ingest_time_ms, lane)")
	transitions := batch("INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at)")
	ledger := batch("INSERT INTO send_ledger (ledger_key, campaign_id, customer_id, decision, reason, qualified_event_time_ms, derived_at_ms, detected_at_ms, sent_at_ms, delivery_state, lane, updated_at_ms, detected_at)")
	for i := range 50 {
		at := now - uint64(i)*61_000
		customer, lane := fmt.Sprintf("c%d", i%7), []string{"web", "server"}[i%2]
		check(t, events.Append(fmt.Sprintf("m%d", i), "track", customer, "purchase", time.UnixMilli(int64(at)), at, at+5, at+5+uint64(i)*13, lane))
		for _, kind := range []string{"entered", "exited"} {
			check(t, transitions.Append([]string{"a", "b"}[i%2], customer, uint32(i/7+1), kind, at, at+5, at+900, "", lane, time.UnixMilli(int64(at+900))))
		}
		var sent uint64
		state := "pending"
		if i%3 == 2 {
			sent, state = at+2000, "delivered"
		}
		check(t, ledger.Append(fmt.Sprintf("k%d", i), "welcome", customer, "fire", "fresh", at, at+900, at+1000, sent, state, lane, at+3000, time.UnixMilli(int64(at+1000))))
	}
	// Traits feed their own rows of customer_activity_seconds and input_lanes.
	identifies := batch("INSERT INTO events (message_id, type, customer_id, traits, event_time, event_time_ms, received_at_ms, ingest_time_ms, lane)")
	for i := range 5 {
		at := now - 3*3600_000 - uint64(i)*97_000 // minutes of their own
		check(t, identifies.Append(fmt.Sprintf("i%d", i), "identify", fmt.Sprintf("c%d", i), `{"plan":"gold"}`, time.UnixMilli(int64(at)), at, at+5, at+9, "server"))
	}
	for _, b := range []driver.Batch{events, identifies, transitions, ledger} {
		check(t, b.Send())
	}

	ms, err := tsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`(?m)^INSERT INTO (\w+) `)
	// Tables a later table replaced: no view writes them any more, and
	// their fills only have to run again harmlessly (TestUpAfterLostRecords).
	retired := map[string]bool{"customer_activity": true}
	fills := 0
	for _, m := range ms {
		if !strings.HasSuffix(m.Name, "_fill.sql") {
			continue
		}
		table := target.FindStringSubmatch(m.Statement)
		if table == nil {
			t.Fatalf("%s: no INSERT INTO <table>", m.Name)
		}
		if retired[table[1]] {
			if got := contents(t, conn, table[1]); got != "" {
				t.Errorf("%s: retired table %s holds rows, so something still writes it:\n%s", m.Name, table[1], got)
			}
			continue
		}
		fills++
		before := contents(t, conn, table[1])
		if before == "" {
			t.Fatalf("%s: the view wrote nothing into %s; the comparison proves nothing", m.Name, table[1])
		}
		// A delete rather than TRUNCATE: on a cluster the rows are in the
		// replicated tables under the Distributed one.
		if err := conn.Delete(ctx, table[1], "1", time.Minute); err != nil {
			t.Fatal(err)
		}
		exec(m.Statement)
		if after := contents(t, conn, table[1]); after != before {
			t.Errorf("%s: %s after the fill differs from what its view wrote:\nview: %s\nfill: %s", m.Name, table[1], before, after)
		}
	}
	if fills == 0 {
		t.Fatal("no *_fill migration found")
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// keyed are tables whose readers read only which keys exist; the other
// columns hold the value of any one row that carried the key, which on a
// cluster is each shard's own (input_lanes.first_seen_ms).
var keyed = map[string][]string{"input_lanes": {"input_type", "input_event", "lane"}}

// contents renders every row of table (each key once for keyed tables),
// each column as text, in a stable order (aggregate states through
// finalizeAggregation).
func contents(t *testing.T, conn *chdb.Conn, table string) string {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY name", conn.Database, table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(typ, "AggregateFunction") {
			name = "finalizeAggregation(" + name + ")"
		}
		cols = append(cols, "toString("+name+")")
	}
	rows.Close()
	distinct := ""
	if keys, ok := keyed[table]; ok {
		cols, distinct = keys, "DISTINCT "
	}
	var out []string
	rows, err = conn.Query(ctx, "SELECT "+distinct+"arrayStringConcat(["+strings.Join(cols, ", ")+"], '|') AS r FROM "+table+" ORDER BY r")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return strings.Join(out, "\n")
}
