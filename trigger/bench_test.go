package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// latencies collects durations and reports percentiles.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func (l latencies) report(b *testing.B, name string) {
	b.ReportMetric(float64(l.pct(50).Milliseconds()), name+"_p50_ms")
	b.ReportMetric(float64(l.pct(95).Milliseconds()), name+"_p95_ms")
	b.ReportMetric(float64(l.pct(99).Milliseconds()), name+"_p99_ms")
}

func parseMs(b *testing.B, s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	if err != nil {
		b.Fatalf("time %q: %v", s, err)
	}
	return t
}

// firstAccepted returns, per webhook id, the first accepted delivery.
func firstAccepted(r *receiver.Receiver) map[string]receiver.Delivery {
	out := map[string]receiver.Delivery{}
	for id, ds := range r.Deliveries() {
		for _, d := range ds {
			if d.Status >= 200 && d.Status < 300 {
				out[id] = d
				break
			}
		}
	}
	return out
}

// BenchmarkPollerLatency measures the poller alone: transitions are
// inserted into ClickHouse at a steady 500/s (the way the evaluator writes
// them, derived_at = insert time) and the latency from derived_at to the
// webhook's arrival at a local receiver is reported. b.N is the number of
// qualifications; run with -benchtime=10000x for a 20 s run.
func BenchmarkPollerLatency(b *testing.B) {
	conn := testenv.ClickHouse(b)
	s := NewSecret()
	rcv, err := receiver.NewReceiver(s.String())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	b.Setenv("BENCH_SECRET", s.String())
	c, err := ParseCampaign("bench.yaml", []byte(fmt.Sprintf(`
id: bench
trigger: {audience_entered: bench}
staleness: {budget: 1h}
reeligible_after: 0
deliver:
  webhook: {url: %s/bench, secret_env: BENCH_SECRET}
`, srv.URL)))
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Sharding, cfg.MetricsAddr = "none", ""
	p, err := NewPoller(cfg, []*Campaign{c}, component.Env{Conn: conn, Log: testenv.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	const rate, tick = 500, 20 * time.Millisecond
	perTick := rate * int(tick) / int(time.Second)
	b.ResetTimer()
	sent := 0
	t := time.NewTicker(tick)
	for sent < b.N {
		<-t.C
		var trs []transition
		now := chdb.NowMs()
		for i := 0; i < perTick && sent < b.N; i++ {
			trs = append(trs, transition{audience: "bench", customer: fmt.Sprintf("b%07d", sent), episode: 1, eventMs: now, derivedMs: now})
			sent++
		}
		insertTransitions(b, conn, trs)
	}
	t.Stop()
	testenv.Eventually(b, 2*time.Minute, "every qualification delivered", func() (bool, string) {
		n := len(rcv.Accepted())
		return n >= b.N, fmt.Sprintf("%d of %d", n, b.N)
	})
	b.StopTimer()
	var lat latencies
	for _, d := range firstAccepted(rcv) {
		var body Body
		if err := json.Unmarshal(d.Body, &body); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, d.At.Sub(parseMs(b, body.Data.DerivedAt)))
	}
	lat.report(b, "derived_to_webhook")
	b.Logf("%d qualifications at %d/s: derived_at -> webhook received p50 %v p95 %v p99 %v",
		len(lat), rate, lat.pct(50), lat.pct(95), lat.pct(99))
}

// BenchmarkPipelineLatency drives a steady 2 000 events/s through the
// whole event path: HTTP collector -> Kafka (embedded kfake) -> loader ->
// ClickHouse (events, and the trigger feed view) -> poller -> local webhook
// receiver. One event in ten is a purchase over 100, which an event-triggered
// campaign fires on. It reports the event-time -> webhook-received latency
// and its parts. b.N is the number of events; run with -benchtime=40000x for
// a 20 s run. Loader and poller run with their default settings.
func BenchmarkPipelineLatency(b *testing.B) {
	conn := testenv.ClickHouse(b)
	br := testenv.Embedded(b)
	log := testenv.Logger(b)
	prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, log), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	col, err := ingest.NewCollector(ingest.DefaultCollectorConfig(), component.Env{Kafka: br.Config, Log: log}, prod)
	if err != nil {
		b.Fatal(err)
	}
	colSrv := httptest.NewServer(col.Handler())
	defer colSrv.Close()
	loader, err := ingest.NewLoader(ingest.DefaultLoaderConfig(), component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	s := NewSecret()
	rcv, err := receiver.NewReceiver(s.String())
	if err != nil {
		b.Fatal(err)
	}
	hookSrv := httptest.NewServer(rcv)
	defer hookSrv.Close()
	b.Setenv("BENCH_SECRET", s.String())
	c, err := ParseCampaign("bench.yaml", []byte(fmt.Sprintf(`
id: bench_purchase
trigger:
  event: {name: purchase, where: {amount: {gt: 100}}}
staleness: {budget: 1h}
reeligible_after: 0
deliver:
  webhook: {url: %s/bench, secret_env: BENCH_SECRET}
`, hookSrv.URL)))
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Sharding, cfg.MetricsAddr = "none", ""
	p, err := NewPoller(cfg, []*Campaign{c}, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ldone, pdone := make(chan error, 1), make(chan error, 1)
	go func() { ldone <- loader.Run(ctx) }()
	go func() { pdone <- p.Run(ctx) }()

	const rate, tick = 2000, 50 * time.Millisecond
	perTick := rate * int(tick) / int(time.Second)
	b.ResetTimer()
	sent, fires := 0, 0
	t := time.NewTicker(tick)
	for sent < b.N {
		<-t.C
		var batch []map[string]any
		now := time.Now().UTC()
		for i := 0; i < perTick && sent < b.N; i++ {
			ev := map[string]any{"type": "track", "messageId": fmt.Sprintf("e%08d", sent), "userId": fmt.Sprintf("u%05d", sent%20000),
				"event": "page_view", "properties": map[string]any{"path": "/x"}, "timestamp": now.Format(time.RFC3339Nano)}
			if sent%10 == 0 {
				ev["event"], ev["properties"] = "purchase", map[string]any{"amount": 150}
				fires++
			}
			batch = append(batch, ev)
			sent++
		}
		body, _ := json.Marshal(map[string]any{"batch": batch})
		req, _ := http.NewRequest(http.MethodPost, colSrv.URL+"/v1/batch", bytes.NewReader(body))
		req.SetBasicAuth("web-demo-key", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("collector: %d", resp.StatusCode)
		}
	}
	t.Stop()
	testenv.Eventually(b, 3*time.Minute, "every purchase delivered", func() (bool, string) {
		n := len(rcv.Accepted())
		return n >= fires, fmt.Sprintf("%d of %d", n, fires)
	})
	b.StopTimer()
	var total, toIngest, toDetect, toReceive latencies
	for _, d := range firstAccepted(rcv) {
		var body Body
		if err := json.Unmarshal(d.Body, &body); err != nil {
			b.Fatal(err)
		}
		ev, in, det := parseMs(b, body.Data.QualifiedAt), parseMs(b, body.Data.IngestedAt), parseMs(b, body.Data.DetectedAt)
		total = append(total, d.At.Sub(ev))
		toIngest = append(toIngest, in.Sub(ev))
		toDetect = append(toDetect, det.Sub(in))
		toReceive = append(toReceive, d.At.Sub(det))
	}
	total.report(b, "event_to_webhook")
	b.Logf("%d events at %d/s, %d fires: event time -> webhook received p50 %v p95 %v p99 %v", sent, rate, len(total), total.pct(50), total.pct(95), total.pct(99))
	b.Logf("  event -> loaded (ingest_time)     p50 %v p95 %v p99 %v", toIngest.pct(50), toIngest.pct(95), toIngest.pct(99))
	b.Logf("  loaded -> decided (poller)        p50 %v p95 %v p99 %v", toDetect.pct(50), toDetect.pct(95), toDetect.pct(99))
	b.Logf("  decided -> webhook received       p50 %v p95 %v p99 %v", toReceive.pct(50), toReceive.pct(95), toReceive.pct(99))
	cancel()
	<-pdone
	<-ldone
}
