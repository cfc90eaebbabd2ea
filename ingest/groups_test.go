package ingest_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestAudiencesOnSeveralGroups: a customer in several groups matches an
// audience of each of them and of their traits, not only of the latest
// group (which the group_* attributes hold); screen calls count too. The
// calls go through the collector as a server SDK's batch.
func TestAudiencesOnSeveralGroups(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	defs := map[string]string{
		"in_acme":           "when:\n  performed: acme\n  type: group\n",
		"enterprise_member": "when:\n  performed: \"*\"\n  type: group\n  where:\n    - {property: plan, equals: enterprise}\n",
		"two_groups":        "when:\n  performed: \"*\"\n  type: group\n  at_least: 2\n",
		"latest_enterprise": "when:\n  attribute: group_plan\n  equals: enterprise\n",
		"acme_admins":       "when:\n  performed: acme\n  type: group\n  where:\n    - {property: role, equals: admin}\n",
		"checkout_screens":  "when:\n  performed: Checkout\n  type: screen\n  within: 7d\n",
	}
	applyAudiences(t, conn, defs)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	now := time.Now().UTC()
	at := func(min int) string { return now.Add(time.Duration(min-10) * time.Minute).Format(time.RFC3339Nano) }
	batch := []map[string]any{
		// u-multi joins acme (enterprise, as admin), then globex (team).
		{"type": "group", "messageId": "g1", "userId": "u-multi", "groupId": "acme", "traits": map[string]any{"plan": "enterprise", "role": "admin"}, "timestamp": at(1)},
		{"type": "group", "messageId": "g2", "userId": "u-multi", "groupId": "globex", "traits": map[string]any{"plan": "team"}, "timestamp": at(2)},
		// u-acme is in acme only.
		{"type": "group", "messageId": "g3", "userId": "u-acme", "groupId": "acme", "traits": map[string]any{"plan": "enterprise"}, "timestamp": at(3)},
		// u-initech's one group is on an enterprise plan too.
		{"type": "group", "messageId": "g4", "userId": "u-initech", "groupId": "initech", "traits": map[string]any{"plan": "enterprise"}, "timestamp": at(4)},
		// u-none is in no group; it views a screen of the mobile app.
		{"type": "screen", "messageId": "s1", "userId": "u-none", "name": "Checkout", "timestamp": at(5)},
		{"type": "screen", "messageId": "s2", "userId": "u-acme", "name": "Home", "timestamp": at(5)},
	}
	if code, body := p.post(t, "/v1/batch", "server-demo-key", map[string]any{"batch": batch}); code != 200 {
		t.Fatalf("batch: %d %v", code, body)
	}
	// Loaded means committed: the loader commits only what ClickHouse
	// acknowledged, and an insert is acknowledged once every view of
	// events has its rows. Rows of events alone can be visible before the
	// signal and attribute rows of the same insert.
	ends, err := p.loader.Ends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if behind, err := p.loader.WaitLoaded(wctx, ends); err != nil || len(behind) > 0 {
		t.Fatalf("the calls were not loaded: %v behind, %v", behind, err)
	}
	if n := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events"); n != uint64(len(batch)) {
		t.Fatalf("%d events loaded, want %d", n, len(batch))
	}
	got := evaluateMembers(t, conn)
	for id, want := range map[string][]string{
		"in_acme":           {"u-acme", "u-multi"},
		"enterprise_member": {"u-acme", "u-initech", "u-multi"},
		"two_groups":        {"u-multi"},
		"latest_enterprise": {"u-acme", "u-initech"},
		"acme_admins":       {"u-multi"},
		"checkout_screens":  {"u-none"},
	} {
		if !slices.Equal(got[id], want) {
			t.Errorf("%s holds %v, want %v", id, got[id], want)
		}
	}
	// The groups of each customer, for analysts.
	if g := queryString(t, conn, "SELECT arrayStringConcat(arraySort(groups), ',') FROM customer_context WHERE customer_id = 'u-multi'"); !strings.EqualFold(g, "acme,globex") {
		t.Errorf("customer_context.groups of u-multi: %q", g)
	}
}
