package materialize

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLinkedByClaims follows one hop of identify calls each way: from
// anonymous ids to the users that claimed them, and from users to the
// anonymous ids they claimed; ids in neither list link nothing.
func TestLinkedByClaims(t *testing.T) {
	conn := testenv.ClickHouse(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	insertDirect(t, conn, "web",
		&ingest.Event{MessageID: "i-1", Type: "identify", UserID: "u1", AnonymousID: "a1", Timestamp: now},
		&ingest.Event{MessageID: "i-2", Type: "identify", UserID: "u1", AnonymousID: "a2", Timestamp: now},
		&ingest.Event{MessageID: "i-3", Type: "identify", UserID: "u2", AnonymousID: "a3", Timestamp: now},
	)
	testenv.Replicated(t, conn, "identity_claims")
	got, err := LinkedByClaims(context.Background(), conn, []string{"anon:a1"}, []string{"u2"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"anon:a3", "u1"}; !slices.Equal(got, want) {
		t.Fatalf("LinkedByClaims = %v, want %v", got, want)
	}
	if got, err := LinkedByClaims(context.Background(), conn, nil, nil); err != nil || len(got) != 0 {
		t.Fatalf("LinkedByClaims of nothing = %v, %v", got, err)
	}
}
