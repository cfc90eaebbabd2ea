package materialize

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestCompiledSQLRunsOnClickHouse applies every test audience (every
// operator, hostile literals, set_once) and evaluates one customer that
// matches each of them, so the generated views and query are proven on the
// real server, not only as text.
func TestCompiledSQLRunsOnClickHouse(t *testing.T) {
	conn := testenv.ClickHouse(t)
	applyDirs(t, conn, testSettings, "audiences", "testdata/compile")
	now := time.Now().Add(-time.Minute)
	nasty := "O'Brien \\ '); DROP TABLE events; --"
	insertDirect(t, conn, "web",
		&ingest.Event{MessageID: "i1", Type: "identify", UserID: "c1", Timestamp: now.Add(-2 * time.Hour),
			Traits: obj(t, map[string]any{"plan": "silver", "first_source": "ads", "age": 31})},
		&ingest.Event{MessageID: "i2", Type: "identify", UserID: "c1", Timestamp: now.Add(-time.Hour),
			Traits: obj(t, map[string]any{"first_source": "seo", "email": "c1@example.test", "vip": true, "score": 1.5})},
		// An older identify arriving late must not win.
		&ingest.Event{MessageID: "i0", Type: "identify", UserID: "c1", Timestamp: now.Add(-3 * time.Hour),
			Traits: obj(t, map[string]any{"plan": "free", "country": "US"})},
		&ingest.Event{MessageID: "p1", Type: "page", UserID: "c1", Name: "Pricing", Timestamp: now.Add(-30 * time.Minute)},
		&ingest.Event{MessageID: "o1", Type: "track", UserID: "c1", Event: "purchase", Timestamp: now.Add(-20 * time.Minute),
			Properties: obj(t, map[string]any{"currency": "USD", "amount": 20})},
		&ingest.Event{MessageID: "o2", Type: "track", UserID: "c1", Event: "purchase", Timestamp: now.Add(-10 * time.Minute),
			Properties: obj(t, map[string]any{"currency": "EUR", "amount": 900})},
		&ingest.Event{MessageID: "v2", Type: "track", UserID: "c2", Event: "Order Completed (v2)", Timestamp: now.Add(-10 * time.Minute),
			Properties: obj(t, map[string]any{"coupon": "none", "total": "120.5"})},
		// c2 joined an enterprise group (not acme) and opened the app's checkout.
		&ingest.Event{MessageID: "g1", Type: "group", UserID: "c2", GroupID: "globex", Timestamp: now.Add(-5 * time.Minute),
			Properties: obj(t, map[string]any{"plan": "enterprise"}), Traits: obj(t, map[string]any{"group_id": "globex", "group_plan": "enterprise"})},
		&ingest.Event{MessageID: "s1", Type: "screen", UserID: "c2", Name: "Checkout", Timestamp: now.Add(-4 * time.Minute)},
	)
	setWatermark(t, conn, ms(now))
	ev := testEvaluator(t, conn)
	st := evaluate(t, ev)
	if !st.FullSweep || st.Audiences != 8 {
		t.Fatalf("first pass: %+v, want a full sweep of 8 audiences", st)
	}
	got := members(t, conn)
	want := map[string][]string{
		"account_members":   {"c2"},
		"big_spenders":      {"c1"},
		"nested_everything": {"c1"},
		"paid_acquisition":  {"c1"},
		"quoting":           {"c2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT uniqExact(message_id) FROM events").Scan(&n); err != nil || n != 9 {
		t.Fatalf("events after evaluating hostile literals: %d, %v", n, err)
	}
	// The nickname matches when it is exactly the hostile text.
	insertDirect(t, conn, "web", &ingest.Event{MessageID: "i3", Type: "identify", UserID: "c1", Timestamp: now, Traits: obj(t, map[string]any{"nickname": nasty})})
	evaluate(t, ev)
	if got := members(t, conn)["quoting"]; !reflect.DeepEqual(got, []string{"c1", "c2"}) {
		t.Errorf("quoting members = %v, want c1 (nickname) and c2 (order total)", got)
	}
}

// TestApplyReplacesViews applies one set of definitions, loads events,
// applies a larger set, and checks that the views were swapped without a
// gap, that what is new was backfilled from history, that a removed
// audience was deactivated, and that applying again changes nothing.
func TestApplyReplacesViews(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	log := testenv.Logger(t)
	parse := func(src string) *Audience {
		a, err := ParseAudience("t.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	gold := parse("id: gold\nwhen: {attribute: plan, equals: gold}\n")
	buyers := parse("id: buyers\nwhen: {performed: purchase, within: 1d}\n")
	germans := parse("id: germans\nwhen: {attribute: country, equals: DE}\n")
	p1, _ := Compile([]*Audience{gold, buyers}, AttributeSettings{})
	rep, err := Apply(ctx, conn, p1, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ViewsCreated) != 3 || !reflect.DeepEqual(rep.Applied, []string{"gold", "buyers"}) {
		t.Fatalf("first apply: %+v", rep)
	}
	now := time.Now().Add(-time.Minute)
	insertDirect(t, conn, "web",
		&ingest.Event{MessageID: "i1", Type: "identify", UserID: "u1", Timestamp: now, Traits: obj(t, map[string]any{"plan": "gold", "country": "DE"})},
		&ingest.Event{MessageID: "o1", Type: "track", UserID: "u1", Event: "purchase", Timestamp: now})

	p2, _ := Compile([]*Audience{gold, germans}, AttributeSettings{Declared: []string{"email"}})
	rep, err = Apply(ctx, conn, p2, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ViewsCreated) != 2 || len(rep.ViewsDropped) != 3 || !reflect.DeepEqual(rep.Applied, []string{"germans"}) ||
		!reflect.DeepEqual(rep.Deactivated, []string{"buyers"}) || !reflect.DeepEqual(rep.Unchanged, []string{"gold"}) {
		t.Fatalf("second apply: %+v", rep)
	}
	views, err := managedViews(ctx, conn)
	if err != nil || len(views) != 2 || !views[attributesView(p2.Attributes).Name] || !views[attributeHistoryView(p2.Attributes).Name] {
		t.Fatalf("views after the second apply: %v, %v", views, err)
	}
	insertDirect(t, conn, "web", &ingest.Event{MessageID: "i2", Type: "identify", UserID: "u2", Timestamp: now, Traits: obj(t, map[string]any{"country": "DE", "email": "e@x"})})
	setWatermark(t, conn, ms(now.Add(time.Second)))
	evaluate(t, testEvaluator(t, conn))
	got := members(t, conn)
	want := map[string][]string{"gold": {"u1"}, "germans": {"u1", "u2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("members = %v, want %v (country backfilled for u1, kept live for u2)", got, want)
	}
	rep, err = Apply(ctx, conn, p2, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ViewsCreated)+len(rep.ViewsDropped)+len(rep.Applied)+len(rep.Deactivated) != 0 {
		t.Errorf("applying the same definitions again changed something: %+v", rep)
	}
	if sizes, err := AudienceSizes(ctx, conn); err != nil || !reflect.DeepEqual(sizes, map[string]uint64{"gold": 1, "germans": 2}) {
		t.Errorf("AudienceSizes = %v, %v", sizes, err)
	}
}
