package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
)

// hostile is text shaped to break out of a SQL string literal, comment out
// the rest of a statement, stack a second statement, or ride on ClickHouse
// escapes. Every path that takes user text must treat each as plain data.
var hostile = []string{
	`x' OR 1=1 --`,
	`'); DROP TABLE canary; --`,
	`\' OR \'1\'=\'1`,
	`ends with a backslash\`,
	`" OR "1"="1`,
	`a' || (SELECT name FROM system.tables LIMIT 1) || '`,
	"multi\nline' /* comment */ OR '1",
	`$__all' OR audience_id != '`,
	`O’Brien ʼ unicode quotes`,
}

// withCanary creates a table that an injected statement would drop or fill,
// and returns a check that it is untouched.
func withCanary(t *testing.T, conn *chdb.Conn) func() {
	t.Helper()
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE canary (v String) ENGINE = MergeTree ORDER BY v"); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO canary (v)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append("alive"); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM canary").Scan(&n); err != nil || n != 1 {
			t.Errorf("canary table damaged: %d rows, %v", n, err)
		}
		for _, tbl := range []string{"events", "send_ledger", "audience_membership"} {
			var exists uint8
			if err := conn.QueryRow(ctx, "SELECT count() > 0 FROM system.tables WHERE database = ? AND name = ?", conn.Database, tbl).Scan(&exists); err != nil || exists == 0 {
				t.Errorf("table %s is gone (%v)", tbl, err)
			}
		}
	}
}

// yamlString writes s as a YAML scalar: a JSON string is a valid YAML
// double-quoted scalar with the same escapes.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestInjectionAudienceValues puts every hostile string into audience
// definitions as an attribute value, an event name and a property filter
// value, applies them, evaluates, and checks each audience holds exactly the
// customer whose data carries that exact string: an injected OR would add
// the bystanders, broken quoting would fail the apply or the evaluation.
func TestInjectionAudienceValues(t *testing.T) {
	conn := testenv.ClickHouse(t)
	intact := withCanary(t, conn)
	ctx := context.Background()
	var auds []*materialize.Audience
	want := map[string][]string{}
	now := time.Now().UTC()
	var evs []*ingest.Event
	for i, p := range hostile {
		victim, bystander := fmt.Sprintf("victim-%d", i), fmt.Sprintf("bystander-%d", i)
		defs := map[string]string{
			fmt.Sprintf("inj_attr_%d", i):  "when:\n  attribute: plan\n  equals: " + yamlString(p) + "\n",
			fmt.Sprintf("inj_event_%d", i): "when:\n  performed: " + yamlString(p) + "\n  within: 1d\n",
			fmt.Sprintf("inj_prop_%d", i):  "when:\n  performed: purchase\n  within: 1d\n  where:\n    - property: sku\n      equals: " + yamlString(p) + "\n",
		}
		for id, body := range defs {
			src := "id: " + id + "\nname: injection probe\n" + body
			a, err := materialize.ParseAudience(id+".yaml", []byte(src))
			if err != nil {
				// Refusing the text outright is as safe as binding it.
				t.Logf("%s rejected %q: %v", id, p, err)
				continue
			}
			auds = append(auds, a)
			want[id] = []string{victim}
		}
		traits := func(plan string) json.RawMessage { b, _ := json.Marshal(map[string]string{"plan": plan}); return b }
		props := func(sku string) json.RawMessage {
			b, _ := json.Marshal(map[string]any{"sku": sku, "amount": 10})
			return b
		}
		at := now.Add(-time.Minute)
		evs = append(evs,
			&ingest.Event{MessageID: victim + "-i", Type: ingest.TypeIdentify, UserID: victim, Traits: traits(p), Timestamp: at, ReceivedAt: at},
			&ingest.Event{MessageID: victim + "-e", Type: ingest.TypeTrack, UserID: victim, Event: p, Timestamp: at, ReceivedAt: at},
			&ingest.Event{MessageID: victim + "-p", Type: ingest.TypeTrack, UserID: victim, Event: "purchase", Properties: props(p), Timestamp: at, ReceivedAt: at},
			&ingest.Event{MessageID: bystander + "-i", Type: ingest.TypeIdentify, UserID: bystander, Traits: traits(p + " "), Timestamp: at, ReceivedAt: at},
			&ingest.Event{MessageID: bystander + "-e", Type: ingest.TypeTrack, UserID: bystander, Event: "page_view", Timestamp: at, ReceivedAt: at},
			&ingest.Event{MessageID: bystander + "-p", Type: ingest.TypeTrack, UserID: bystander, Event: "purchase", Properties: props("A-1"), Timestamp: at, ReceivedAt: at},
		)
	}
	if len(auds) == 0 {
		t.Fatal("every definition was rejected: nothing reached SQL to test")
	}
	plan, err := materialize.Compile(auds, materialize.AttributeSettings{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if _, err := materialize.Apply(ctx, conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var rows ingest.EventRows
	for i, ev := range evs {
		rows.Add(ev, "web", "events.web", 0, int64(i))
	}
	if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	wm := chdb.NowMs() + 1000
	if err := ingest.InsertProgress(ctx, conn, []ingest.Progress{
		{Lane: "web", Topic: "events.web", WatermarkMs: wm}, {Lane: "server", Topic: "events.server", WatermarkMs: wm},
	}, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	ev, err := pipeline.NewEvaluator(materialize.DefaultConfig(), pipeline.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	got := currentMembers(t, conn)
	var missed []string
	for id, w := range want {
		for _, c := range got[id] {
			if !slices.Contains(w, c) {
				t.Errorf("audience %s holds %s, whose data does not carry its value: the value was not compared as a literal", id, c)
			}
		}
		if !slices.Equal(got[id], w) {
			missed = append(missed, id)
		}
	}
	slices.Sort(missed)
	// A value the parser accepts must be matchable: one the JSON extraction
	// cannot return is refused at parse time, with the reason.
	if len(missed) > 0 {
		t.Errorf("values accepted but never matched (exact string not found through the JSON extraction): %v", missed)
	}
	t.Logf("%d hostile definitions applied and evaluated; %d audiences checked, none admitted a bystander", len(auds), len(want))
	intact()
}

// TestInjectionAudienceIdentifiers puts hostile text where a definition
// names things (audience id, attribute, property, summed property): each is
// refused at parse time, or, when accepted, compiles to SQL that applies
// without touching anything else.
func TestInjectionAudienceIdentifiers(t *testing.T) {
	conn := testenv.ClickHouse(t)
	intact := withCanary(t, conn)
	var accepted []*materialize.Audience
	for i, p := range hostile {
		defs := map[string]string{
			"id":        "id: " + yamlString(p) + "\nname: x\nwhen:\n  attribute: plan\n  equals: gold\n",
			"attribute": fmt.Sprintf("id: inj_aname_%d\nname: x\nwhen:\n  attribute: %s\n  equals: gold\n", i, yamlString(p)),
			"property":  fmt.Sprintf("id: inj_pname_%d\nname: x\nwhen:\n  performed: purchase\n  where:\n    - property: %s\n      equals: A-1\n", i, yamlString(p)),
			"sum":       fmt.Sprintf("id: inj_sum_%d\nname: x\nwhen:\n  performed: purchase\n  sum: %s\n  at_least: 5\n", i, yamlString(p)),
		}
		for what, src := range defs {
			a, err := materialize.ParseAudience("inj.yaml", []byte(src))
			if err != nil {
				continue
			}
			if what == "id" || what == "attribute" {
				t.Errorf("%s %q accepted: identifiers that name views and tables must be refused", what, p)
				continue
			}
			accepted = append(accepted, a)
		}
	}
	if len(accepted) > 0 {
		plan, err := materialize.Compile(accepted, materialize.AttributeSettings{})
		if err != nil {
			t.Fatalf("compile: %v", err)
		}
		if _, err := materialize.Apply(context.Background(), conn, plan, 0, testenv.Logger(t)); err != nil {
			t.Fatalf("apply of accepted property names failed (broken quoting?): %v", err)
		}
		ev, err := pipeline.NewEvaluator(materialize.DefaultConfig(), pipeline.Env{Conn: conn, Log: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ev.EvaluateOnce(context.Background()); err != nil {
			t.Fatalf("evaluate: %v", err)
		}
	}
	t.Logf("%d definitions with hostile property names accepted, applied and evaluated", len(accepted))
	intact()
}

// currentMembers returns the members of each audience, sorted.
func currentMembers(t *testing.T, conn *chdb.Conn) map[string][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT audience_id, customer_id FROM
(SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m FROM audience_membership GROUP BY audience_id, customer_id)
WHERE m = 1 ORDER BY audience_id, customer_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			t.Fatal(err)
		}
		out[a] = append(out[a], c)
	}
	return out
}
