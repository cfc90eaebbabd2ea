package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// crashEvents is the number of events of the crash test.
const crashEvents = 200_000

// TestLoaderSIGKILL runs the real `tideline ingest` binary while 200 000
// events are produced, SIGKILLs it at random points of the load (three
// times) and restarts it. After catch-up every event is present, and
// events_unique, the view analysts read, has each message exactly once.
func TestLoaderSIGKILL(t *testing.T) {
	loaderSIGKILL(t, nil)
}

// TestLoaderSIGKILLMidStream is TestLoaderSIGKILL with batches small
// enough that the loader is mostly behind and streams its batches into
// one open insert, killed while such an insert is open: the records of the
// killed insert, some of them already written by the server, were not
// committed, and are loaded again without loss or visible duplicates.
func TestLoaderSIGKILLMidStream(t *testing.T) {
	loaderSIGKILL(t, []string{
		"TIDELINE_LOADER_BATCH_SIZE=2000",
		"TIDELINE_LOADER_STREAM_ROWS=60000",
		"TIDELINE_LOADER_STREAM_MAX_DURATION=60s",
	})
}

// openInserts reads a loader log and returns the lanes whose last insert
// under backlog was opened and neither acknowledged nor failed.
func openInserts(t *testing.T, logPath string) []string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		var l struct{ Msg, Lane string }
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(l.Msg, "loader lane behind: streaming"):
			open[l.Lane] = true
		case strings.HasPrefix(l.Msg, "loader lane's insert under backlog acknowledged"),
			strings.HasPrefix(l.Msg, "loader insert under backlog failed"),
			l.Msg == "loader lane started":
			open[l.Lane] = false
		}
	}
	var lanes []string
	for lane, o := range open {
		if o {
			lanes = append(lanes, lane)
		}
	}
	return lanes
}

