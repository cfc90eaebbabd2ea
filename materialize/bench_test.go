package materialize

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/workload"
)

// demoBatch is n events of the demo workload, parsed as the collector does.
func demoBatch(b *testing.B, n int) *ingest.EventRows {
	b.Helper()
	return demoRows(b, workload.New(workload.Config{Customers: 5000, Seed: 1}), n, 0, time.Now())
}

// demoRows is the next n events of g, parsed as the collector does at now,
// at offsets from first on.
func demoRows(b *testing.B, g *workload.Generator, n, first int, now time.Time) *ingest.EventRows {
	b.Helper()
	rows := &ingest.EventRows{}
	for rows.Len() < n {
		m := g.Next()
		raw, err := json.Marshal(m.Body)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := ingest.ParseMessage(raw, "", time.Time{}, now, m.Lane)
		if err != nil {
			continue
		}
		rows.Add(ev, m.Lane, "events."+m.Lane, 0, int64(first+rows.Len()))
	}
	return rows
}

func dropViews(b *testing.B, conn *chdb.Conn) {
	b.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView'")
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if !chdb.ValidIdentifier(n) {
			b.Fatalf("view name %q", n)
		}
		if err := conn.Exec(ctx, "DROP TABLE "+n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertEvents measures inserting demo-workload batches of 20 000
// events into events with no view attached, with the views the migrations
// create, and with those plus the views of the default audiences and
// attributes (what `tideline dev` runs). Run it with
//
//	go test ./materialize -run '^$' -bench InsertEvents -benchtime 10x
func BenchmarkInsertEvents(b *testing.B) {
	const batch = 20000
	for _, tc := range []struct {
		name  string
		setup func(b *testing.B, conn *chdb.Conn)
	}{
		{"views=none", func(b *testing.B, conn *chdb.Conn) { dropViews(b, conn) }},
		{"views=migrations", func(b *testing.B, conn *chdb.Conn) {}},
		{"views=migrations+audiences", func(b *testing.B, conn *chdb.Conn) {
			applyDirs(b, conn, DefaultConfig().attributeSettings(), "audiences")
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			conn := testenv.ClickHouse(b)
			tc.setup(b, conn)
			rows := demoBatch(b, batch)
			ctx := context.Background()
			// One insert outside the timer warms the connection and the parts.
			if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkEvaluatePass measures one evaluation pass after an insert of
// 2 000 demo-workload events into a database of 50 000 with the default
// audiences: the evaluator's share of every qualification's latency. Run it
// with
//
//	go test ./materialize -run '^$' -bench EvaluatePass -benchtime 20x
func BenchmarkEvaluatePass(b *testing.B) {
	conn := testenv.ClickHouse(b)
	applyDirs(b, conn, DefaultConfig().attributeSettings(), "audiences")
	g := workload.New(workload.Config{Customers: 5000, Seed: 1})
	ctx := context.Background()
	insert := func(n int) {
		rows := &ingest.EventRows{}
		now := time.Now()
		for rows.Len() < n {
			raw, err := json.Marshal(g.Next().Body)
			if err != nil {
				b.Fatal(err)
			}
			ev, err := ingest.ParseMessage(raw, "", time.Time{}, now, "web")
			if err != nil {
				continue
			}
			rows.Add(ev, "web", "events.web", 0, int64(rows.Len()))
		}
		if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
			b.Fatal(err)
		}
		setWatermark(b, conn, ms(time.Now()))
	}
	insert(50000)
	ev := testEvaluator(b, conn)
	evaluate(b, ev)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		insert(2000)
		b.StartTimer()
		evaluate(b, ev)
	}
}

// BenchmarkSteadyPass measures a pass of a running evaluator: 20 000
// customers were active earlier in the same minute of event time and are
// already evaluated; each pass then finds 200 newly active customers as the
// watermark moves on by a second. Only those need evaluating; the
// customers/pass metric says how many the pass evaluated. Run it with
//
//	go test ./materialize -run '^$' -bench SteadyPass -benchtime 10x
func BenchmarkSteadyPass(b *testing.B) {
	const earlier, fresh = 20000, 200
	conn := testenv.ClickHouse(b)
	applyDirs(b, conn, DefaultConfig().attributeSettings(), "audiences")
	minute := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	page := func(user string, at time.Time) *ingest.Event {
		return &ingest.Event{MessageID: user + at.String(), Type: "track", UserID: user, Event: "page_view", Timestamp: at, ReceivedAt: at}
	}
	var evs []*ingest.Event
	for i := range earlier {
		evs = append(evs, page(fmt.Sprintf("earlier%d", i), minute.Add(time.Duration(1+i%40)*time.Second)))
	}
	insertDirect(b, conn, "web", evs...)
	setWatermark(b, conn, ms(minute.Add(45*time.Second)))
	ev := testEvaluator(b, conn)
	evaluate(b, ev)
	customers := 0
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		at := minute.Add(46*time.Second + time.Duration(i%12)*time.Second)
		evs = evs[:0]
		for j := range fresh {
			evs = append(evs, page(fmt.Sprintf("fresh%d_%d", i, j), at))
		}
		insertDirect(b, conn, "web", evs...)
		setWatermark(b, conn, ms(at.Add(500*time.Millisecond)))
		b.StartTimer()
		customers += evaluate(b, ev).Customers
	}
	b.ReportMetric(float64(customers)/float64(b.N), "customers/pass")
}

// BenchmarkProfileRead measures the trigger poller's per-poll read of
// payload profiles: 50 and 500 customers' rows, through the customer_profile view
// filtered by customer and through ProfilesOf (ns/op is both together), in databases of 5 000 and
// 50 000 workload customers with the default audiences' attributes. Run it
// with
//
//	go test ./materialize -run '^$' -bench ProfileRead -benchtime 20x
func BenchmarkProfileRead(b *testing.B) {
	for _, customers := range []int{5000, 50000} {
		conn := testenv.ClickHouse(b)
		applyDirs(b, conn, DefaultConfig().attributeSettings(), "audiences")
		g := workload.New(workload.Config{Customers: customers, Seed: 1})
		ctx := context.Background()
		now := time.Now()
		// About eight events a customer, in inserts of 50 000.
		for total := 0; total < 8*customers; {
			rows := demoRows(b, g, min(50000, 8*customers-total), total, now)
			if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
				b.Fatal(err)
			}
			total += rows.Len()
		}
		all, err := conn.Strings(ctx, `SELECT customer_id FROM customer_profile ORDER BY cityHash64(customer_id) LIMIT 500`)
		if err != nil || len(all) != 500 {
			b.Fatalf("500 customer ids: %d, %v", len(all), err)
		}
		var total uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM customer_profile`).Scan(&total); err != nil {
			b.Fatal(err)
		}
		for _, ids := range [][]string{all[:50], all} {
			set := make([]any, len(ids))
			for i, id := range ids {
				set[i] = id
			}
			reads := []struct {
				query string
				arg   any
			}{
				{`SELECT * FROM customer_profile WHERE customer_id IN ?`, clickhouse.GroupSet{Value: set}},
				{ProfilesOf, nil},
			}
			// Each iteration runs both reads, alternating which goes first, so
			// a busy machine slows both alike and the ratio holds.
			b.Run(fmt.Sprintf("customers=%d/ids=%d", customers, len(ids)), func(b *testing.B) {
				var took [2]time.Duration
				for i := range b.N {
					for k := range 2 {
						r := (i + k) % 2
						start := time.Now()
						n := 0
						args := []any{reads[r].arg}
						if r == 1 {
							// The filtered read's first round trip counts too.
							var err error
							if args, err = ProfileArgs(ctx, conn, ids); err != nil {
								b.Fatal(err)
							}
						}
						if err := conn.Each(ctx, reads[r].query, args, func(chdb.Rows) error { n++; return nil }); err != nil {
							b.Fatal(err)
						}
						took[r] += time.Since(start)
						if n != len(ids) {
							b.Fatalf("%d profiles of %d", n, len(ids))
						}
					}
				}
				b.ReportMetric(float64(took[0].Milliseconds())/float64(b.N), "view_ms/op")
				b.ReportMetric(float64(took[1].Milliseconds())/float64(b.N), "filtered_ms/op")
				b.ReportMetric(took[0].Seconds()/took[1].Seconds(), "view/filtered")
				b.ReportMetric(float64(total), "profiles")
			})
		}
	}
}
