package ingest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
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
	applyAudiences(t, conn, defs)
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
	got := evaluateMembers(t, conn)
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
