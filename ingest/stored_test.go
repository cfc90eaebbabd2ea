package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestFirstLoads reads a redelivered message's first load (its time and
// lane), the message's type and name, and nothing of another customer's
// message or of one never loaded; the rows go in with the ingest times
// they carry.
func TestFirstLoads(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	var rows ingest.EventRows
	add := func(id, user, lane string, ingestMs uint64) {
		rows.Add(&ingest.Event{MessageID: id, Type: ingest.TypeTrack, UserID: user, Event: "purchase", Timestamp: at, ReceivedAt: at}, lane, "events."+lane, 0, 0)
		rows.IngestTimeMs[rows.Len()-1] = ingestMs
	}
	add("m-1", "u1", "backfill", 3000) // the redelivery
	add("m-1", "u1", "web", 2000)      // the first load
	add("m-2", "u2", "server", 1000)   // another customer's
	if err := rows.InsertLoaded(ctx, conn); err != nil {
		t.Fatal(err)
	}
	got, err := ingest.FirstLoads(ctx, conn, []string{"u1"}, []string{"m-1", "m-2", "m-3"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ingest.FirstLoad{"m-1": {IngestTimeMs: 2000, Lane: "web", Type: "track", Event: "purchase"}}
	if len(got) != len(want) || got["m-1"] != want["m-1"] {
		t.Fatalf("FirstLoads = %+v, want %+v", got, want)
	}
	if got, err := ingest.FirstLoads(ctx, conn, nil, nil); err != nil || len(got) != 0 {
		t.Fatalf("FirstLoads of no messages = %v, %v; want nothing", got, err)
	}
}
