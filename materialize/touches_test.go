package materialize

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func TestInsertsDoneFinished(t *testing.T) {
	done := insertsDone{{Lane: "web", Partition: 2}: 1000, {Lane: "backfill", Partition: 2}: 1000}
	for _, tc := range []struct {
		name string
		t    touch
		want bool
	}{
		{"progress written after the insert", touch{lane: "web", partition: 2, ingestTime: 999}, true},
		{"progress written as the insert began", touch{lane: "web", partition: 2, ingestTime: 1000}, false},
		{"progress older than the insert", touch{lane: "web", partition: 2, ingestTime: 1001}, false},
		{"another partition's progress", touch{lane: "web", partition: 3, ingestTime: 1}, false},
		{"another lane's progress", touch{lane: "server", partition: 2, ingestTime: 1}, false},
		{"unknown partition", touch{lane: "web", partition: -1, ingestTime: 1}, false},
		{"backfill carries the original partition", touch{lane: "backfill", partition: 2, ingestTime: 1}, false},
		{"no ingest time", touch{lane: "web", partition: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := done.finished(tc.t); got != tc.want {
				t.Errorf("finished = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTouchSettled(t *testing.T) {
	done := insertsDone{{Lane: "web", Partition: 2}: 1000}
	finished := touch{at: 100, lane: "web", partition: 2, ingestTime: 999}
	open := touch{at: 100, lane: "web", partition: 2, ingestTime: 1000}
	replayed := touch{at: 100, lane: "backfill", partition: 2, ingestTime: 999}
	for _, tc := range []struct {
		name       string
		replicated bool
		t          touch
		now        uint32
		want       bool
	}{
		// touched_at 100 is any instant of second 100: 3 s old from 104.
		{"finished insert, in the touch's own second", false, finished, 100, true},
		{"insert not known finished, settle time old", false, open, 104, false},
		{"insert not known finished, within the overlap", false, open, 110, false},
		{"insert not known finished, past the overlap", false, open, 111, true},
		{"backfill touch (finish unknowable), 3 s after the touch's second began", false, replayed, 103, false},
		{"backfill touch (finish unknowable), a whole settle time old", false, replayed, 104, true},
		// On a cluster replicated rows arrive after the insert finished.
		{"cluster, finished insert, 3 s after the touch's second began", true, finished, 103, false},
		{"cluster, finished insert, a whole settle time old", true, finished, 104, true},
		{"cluster, insert not known finished, settle time old", true, open, 104, false},
		{"cluster, insert not known finished, past the overlap", true, open, 111, true},
		{"cluster, backfill touch, a whole settle time old", true, replayed, 104, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTouchReader(10, 3, 1000, tc.replicated)
			if got := r.settled(tc.t, done, tc.now); got != tc.want {
				t.Errorf("settled = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTouchLookedAtAgainUnlessItsInsertFinished: a touch whose partition's
// loader progress was written after its insert is handed out once; one
// whose insert may still be filling the views is handed out again as soon
// as the loader's progress shows its insert finished, however far off the
// settle time is, and not before. A reader of a cluster looks at every
// touch again after the settle time, whatever the progress says.
func TestTouchLookedAtAgainUnlessItsInsertFinished(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	now := time.Now()
	ev := func(id, user string) *ingest.Event {
		return &ingest.Event{MessageID: id, Type: "track", UserID: user, Event: "page_view", Timestamp: now, ReceivedAt: now}
	}
	var rows ingest.EventRows
	rows.Add(ev("m1", "done"), "web", "events.web", 1, 0)
	rows.Add(ev("m2", "open"), "web", "events.web", 2, 0)
	ingestMs := chdb.NowMs()
	if err := rows.Insert(ctx, conn, ingestMs); err != nil {
		t.Fatal(err)
	}
	// Partition 1's loader recorded progress after the insert; partition
	// 2's last did before it.
	progress := func(p int32, at uint64) {
		t.Helper()
		if err := ingest.InsertProgress(ctx, conn, []ingest.Progress{{Lane: "web", Topic: "events.web", Partition: p}}, at); err != nil {
			t.Fatal(err)
		}
	}
	progress(1, ingestMs+1)
	progress(2, ingestMs-1)

	count := func(ts []touch) map[string]int {
		out := map[string]int{}
		for _, t := range ts {
			out[t.customer]++
		}
		return out
	}
	read := func(r *touchReader, cursor uint32) ([]touch, uint32) {
		t.Helper()
		ts, next, err := r.read(ctx, conn, cursor)
		if err != nil {
			t.Fatal(err)
		}
		return ts, next
	}
	// A settle time no pass reaches: every fresh touch is unsettled at the
	// first read, whatever the load, unless its insert is known finished.
	r := newTouchReader(3600, 3600, 1000, false)
	cluster := newTouchReader(3600, 3600, 1000, true)
	first, cursor := read(r, 0)
	if got := count(first); got["done"] != 1 || got["open"] != 1 {
		t.Fatalf("first read handed out %v, want each customer once", got)
	}
	cfirst, ccursor := read(cluster, 0)
	if got := count(cfirst); got["done"] != 1 || got["open"] != 1 {
		t.Fatalf("cluster: first read handed out %v, want each customer once", got)
	}

	// No settle time: once the touches' second has passed, only the
	// insert's progress holds the second look back.
	r.settle = 0
	var touchedAt uint32
	if err := conn.QueryRow(ctx, "SELECT toUInt32(max(touched_at)) FROM customer_touches").Scan(&touchedAt); err != nil {
		t.Fatal(err)
	}
	for {
		var serverNow uint32
		if err := conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&serverNow); err != nil {
			t.Fatal(err)
		}
		if serverNow > touchedAt {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	held, cursor := read(r, cursor)
	if got := count(held); len(got) != 0 {
		t.Errorf("settled but with the insert not known finished, handed out %v; want nothing", got)
	}
	// The settle time out of reach again: the insert's finish alone
	// settles its touch on one server.
	r.settle = 3600
	progress(2, chdb.NowMs())
	again, _ := read(r, cursor)
	if got := count(again); got["done"] != 0 || got["open"] != 1 {
		t.Errorf("after the insert finished handed out %v, want only the customer whose insert was not known finished at first", got)
	}

	// On a cluster both inserts are finished now, and neither touch is
	// looked at again before the settle time; then both are.
	if held, _ := read(cluster, ccursor); len(held) != 0 {
		t.Errorf("cluster: with the settle time out of reach handed out %v; want nothing", count(held))
	}
	cluster.settle = 0
	if again, _ := read(cluster, ccursor); count(again)["done"] != 1 || count(again)["open"] != 1 {
		t.Errorf("cluster: once settled handed out %v, want each customer again", count(again))
	}
}
