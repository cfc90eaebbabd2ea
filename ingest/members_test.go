package ingest_test

import (
	"context"
	"testing"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
)

// applyAudiences parses, compiles and applies the audiences defs, each a
// definition's when: block keyed by its id.
func applyAudiences(t *testing.T, conn *chdb.Conn, defs map[string]string) {
	t.Helper()
	var auds []*materialize.Audience
	for id, body := range defs {
		a, err := materialize.ParseAudience(id+".yaml", []byte("id: "+id+"\nname: "+id+"\n"+body))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		auds = append(auds, a)
	}
	plan, err := materialize.Compile(auds, materialize.AttributeSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(context.Background(), conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
}

// evaluateMembers moves both lanes' watermarks past now, runs one
// evaluator pass and returns the members of each audience, sorted.
func evaluateMembers(t *testing.T, conn *chdb.Conn) map[string][]string {
	t.Helper()
	ctx := context.Background()
	wm := chdb.NowMs() + 1000
	if err := ingest.InsertProgress(ctx, conn, []ingest.Progress{
		{Lane: "web", Topic: "events.web", WatermarkMs: wm}, {Lane: "server", Topic: "events.server", WatermarkMs: wm},
	}, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	ev, err := materialize.NewEvaluator(materialize.DefaultConfig(), component.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	err = conn.Each(ctx, `SELECT audience_id, customer_id FROM
(SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m FROM audience_membership GROUP BY audience_id, customer_id)
WHERE m = 1 ORDER BY audience_id, customer_id`, nil, func(rows chdb.Rows) error {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			return err
		}
		got[a] = append(got[a], c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
