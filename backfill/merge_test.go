package backfill_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// resend produces the events of ps again as new records, the way the
// collector does when a client retries a request: the same message, a new
// receive time, a new Kafka position.
func (e *env) resend(ps []produced) []produced {
	e.t.Helper()
	recs := make([]*kgo.Record, len(ps))
	out := make([]produced, len(ps))
	for i, p := range ps {
		ev := *p.ev
		ev.ReceivedAt = time.Now()
		out[i] = produced{ev: &ev, lane: p.lane, topic: p.topic}
		v, err := json.Marshal(&ev)
		if err != nil {
			e.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: p.topic, Key: []byte(ev.CustomerID()), Value: v, Timestamp: ev.ReceivedAt}
	}
	e.produceAll(recs, out)
	return out
}

// TestPlanIgnoresMerges plans a window holding client retries (one message
// in two records), a redelivered lane (every position loaded twice), retries
// whose own record was never loaded, and a deleted range; forces every merge
// with OPTIMIZE ... FINAL; and plans again. Merges collapse the duplicate
// rows of events, and with them every position but one per message: the two
// plans must still be identical, miss exactly the deleted range, and count
// the duplicates apart.
func TestPlanIgnoresMerges(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			e := newEnv(t, br, time.Now().Add(-time.Hour), time.Second)
			serverTopic, webTopic := br.Config.MustTopic("server"), br.Config.MustTopic("web")
			e.startLoader("live", "web", "backfill")
			e.startLoader("server", "server")
			before := e.produce(300)
			e.waitPositions(len(before))
			ends := e.endOffsets(serverTopic)

			time.Sleep(5 * time.Millisecond)
			from := time.Now()
			time.Sleep(5 * time.Millisecond)
			during := e.produce(900)

			// The deleted range: the first 12 window offsets of one server
			// partition, none of them retried, so nothing else carries
			// their messages and they are lost.
			var server []produced
			for _, p := range during {
				if p.topic == serverTopic {
					server = append(server, p)
				}
			}
			sort.Slice(server, func(i, j int) bool {
				if server[i].partition != server[j].partition {
					return server[i].partition < server[j].partition
				}
				return server[i].offset < server[j].offset
			})
			deleted := server[:12]
			if deleted[11].partition != deleted[0].partition {
				t.Fatalf("partition %d holds fewer than 12 server records of the window", deleted[0].partition)
			}
			lost := map[backfillPos]bool{}
			for _, p := range deleted {
				lost[p.key()] = true
			}
			var retried []produced
			for i, p := range during {
				if i%10 == 0 && !lost[p.key()] {
					retried = append(retried, p)
				}
			}
			retries := e.resend(retried)
			e.waitPositions(len(before) + len(during) + len(retries))

			// A redelivery: the server lane's group goes back to the
			// window's start, so every server position of the window is
			// loaded twice.
			e.stopLoader("server")
			e.skipCommitted("server", ends)
			e.startLoader("server", "server")
			inWindow := func(ps []produced, topic string) (n int) {
				for _, p := range ps {
					if p.topic == topic {
						n++
					}
				}
				return n
			}
			serverBefore := inWindow(before, serverTopic)
			serverLoaded := inWindow(during, serverTopic) + inWindow(retries, serverTopic)
			e.eventually("the server lane redelivered", func() (bool, string) {
				n := e.queryUint("SELECT count() FROM event_positions WHERE kafka_topic = ?", serverTopic)
				return n == uint64(serverBefore+2*serverLoaded), ""
			})

			// Retries the loader never loaded: their group skips them, but
			// their messages are in ClickHouse from the first delivery.
			e.stopLoader("server")
			var again []produced
			for _, p := range server[12:] {
				if len(again) == 10 {
					break
				}
				again = append(again, p)
			}
			unloaded := e.resend(again)
			e.skipCommitted("server", e.endOffsets(serverTopic))
			time.Sleep(5 * time.Millisecond)
			to := time.Now()
			time.Sleep(5 * time.Millisecond)

			e.deleteRows("kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ? AND kafka_offset <= ?",
				serverTopic, deleted[0].partition, deleted[0].offset, deleted[11].offset)

			w := backfill.Window{From: from, To: to}
			at := time.Now()
			plan := func() *backfill.Plan {
				pl := e.planner()
				pl.Now = func() time.Time { return at }
				p, err := pl.Plan(context.Background(), backfill.PlanRequest{Window: w, Command: t.Name()})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			first := plan()
			testenv.Merge(t, e.conn, "events", "event_positions", "dead_letters")
			// The merges ran: events holds one row per message.
			if rows, msgs := e.queryUint("SELECT count() FROM events"), e.queryUint("SELECT uniqExact(customer_id, message_id) FROM events"); rows != msgs {
				t.Fatalf("after OPTIMIZE FINAL events holds %d rows for %d messages", rows, msgs)
			}
			second := plan()

			for i, p := range []*backfill.Plan{first, second} {
				var sb strings.Builder
				if err := backfill.WriteSummary(&sb, p, "plan.json"); err != nil {
					t.Fatal(err)
				}
				t.Logf("plan %s OPTIMIZE TABLE events FINAL:\n%s", []string{"before", "after"}[i], sb.String())
			}
			if first.ID != second.ID || !reflect.DeepEqual(first.LaneFindings, second.LaneFindings) || !reflect.DeepEqual(first.Stale, second.Stale) {
				t.Fatalf("the plan changed with merges:\nbefore %s %+v %+v\n after %s %+v %+v", first.ID, first.LaneFindings, first.Stale, second.ID, second.LaneFindings, second.Stale)
			}
			if got, want := second.MissingRanges(), missingOracle(deleted); !reflect.DeepEqual(got, want) {
				t.Fatalf("missing ranges:\n got %v\nwant %v", got, want)
			}
			lanes := map[string]backfill.LaneFinding{}
			for _, lf := range second.LaneFindings {
				lanes[lf.Topic] = lf
			}
			s := lanes[serverTopic]
			wantServer := backfill.LaneFinding{
				InWindow:    int64(serverLoaded + len(unloaded)),
				Loaded:      int64(serverLoaded + len(unloaded) - len(deleted)),
				Missing:     int64(len(deleted)),
				Duplicates:  int64(inWindow(retries, serverTopic) + len(unloaded)),
				Redelivered: int64(serverLoaded - len(deleted)),
			}
			if s.InWindow != wantServer.InWindow || s.Loaded != wantServer.Loaded || s.Missing != wantServer.Missing ||
				s.Duplicates != wantServer.Duplicates || s.Redelivered != wantServer.Redelivered || s.Backlog != 0 {
				t.Fatalf("server lane: in window %d, loaded %d, missing %d, duplicates %d, redelivered %d, backlog %d; want %+v",
					s.InWindow, s.Loaded, s.Missing, s.Duplicates, s.Redelivered, s.Backlog, wantServer)
			}
			if got, want := duplicateRanges(second, serverTopic), missingOracle(unloaded)[serverTopic]; !reflect.DeepEqual(got, want) {
				t.Fatalf("server offsets loaded as duplicates:\n got %v\nwant %v", got, want)
			}
			web := lanes[webTopic]
			webIn := inWindow(during, webTopic) + inWindow(retries, webTopic)
			if web.InWindow != int64(webIn) || web.Missing != 0 || web.Loaded != int64(webIn) || web.Duplicates != int64(inWindow(retries, webTopic)) || web.Redelivered != 0 {
				t.Fatalf("web lane: %+v; want %d in window and loaded, %d duplicates, none missing or redelivered", web, webIn, inWindow(retries, webTopic))
			}
			custs := map[string]bool{}
			for _, p := range deleted {
				custs[p.ev.CustomerID()] = true
			}
			if second.Stale.MissingCustomers != int64(len(custs)) {
				t.Fatalf("%d customers with missing events, want %d", second.Stale.MissingCustomers, len(custs))
			}

			// Apply re-ingests the deleted records only, and verifies them
			// through the positions.
			res, err := e.applier().Apply(context.Background(), second)
			if err != nil {
				t.Fatal(err)
			}
			if res.Reingested != int64(len(deleted)) || res.Restored != int64(len(deleted)) || res.Run.State != backfill.StateCompleted {
				t.Fatalf("apply: %+v; want %d re-ingested and restored", res, len(deleted))
			}
			testenv.Merge(t, e.conn, "events", "event_positions")
			if after := plan(); countMissing(after) != 0 {
				t.Fatalf("after apply the plan still misses %v", after.MissingRanges())
			}
		})
	}
}

func duplicateRanges(p *backfill.Plan, topic string) map[int32]backfill.Ranges {
	out := map[int32]backfill.Ranges{}
	for _, lf := range p.LaneFindings {
		if lf.Topic != topic {
			continue
		}
		for _, pf := range lf.Partitions {
			if len(pf.Duplicates) > 0 {
				out[pf.Partition] = pf.Duplicates
			}
		}
	}
	return out
}

func countMissing(p *backfill.Plan) (n int64) {
	for _, lf := range p.LaneFindings {
		n += lf.Missing
	}
	return n
}
