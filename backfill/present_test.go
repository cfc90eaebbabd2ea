package backfill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestMissingInOracle loads random offsets into events and dead_letters and
// compares missingIn, for contiguous and scattered wants and several bucket
// sizes, with a set difference computed in Go.
func TestMissingInOracle(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	const topic = "events.server"
	present := map[int32]map[int64]bool{}
	var rows ingest.EventRows
	var dead []ingest.DeadLetter
	ts := time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC)
	for p := int32(0); p < 3; p++ {
		present[p] = map[int64]bool{}
		for off := int64(0); off < 5000; off++ {
			// Partition 0 is complete, 1 has holes, 2 is mostly absent.
			keep := p == 0 || (p == 1 && rng.IntN(10) != 0) || (p == 2 && off >= 4000 && rng.IntN(2) == 0)
			if !keep {
				continue
			}
			present[p][off] = true
			if rng.IntN(50) == 0 {
				dead = append(dead, ingest.DeadLetter{Topic: topic, Partition: p, Offset: off, Lane: "server", Reason: "test", AtMs: 1})
				continue
			}
			ev := &ingest.Event{MessageID: fmt.Sprintf("m-%d-%d", p, off), Type: "track", UserID: "u", Event: "e", Timestamp: ts, ReceivedAt: ts}
			rows.Add(ev, "server", topic, p, off)
			if rng.IntN(20) == 0 { // a redelivered row
				rows.Add(ev, "server", topic, p, off)
			}
		}
	}
	// Rows of another topic at the same offsets must not count.
	rows.Add(&ingest.Event{MessageID: "other", Type: "track", UserID: "u", Event: "e", Timestamp: ts, ReceivedAt: ts}, "web", "events.web", 2, 10)
	if err := rows.Insert(ctx, conn, 1); err != nil {
		t.Fatal(err)
	}
	if err := ingest.InsertDeadLetters(ctx, conn, dead); err != nil {
		t.Fatal(err)
	}
	oracle := func(want map[int32]Ranges) map[int32]Ranges {
		out := map[int32]Ranges{}
		for p, rs := range want {
			var offs []int64
			for _, r := range rs {
				for off := r.From; off < r.To; off++ {
					if !present[p][off] {
						offs = append(offs, off)
					}
				}
			}
			if len(offs) > 0 {
				out[p] = RangesOf(offs)
			}
		}
		return out
	}
	scattered := Ranges{}
	for off := int64(0); off < 6000; off += 1 + int64(rng.IntN(40)) {
		scattered = append(scattered, Range{From: off, To: off + 1 + int64(rng.IntN(5))})
	}
	scattered = Normalize(scattered)
	for _, bucket := range []int64{1 << 16, 1024, 1000} {
		for name, want := range map[string]map[int32]Ranges{
			"window":    {0: {{0, 5000}}, 1: {{100, 4900}}, 2: {{0, 6000}}},
			"scattered": {0: scattered, 1: scattered, 2: scattered},
			"empty":     {},
		} {
			got, err := missingIn(ctx, conn, topic, want, bucket)
			if err != nil {
				t.Fatal(err)
			}
			for p, rs := range got {
				if len(rs) == 0 {
					delete(got, p)
				}
			}
			if exp := oracle(want); !reflect.DeepEqual(got, exp) {
				t.Errorf("bucket %d, %s: got %v\nwant %v", bucket, name, got, exp)
			}
		}
	}
}
