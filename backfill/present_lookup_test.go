package backfill

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLoadedMessagesManyKeys looks up more keys than one query holds, with
// ids of the longest length the collector accepts, half of them loaded: the
// answer is exact, and no query exceeds what the server parses.
func TestLoadedMessagesManyKeys(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO events (message_id, customer_id, event_time, lane)")
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 240)
	var keys []messageKey
	want := map[messageKey]bool{}
	for i := range 3 * loadedMessagesChunk {
		k := messageKey{customer: fmt.Sprintf("%s-c%d", pad, i%700), message: fmt.Sprintf("%s-m%06d", pad, i)}
		keys = append(keys, k)
		if i%2 == 0 {
			want[k] = true
			if err := batch.Append(k.message, k.customer, time.Unix(1_700_000_000, 0), "web"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another customer's message with a wanted id is not a match.
	if err := batch.Append(keys[1].message, "someone-else", time.Unix(1_700_000_000, 0), "web"); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	got, err := loadedMessages(ctx, conn, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys found loaded, want %d", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("loaded key %v not found", k)
		}
	}
}
