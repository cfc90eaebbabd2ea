package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLoaderDrainsHeldBatchOnShutdown is the regression test for a loader
// that hung forever when stopped while it held an unflushed batch: with
// BlockRebalanceOnPoll, closing the client leaves the group only after the
// last poll is released, and the shutdown path never released it.
func TestLoaderDrainsHeldBatchOnShutdown(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			cfg := ingest.DefaultLoaderConfig()
			cfg.Lanes = []string{"web"}
			cfg.Group = "drain-" + testenv.Name(t)
			cfg.MetricsAddr = ""
			// Nothing flushes by size or time while the test runs: the
			// batch is only written by the shutdown drain.
			cfg.BatchSize = 1 << 20
			cfg.FlushInterval = time.Hour
			l, err := ingest.NewLoader(cfg, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			const n = 25
			prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			ts := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
			for i := range n {
				v, _ := json.Marshal(&ingest.Event{MessageID: fmt.Sprintf("d-%d", i), Type: ingest.TypeTrack, UserID: fmt.Sprintf("u-%d", i%5), Event: "e", Timestamp: ts, ReceivedAt: ts})
				if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: br.Config.MustTopic("web"), Key: []byte(fmt.Sprintf("u-%d", i%5)), Value: v}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			testenv.Eventually(t, 60*time.Second, "records polled into the batch", func() (bool, string) {
				c := l.Stats()["web"].Consumed
				return c == n, fmt.Sprintf("consumed=%d", c)
			})
			if got := queryUint(t, conn, "SELECT count() FROM events"); got != 0 {
				t.Fatalf("%d rows inserted before shutdown; the test needs the batch held", got)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("loader did not return after its context was cancelled while holding a batch")
			}
			if got := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events"); got != n {
				t.Errorf("after the drain: %d events, want %d", got, n)
			}
		})
	}
}

// TestLoaderRewindsFailedStream fails the inserts of a loader that is
// behind (a view of events throws while a flag is set): the open insert
// cannot be resent from memory, so the lane consumes its records again
// from the committed offsets, and once the view stops throwing every
// event is there, each once in events_unique.
func TestLoaderRewindsFailedStream(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			ctx := context.Background()
			for _, q := range []string{
				"CREATE TABLE fail_flag (x UInt8) ENGINE = Memory",
				"CREATE TABLE fail_sink (n UInt8) ENGINE = Memory",
				// The flag is read on every insert into events.
				"CREATE MATERIALIZED VIEW fail_view TO fail_sink AS SELECT throwIf((SELECT count() FROM fail_flag) > 0) AS n FROM events",
				"INSERT INTO fail_flag SELECT 1",
			} {
				if err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			cfg := ingest.DefaultLoaderConfig()
			cfg.Lanes = []string{"web"}
			cfg.Group = "rewind-" + testenv.Name(t)
			cfg.MetricsAddr = ""
			cfg.BatchSize = 500
			cfg.StreamRows = 5000
			cfg.MaxRetryBackoff = 500 * time.Millisecond
			l, err := ingest.NewLoader(cfg, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			// Produced before the loader starts: it is 4 000 records
			// behind, eight batches, so it streams.
			const n = 4000
			prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			ts := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
			var recs []*kgo.Record
			for i := range n {
				v, _ := json.Marshal(&ingest.Event{MessageID: fmt.Sprintf("r-%d", i), Type: ingest.TypeTrack, UserID: fmt.Sprintf("u-%d", i%50), Event: "e", Timestamp: ts, ReceivedAt: ts})
				recs = append(recs, &kgo.Record{Topic: br.Config.MustTopic("web"), Key: []byte(fmt.Sprintf("u-%d", i%50)), Value: v})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- l.Run(rctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			// Consumed counts every delivery: past n, the lane has
			// consumed records again after a failed insert.
			testenv.Eventually(t, 2*time.Minute, "records consumed again after a failed insert", func() (bool, string) {
				c := l.Stats()["web"].Consumed
				return c > n, fmt.Sprintf("consumed=%d", c)
			})
			if err := conn.Exec(ctx, "TRUNCATE TABLE fail_flag"); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 2*time.Minute, "every event loaded once the view stopped failing", func() (bool, string) {
				u := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events")
				return u == n, fmt.Sprintf("unique=%d inserted=%d", u, l.Stats()["web"].Inserted)
			})
			if got := queryUint(t, conn, "SELECT count() FROM events_unique"); got != n {
				t.Errorf("events_unique: %d rows, want %d", got, n)
			}
			t.Logf("consumed %d records for %d events", l.Stats()["web"].Consumed, n)
		})
	}
}