// loaderSIGKILL is TestLoaderSIGKILL with extra loader settings; with any,
// each kill waits until an insert under backlog is open, and at least one
// kill must have hit one.
func loaderSIGKILL(t *testing.T, settings []string) {
	midStream := len(settings) > 0
	bin := buildTideline(t)
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			// Background merges collapse redelivered rows of events at any
			// time; event_positions keeps a row for every delivery, so its
			// count() only grows and says what was delivered.
			logPath := filepath.Join(t.TempDir(), "ingest.log")
			group := "crash-" + testenv.Name(t)
			args := []string{"ingest", "--broker", "kafka", "--brokers", strings.Join(br.Seeds, ","),
				"--metrics-addr=", "--log-json"}
			env := append(testenv.ClickHouseEnv(t, conn),
				"TIDELINE_KAFKA_TOPIC_PREFIX="+br.Config.TopicPrefix,
				"TIDELINE_LOADER_GROUP="+group,
				"TIDELINE_LOADER_BATCH_SIZE=10000",
				// A restarted loader takes its partitions back at once
				// (static membership) instead of waiting out the killed
				// one's session.
				"TIDELINE_LOADER_INSTANCE_ID=crash-loader",
				"TIDELINE_LOADER_SESSION_TIMEOUT=6s",
			)
			env = append(env, settings...)
			failed := true
			defer func() {
				if failed || t.Failed() {
					dumpLog(t, logPath)
				}
			}()

			// The oracle: what was produced, summed.
			var wantTimeSum, wantWeb uint64
			base := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
			evs := make([]*kgo.Record, crashEvents)
			for i := range crashEvents {
				ev := &ingest.Event{MessageID: fmt.Sprintf("c-%06d", i), Type: ingest.TypeTrack, UserID: fmt.Sprintf("cust-%d", i%5000),
					Event: "view", Properties: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
					// About 140 days: the rows span several monthly partitions.
					Timestamp: base.Add(time.Duration(i) * time.Minute), ReceivedAt: base.Add(time.Duration(i)*time.Minute + time.Second), Source: "crash"}
				if i%7 == 0 {
					ev.Type, ev.Event, ev.UserID, ev.AnonymousID = ingest.TypeIdentify, "", "", fmt.Sprintf("anon-%d", i%900)
				}
				v, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				lane := "web"
				if i%4 == 3 {
					lane = "server"
				} else {
					wantWeb++
				}
				evs[i] = &kgo.Record{Topic: br.Config.MustTopic(lane), Key: []byte(ev.CustomerID()), Value: v}
				wantTimeSum += uint64(ev.Timestamp.UnixMilli())
			}

			loader := startProc(t, bin, args, env, logPath)

			// Produce in paced chunks, so the load lasts while the loader
			// is killed and restarted.
			prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.ProducerLinger(5*time.Millisecond))...)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			var produced, produceErrs atomic.Int64
			prodDone := make(chan struct{})
			go func() {
				defer close(prodDone)
				ctx := context.Background()
				for chunk := range 100 {
					for _, r := range evs[chunk*crashEvents/100 : (chunk+1)*crashEvents/100] {
						prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
							if err != nil {
								produceErrs.Add(1)
							}
							produced.Add(1)
						})
					}
					time.Sleep(60 * time.Millisecond)
				}
				_ = prod.Flush(ctx)
			}()

			// Three kills at random points of the rows written, one in each
			// quarter from 10 % to 85 %, each after the restarted loader
			// wrote something, and each followed by a restart after a
			// random pause.
			var kills []uint64
			for k := range 3 {
				kills = append(kills, uint64(crashEvents/10+k*crashEvents/4+rand.IntN(crashEvents/4)))
			}
			ctx := context.Background()
			var last uint64
			killedOpen := 0
			for k, at := range kills {
				testenv.Eventually(t, 3*time.Minute, fmt.Sprintf("kill %d: %d rows written", k+1, at), func() (bool, string) {
					n := queryUint(t, conn, "SELECT count() FROM event_positions")
					open := midStream && len(openInserts(t, logPath)) > 0
					return n >= at && n > last && (open || !midStream), fmt.Sprintf("rows=%d produced=%d open inserts=%v", n, produced.Load(), open)
				})
				loader.kill(t)
				if open := openInserts(t, logPath); len(open) > 0 {
					killedOpen++
					t.Logf("kill %d: inserts under backlog open on %v", k+1, open)
				}
				rows := queryUint(t, conn, "SELECT count() FROM event_positions")
				uniq := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events")
				last = rows
				t.Logf("kill %d: SIGKILL at %d rows (%d unique), %d produced", k+1, rows, uniq, produced.Load())
				if uniq >= crashEvents {
					t.Fatalf("kill %d came after the load was complete; it tests nothing", k+1)
				}
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
				loader = startProc(t, bin, args, env, logPath)
			}
			if midStream && killedOpen == 0 {
				t.Fatal("no kill came while an insert under backlog was open; it tests nothing")
			}
			<-prodDone
			if n := produceErrs.Load(); n != 0 {
				t.Fatalf("%d events failed to produce", n)
			}

			testenv.Eventually(t, 3*time.Minute, "every event loaded after the restarts", func() (bool, string) {
				n := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events")
				return n == crashEvents, fmt.Sprintf("unique=%d of %d", n, crashEvents)
			})
			// Every message is in once a killed loader's open insert, which
			// the server finishes without it, brought the last ones; the
			// restarted loader may still be loading its uncommitted records
			// again. Only once it committed everything has it no insert to
			// come that would add rows after the merge below.
			testenv.Eventually(t, 3*time.Minute, "the loader committed every record", func() (bool, string) {
				ok, behind, err := testenv.CommittedEverything(ctx, br, group)
				if err != nil {
					return false, err.Error()
				}
				return ok, behind
			})
			delivered := queryUint(t, conn, "SELECT count() FROM event_positions")
			testenv.Merge(t, conn, "events", "event_positions", "dead_letters")
			total := queryUint(t, conn, "SELECT count() FROM events")
			if delivered < crashEvents || total != crashEvents {
				t.Errorf("%d rows delivered to events, %d there after OPTIMIZE FINAL, for %d events", delivered, total, crashEvents)
			}
			t.Logf("duplicate rows from redelivery: %d inserted in all (%d duplicates before any merge)", delivered, delivered-crashEvents)

			// What analysts read: one row per message.
			var rows, uniq, timeSum, web uint64
			if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(message_id), sum(event_time_ms), countIf(lane = 'web') FROM events_unique").Scan(&rows, &uniq, &timeSum, &web); err != nil {
				t.Fatal(err)
			}
			if rows != crashEvents || uniq != crashEvents {
				t.Errorf("events_unique: %d rows, %d unique messages; want %d of each", rows, uniq, crashEvents)
			}
			if n := queryUint(t, conn, "SELECT count() FROM (SELECT message_id FROM events_unique GROUP BY message_id HAVING count() != 1)"); n != 0 {
				t.Errorf("%d messages do not appear exactly once in events_unique", n)
			}
			if timeSum != wantTimeSum || web != wantWeb {
				t.Errorf("events_unique: sum(event_time_ms)=%d web=%d, produced %d and %d", timeSum, web, wantTimeSum, wantWeb)
			}
			if n := queryUint(t, conn, "SELECT count() FROM dead_letters"); n != 0 {
				t.Errorf("%d dead letters for valid events", n)
			}
			if err := loader.stop(t, time.Minute); err != nil {
				t.Errorf("loader exit after SIGTERM: %v", err)
			}
			failed = false
		})
	}
}
