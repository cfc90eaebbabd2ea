package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/grafana/internal/seed"
	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestStatementsRunOnServer runs every statement of every query type, with
// and without filters, against the local ClickHouse (18.16 here) on the
// migrated schema: the builder's SQL must be valid there.
func TestStatementsRunOnServer(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := seed.EnsureBackfillRuns(ctx, conn); err != nil {
		t.Fatal(err)
	}
	run := func(s query.Statement) {
		t.Helper()
		rows, err := conn.Query(ctx, s.SQL, s.Args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", s.Name, err, s.SQL)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		rows.Close()
	}
	for _, m := range query.EveryModel() {
		for _, filtered := range []bool{false, true} {
			from := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
			r := query.Request{Model: m, From: from, To: from.Add(6 * time.Hour), Interval: time.Minute}
			if filtered {
				r.Audiences, r.Campaigns, r.Lanes = []string{"a", "b"}, []string{"c"}, []string{"web"}
			}
			stmts, err := query.Build(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stmts {
				run(s)
			}
		}
	}
	run(query.LivePoll(nil, 1793613600000))
	run(query.LivePoll([]string{"a"}, 1793613600000))
	run(query.EntityList(true))
	run(query.EntityList(false))
}
