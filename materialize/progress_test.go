package materialize

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// goldMember applies the audience gold (plan is gold), has u1 identify as
// gold at event time at, and returns the evaluator after the two passes
// that derive u1's entry.
func goldMember(t *testing.T, conn *chdb.Conn, at time.Time) *Evaluator {
	t.Helper()
	gold, err := ParseAudience("t.yaml", []byte("id: gold\nwhen: {attribute: plan, equals: gold}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Compile([]*Audience{gold}, AttributeSettings{})
	if _, err := Apply(context.Background(), conn, p, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	insertDirect(t, conn, "web",
		&ingest.Event{MessageID: "i1", Type: "identify", UserID: "u1", Timestamp: at, Traits: obj(t, map[string]any{"plan": "gold"})})
	setWatermark(t, conn, uint64(time.Now().UnixMilli()))
	ev := testEvaluator(t, conn)
	settle()
	evaluate(t, ev)
	evaluate(t, ev)
	return ev
}

// TestRetouch: customers marked by Retouch are evaluated again by the next
// passes, though nothing about them changed.
func TestRetouch(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	ev := goldMember(t, conn, time.Now().Add(-time.Minute))
	if st := evaluate(t, ev); st.Touches != 0 {
		t.Fatalf("a pass with nothing new handled %d touches", st.Touches)
	}
	if err := Retouch(ctx, conn, []string{"u1", "u2"}, "backfill"); err != nil {
		t.Fatal(err)
	}
	settle()
	touches := 0
	for range 2 {
		touches += evaluate(t, ev).Touches
	}
	if touches < 2 {
		t.Fatalf("the passes after Retouch handled %d touches, want the 2 marked", touches)
	}
}

// TestHasProfile: a migrated database has the profile view; one where it
// was dropped does not.
func TestHasProfile(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	if has, err := HasProfile(ctx, conn); err != nil || !has {
		t.Fatalf("migrated database: has profile %v, %v; want true", has, err)
	}
	if err := conn.Exec(ctx, "DROP TABLE customer_profile"); err != nil {
		t.Fatal(err)
	}
	if has, err := HasProfile(ctx, conn); err != nil || has {
		t.Fatalf("profile dropped: has profile %v, %v; want false", has, err)
	}
}

// TestCauseDelays: the entry an event caused is read with its delay, and
// only when its event time is in the window.
func TestCauseDelays(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	goldMember(t, conn, at)
	if n, err := Entries(ctx, conn, "gold"); err != nil || n != 1 {
		t.Fatalf("entries into gold: %d, %v; want 1", n, err)
	}
	ms := uint64(at.UnixMilli())
	ds, err := CauseDelays(ctx, conn, ms, ms+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0] <= 0 {
		t.Errorf("delays of the entry caused at %d: %v, want one, positive", ms, ds)
	}
	if ds, err := CauseDelays(ctx, conn, ms+1, ms+60000); err != nil || len(ds) != 0 {
		t.Errorf("delays after the event: %v, %v; want none", ds, err)
	}
}
