package ingest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
)

// TestAudiencesOnContextGroupsAndAlias: audiences select on what the new
// call types and the context bring, through the attribute views as they
// are: a campaign from context, a group's trait, and the history of an
// anonymous id that an alias linked to a user.
func TestAudiencesOnContextGroupsAndAlias(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	defs := map[string]string{
		"black_friday":   "when:\n  attribute: context_campaign_name\n  equals: black_friday\n",
		"enterprise":     "when:\n  attribute: group_plan\n  equals: enterprise\n",
		"cart_adders":    "when:\n  performed: add_to_cart\n  within: 7d\n",
		"german_locales": "when:\n  attribute: context_locale\n  in: [de-DE, de-AT]\n",
		// Event conditions read the typed context columns too.
		"bf_buyers": "when:\n  performed: purchase\n  within: 7d\n  where:\n    - {property: context.campaign.name, equals: black_friday}\n    - {property: context.page.path, in: [/checkout, /cart]}\n",
	}
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
	if _, err := materialize.Apply(ctx, conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	at := now.Add(-time.Minute).Format(time.RFC3339Nano)
	msgs := []struct{ typ, body string }{
		{"page", `{"messageId":"p-1","anonymousId":"anon-bf","name":"Home","timestamp":"` + at + `","context":{"campaign":{"name":"black_friday","source":"newsletter"},"locale":"de-DE"}}`},
		{"page", `{"messageId":"p-2","anonymousId":"anon-other","name":"Home","timestamp":"` + at + `","context":{"campaign":{"name":"spring"},"locale":"fr-FR"}}`},
		{"group", `{"messageId":"g-1","userId":"u-ent","groupId":"acme","traits":{"plan":"enterprise"},"timestamp":"` + at + `"}`},
		{"group", `{"messageId":"g-2","userId":"u-team","groupId":"globex","traits":{"plan":"team"},"timestamp":"` + at + `"}`},
		{"track", `{"messageId":"t-1","anonymousId":"anon-cart","event":"add_to_cart","timestamp":"` + at + `"}`},
		{"alias", `{"messageId":"a-1","userId":"u-cart","previousId":"anon-cart","timestamp":"` + at + `"}`},
		{"track", `{"messageId":"b-1","userId":"u-bf","event":"purchase","timestamp":"` + at + `","context":{"campaign":{"name":"black_friday"},"page":{"path":"/checkout"}}}`},
		{"track", `{"messageId":"b-2","userId":"u-spring","event":"purchase","timestamp":"` + at + `","context":{"campaign":{"name":"spring"},"page":{"path":"/checkout"}}}`},
		{"track", `{"messageId":"b-3","userId":"u-home","event":"purchase","timestamp":"` + at + `","context":{"campaign":{"name":"black_friday"},"page":{"path":"/"}}}`},
		{"track", `{"messageId":"b-4","userId":"u-none","event":"purchase","timestamp":"` + at + `"}`},
	}
	var rows ingest.EventRows
	for i, m := range msgs {
		ev, err := ingest.Parse([]byte(m.body), ingest.Message{Type: m.typ, ReceivedAt: now, Source: "web"})
		if err != nil {
			t.Fatalf("%s: %v", m.body, err)
		}
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
	ev, err := materialize.NewEvaluator(materialize.DefaultConfig(), component.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	rs, err := conn.Query(ctx, `SELECT audience_id, customer_id FROM
(SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m FROM audience_membership GROUP BY audience_id, customer_id)
WHERE m = 1 ORDER BY audience_id, customer_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var a, c string
		if err := rs.Scan(&a, &c); err != nil {
			t.Fatal(err)
		}
		got[a] = append(got[a], c)
	}
	for id, want := range map[string][]string{
		"black_friday":   {"anon:anon-bf", "u-bf", "u-home"},
		"enterprise":     {"u-ent"},
		"cart_adders":    {"u-cart"},
		"german_locales": {"anon:anon-bf"},
		"bf_buyers":      {"u-bf"},
	} {
		if !slices.Equal(got[id], want) {
			t.Errorf("%s holds %v, want %v", id, got[id], want)
		}
	}
}
