package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	assembly "github.com/tideline-dev/tideline/pipeline"
)

// pipeline is a collector and a loader wired to a broker and a test database.
type pipeline struct {
	conn   *chdb.Conn
	br     testenv.Broker
	http   *httptest.Server
	cancel context.CancelFunc
	done   chan error
	loader *ingest.Loader
}

func startPipeline(t *testing.T, br testenv.Broker, conn *chdb.Conn, lcfg ingest.LoaderConfig) *pipeline {
	t.Helper()
	log := testenv.Logger(t)
	prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, log)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	col, err := assembly.NewCollector(ingest.DefaultCollectorConfig(), assembly.Env{Kafka: br.Config, Seeds: br.Seeds, Log: log}, prod)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(col.Handler())
	t.Cleanup(srv.Close)
	p := &pipeline{conn: conn, br: br, http: srv, done: make(chan error, 1)}
	p.startLoader(t, lcfg)
	return p
}

func (p *pipeline) startLoader(t *testing.T, lcfg ingest.LoaderConfig) {
	t.Helper()
	l, err := assembly.NewLoader(lcfg, assembly.Env{Conn: p.conn, Kafka: p.br.Config, Seeds: p.br.Seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.loader, p.done = cancel, l, make(chan error, 1)
	go func() { p.done <- l.Run(ctx) }()
	t.Cleanup(func() { p.stopLoader(t) })
}

func (p *pipeline) stopLoader(t *testing.T) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	if err := <-p.done; err != nil {
		t.Errorf("loader: %v", err)
	}
}

func (p *pipeline) post(t *testing.T, path, key string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, p.http.URL+path, bytes.NewReader(b))
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func queryUint(t *testing.T, conn *chdb.Conn, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestHTTPToClickHouse(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			p := startPipeline(t, br, conn, fastLoader())
			ts := time.Date(2025, 12, 14, 18, 58, 0, 123e6, time.UTC)
			code, body := p.post(t, "/v1/track", "web-demo-key", map[string]any{
				"messageId": "m-1", "userId": "u-1", "event": "purchase",
				"properties": map[string]any{"amount": 42.5, "sku": "A-1"},
				"timestamp":  ts.Format(time.RFC3339Nano),
			})
			if code != 200 {
				t.Fatalf("track: %d %v", code, body)
			}
			code, body = p.post(t, "/v1/identify", "server-demo-key", map[string]any{
				"messageId": "m-2", "userId": "u-1", "anonymousId": "a-1",
				"traits": map[string]any{"plan": "gold"}, "timestamp": ts.Format(time.RFC3339Nano),
			})
			if code != 200 {
				t.Fatalf("identify: %d %v", code, body)
			}
			var batch []map[string]any
			for i := 0; i < 50; i++ {
				batch = append(batch, map[string]any{"type": "track", "messageId": fmt.Sprintf("b-%d", i), "anonymousId": fmt.Sprintf("anon-%d", i%7), "event": "view", "timestamp": ts.Format(time.RFC3339Nano)})
			}
			if code, body = p.post(t, "/v1/batch", "web-demo-key", map[string]any{"batch": batch}); code != 200 {
				t.Fatalf("batch: %d %v", code, body)
			}
			// A bad request is refused with the field named, and kept.
			code, body = p.post(t, "/v1/track", "web-demo-key", map[string]any{"messageId": "m-x", "event": "x"})
			if code != 400 || body["field"] != "userId" {
				t.Fatalf("missing userId: %d %v", code, body)
			}
			// A record produced by another client that is not an event.
			prod, _ := kgo.NewClient(kgo.SeedBrokers(br.Seeds...))
			defer prod.Close()
			if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: br.Config.MustTopic("server"), Value: []byte("{not json")}).FirstErr(); err != nil {
				t.Fatal(err)
			}

			testenv.Eventually(t, 30*time.Second, "events and dead letters loaded", func() (bool, string) {
				// Distinct keys: a redelivered batch adds rows until a merge
				// collapses them, never keys.
				ev := queryUint(t, conn, "SELECT uniqExact(customer_id, message_id) FROM events")
				dl := queryUint(t, conn, "SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM dead_letters")
				return ev == 52 && dl == 2, fmt.Sprintf("events=%d dead_letters=%d", ev, dl)
			})
			testenv.Merge(t, conn, "events", "dead_letters")
			var (
				cust, lane, event, props string
				evMs                     uint64
				evTime                   time.Time
			)
			if err := conn.QueryRow(context.Background(), "SELECT customer_id, lane, event, properties, event_time_ms, event_time FROM events WHERE message_id = 'm-1'").Scan(&cust, &lane, &event, &props, &evMs, &evTime); err != nil {
				t.Fatal(err)
			}
			if cust != "u-1" || lane != "web" || event != "purchase" || evMs != uint64(ts.UnixMilli()) || !evTime.Equal(ts.Truncate(time.Second)) {
				t.Errorf("row = %s %s %s %d %s", cust, lane, event, evMs, evTime)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(props), &got); err != nil || got["amount"] != 42.5 || got["sku"] != "A-1" {
				t.Errorf("properties = %s", props)
			}
			if n := queryUint(t, conn, "SELECT count() FROM events WHERE message_id = 'm-2' AND lane = 'server' AND customer_id = 'u-1' AND visitParamExtractString(traits, 'plan') = 'gold'"); n != 1 {
				t.Errorf("identify row missing")
			}
			if n := queryUint(t, conn, "SELECT count() FROM dead_letters WHERE lane = 'server' AND reason LIKE 'malformed_json%' AND raw = '{not json'"); n != 1 {
				t.Errorf("loader dead letter missing")
			}
			if n := queryUint(t, conn, "SELECT count() FROM dead_letters WHERE lane = 'collector:web' AND field = 'userId'"); n != 1 {
				t.Errorf("collector dead letter missing")
			}
			testenv.Eventually(t, 20*time.Second, "watermarks recorded", func() (bool, string) {
				n := queryUint(t, conn, "SELECT count() FROM lane_watermarks WHERE lane IN ('web','server') AND watermark_ms > 0")
				return n == 2, fmt.Sprintf("lanes with watermark=%d", n)
			})
		})
	}
}

func fastLoader() ingest.LoaderConfig {
	c := ingest.DefaultLoaderConfig()
	c.FlushInterval = 50 * time.Millisecond
	c.WatermarkInterval = 200 * time.Millisecond
	return c
}

// TestLoaderStopsOnMissingColumn: a schema older than the loader is a
// permanent error; the loader stops and says to migrate instead of
// retrying the batch forever, and commits nothing.
func TestLoaderStopsOnMissingColumn(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			if err := conn.Exec(context.Background(), "ALTER TABLE events DROP COLUMN context_ip"); err != nil {
				t.Fatal(err)
			}
			p := startPipeline(t, br, conn, fastLoader())
			if code, body := p.post(t, "/v1/track", "web-demo-key", map[string]any{"messageId": "m-1", "userId": "u-1", "event": "view"}); code != 200 {
				t.Fatalf("track: %d %v", code, body)
			}
			err := <-p.done
			p.cancel = nil
			if err == nil || !strings.Contains(err.Error(), "tideline migrate") {
				t.Fatalf("loader ended with %v, want a permanent error naming `tideline migrate`", err)
			}
		})
	}
}
