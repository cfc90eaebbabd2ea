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
	scattered = normalize(scattered)
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

// TestLateness loads rows with known delays and checks the lane
// distribution, the late customers and the worst examples.
func TestLateness(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	recv := time.Date(2025, 12, 14, 19, 0, 0, 0, time.UTC)
	// Ten customers with ten events each: nine loaded at once, the tenth
	// of customer ck k minutes late.
	var onTime ingest.EventRows
	for i := 0; i < 100; i++ {
		cust, k := fmt.Sprintf("c%02d", i%10), i%10
		ev := &ingest.Event{MessageID: fmt.Sprintf("m%d", i), Type: "track", UserID: cust, Event: "e", Timestamp: recv, ReceivedAt: recv}
		if i < 90 {
			onTime.Add(ev, "server", "events.server", 0, int64(i))
			continue
		}
		var late ingest.EventRows
		late.Add(ev, "server", "events.server", 0, int64(i))
		if err := late.Insert(ctx, conn, uint64(recv.Add(time.Duration(k)*time.Minute).UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
	if err := onTime.Insert(ctx, conn, uint64(recv.UnixMilli())); err != nil {
		t.Fatal(err)
	}
	spans := map[string]map[int32]Range{"events.server": {0: {0, 100}}}
	lat, err := laneLateness(ctx, conn, spans, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	// Late means over a minute: customers c02..c09.
	if got := lat["events.server"]; got.loaded != 100 || got.late != 8 || got.lag.Max != 9*60_000 || got.lag.P50 != 0 {
		t.Fatalf("lateness %+v; want 100 loaded, 8 late, max 9m, p50 0", got)
	}
	n, stats, ex, err := lateCustomers(ctx, conn, spans, 60_000, 3, map[string]string{"events.server": "server"})
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 || stats.Max != 9*60_000 || len(ex) != 3 || ex[0].CustomerID != "c09" || ex[0].Lane != "server" || ex[0].StaleForMs != 9*60_000 || ex[1].CustomerID != "c08" {
		t.Fatalf("late customers: %d %+v %+v; want 8, worst c09 (9m) then c08", n, stats, ex)
	}
}
