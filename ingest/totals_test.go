package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestReadTotals counts a message delivered twice once, and a dead letter
// written twice once.
func TestReadTotals(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var rows ingest.EventRows
	for i, id := range []string{"m-1", "m-2", "m-1"} {
		rows.Add(&ingest.Event{MessageID: id, Type: "track", UserID: "u1", Event: "visit", Timestamp: now}, "web", "events.web", 0, int64(i))
	}
	if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	dl := ingest.DeadLetter{Topic: "events.web", Offset: 9, Lane: "web", Reason: "bad_json", Raw: "{", AtMs: chdb.NowMs()}
	for range 2 {
		if err := ingest.InsertDeadLetters(ctx, conn, []ingest.DeadLetter{dl}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ingest.ReadTotals(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ingest.Totals{Events: 2, DeadLetters: 1}); got != want {
		t.Fatalf("ReadTotals = %+v, want %+v", got, want)
	}
}
