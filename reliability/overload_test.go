package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestCollectorOverloaded drives `tideline collect` with far more concurrent
// requests than its in-flight bound, from an unlimited source and from one
// with a rate limit. Memory (the collector's RSS) must stay bounded, every
// refusal must be a 429 or 503 with Retry-After, and every event answered
// 2xx must reach ClickHouse. It reports the sustained accepted requests/s
// and the p99 latency of accepted requests.
func TestCollectorOverloaded(t *testing.T) {
	runFor := pick(10*time.Second, 60*time.Second)
	const (
		workers     = 96
		batch       = 100
		maxInFlight = 16
		// Low enough that the server source's clients pass it even when
		// a busy machine answers them slowly (at 3000 events/s a slow run
		// never reached the limit, and the 429 went unproven).
		rateLimit = 500
		// The bound is generous for a process that holds at most 16
		// requests of 512 KB and a 256 MiB producer buffer; a leak or an
		// unbounded queue passes it within seconds.
		rssBound = 768 << 20
	)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 15*time.Minute))
	defer cancel()
	br := faultBroker(t)
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)

	cfgPath := filepath.Join(t.TempDir(), "collector.yaml")
	cfgYAML := fmt.Sprintf(`collector:
  max_in_flight: %d
  produce_timeout: 5s
  sources:
    - {name: web, write_key: overload-web-key, lane: web}
    - {name: server, write_key: overload-server-key, lane: server, rate_limit: %d}
`, maxInFlight, rateLimit)
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	collector, url := startCollector(t, []string{
		"TIDELINE_KAFKA_MODE=kafka", "TIDELINE_KAFKA_BROKERS=" + strings.Join(br.Seeds, ","),
		"TIDELINE_KAFKA_TOPIC_PREFIX=" + br.Config.TopicPrefix,
	}, "--config", cfgPath)
	group := "rel-" + testenv.Name(t)
	loader := startLoader(t, "loader", loaderEnv(chCfg, br, group))

	prefix := "ov-" + testenv.Name(t) + "-"
	web := newDriver(url, "overload-web-key", prefix+"w-", batch)
	server := newDriver(url, "overload-server-key", prefix+"s-", batch)

	var peakRSS int64
	var rssSamples []int64
	sampleDone := make(chan struct{})
	sctx, stopSampling := context.WithCancel(ctx)
	// The sampler stops with stopSampling.
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
				r := collector.rss()
				rssSamples = append(rssSamples, r)
				peakRSS = max(peakRSS, r)
			}
		}
	}()
	dctx, stopDriving := context.WithTimeout(ctx, runFor)
	var wg sync.WaitGroup
	for _, d := range []*driver{web, server} {
		wg.Add(1)
		// Each driver stops when dctx ends.
		go func() {
			defer wg.Done()
			d.run(dctx, workers/2, nil, func() bool { return false })
		}()
	}
	wg.Wait()
	stopDriving()
	elapsed := time.Since(start)
	stopSampling()
	<-sampleDone

	wAcc, wRef, wSt, wNoRA, wNet, wLat := web.snapshot()
	sAcc, sRef, sSt, sNoRA, sNet, sLat := server.snapshot()
	accepted := append(wAcc, sAcc...)
	refused := append(wRef, sRef...)
	lat := append(wLat, sLat...)
	slices.Sort(lat)
	statuses := map[int]int{}
	for _, m := range []map[int]int{wSt, sSt} {
		for k, v := range m {
			statuses[k] += v
		}
	}
	_, missing, refusedPresent := waitAccepted(ctx, t, conn, prefix, accepted, refused, pick(3*time.Minute, 10*time.Minute))
	if collector.exited() {
		t.Errorf("the collector exited under load: %v\n%s", collector.err, collector.tail(30))
	}
	if err := loader.term(time.Minute); err != nil {
		t.Errorf("loader: %v\n%s", err, loader.tail(30))
	}
	f, err := countEventsByPrefix(ctx, conn, prefix)
	if err != nil {
		t.Fatal(err)
	}
	secs := runFor.Seconds()
	r := &report{
		Scenario: "collector overloaded", Broker: br.Name,
		Load: fmt.Sprintf("%d concurrent clients posting /v1/batch of %d events as fast as answered for %s; collector max_in_flight %d, the server source limited to %d events/s",
			workers, batch, runFor, maxInFlight, rateLimit),
		Faults:   "overload",
		Produced: int64(len(accepted)), Events: f, Lost: int64(len(missing)),
		Extra: map[string]any{
			"http_statuses":                statuses,
			"accepted_requests_per_sec":    int(float64(len(lat)) / secs),
			"accepted_events_per_sec":      int(float64(len(accepted)) / secs),
			"accepted_p50_ms":              percentile(lat, 0.50).Milliseconds(),
			"accepted_p99_ms":              percentile(lat, 0.99).Milliseconds(),
			"peak_rss_mib":                 peakRSS >> 20,
			"rss_at_half_mib":              rssAt(rssSamples, 0.5) >> 20,
			"rss_at_end_mib":               rssAt(rssSamples, 1) >> 20,
			"refused_but_present":          refusedPresent,
			"refusals_without_retry_after": wNoRA + sNoRA,
			"connection_errors":            wNet + sNet,
			"wall_seconds":                 elapsed.Round(time.Second).Seconds(),
		},
	}
	r.publish(t, start)
	if len(missing) > 0 {
		t.Errorf("%d events answered 2xx are not in ClickHouse, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for code, c := range statuses {
		if code/100 != 2 && code != 429 && code != 503 {
			t.Errorf("%d requests answered %d: overload must be refused with 429 or 503", c, code)
		}
	}
	if statuses[503] == 0 {
		t.Errorf("no 503: the collector was not driven past its in-flight bound")
	}
	if sSt[429] == 0 {
		t.Errorf("no 429 for the rate-limited source")
	}
	if wNoRA+sNoRA > 0 {
		t.Errorf("%d refusals without Retry-After", wNoRA+sNoRA)
	}
	if wNet+sNet > 0 {
		t.Errorf("%d requests got no HTTP answer", wNet+sNet)
	}
	if peakRSS > rssBound {
		t.Errorf("collector RSS peaked at %d MiB, above the %d MiB bound", peakRSS>>20, rssBound>>20)
	}
	if len(accepted) == 0 {
		t.Errorf("nothing was accepted under overload")
	}
}

// rssAt is the sample at fraction q of the run.
func rssAt(s []int64, q float64) int64 {
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s)-1)))]
}
