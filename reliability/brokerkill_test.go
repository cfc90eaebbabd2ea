package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestBrokerKilled SIGKILLs an Apache Kafka broker of the test's own three
// times, once at least 20% of the load has been accepted and twice more
// after, while `tideline collect` keeps receiving. Every event the
// collector answered 2xx for must reach ClickHouse; every request refused
// during an outage must be a 503 carrying Retry-After.
func TestBrokerKilled(t *testing.T) {
	n := pick(20_000, 300_000)
	eventsPerSec := pick(2000.0, 4000.0)
	down := pick(2*time.Second, 5*time.Second)
	const batch = 50

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(5*time.Minute, 20*time.Minute))
	defer cancel()
	kafka := startOwnKafka(t)
	bc := broker.DefaultConfig()
	bc.Mode, bc.Brokers, bc.Partitions = "kafka", kafka.seeds(), 4
	br := testenv.Broker{Name: "kafka (own, killed)", Seeds: kafka.seeds(), Config: bc}
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)

	collector, url := startCollector(t, []string{
		"TIDELINE_KAFKA_MODE=kafka", "TIDELINE_KAFKA_BROKERS=" + strings.Join(br.Seeds, ","),
		// Fail a request after 3 s without the broker's acknowledgement,
		// so outages show as 503s quickly.
		"TIDELINE_COLLECTOR_PRODUCE_TIMEOUT=3s",
	})
	group := "rel-" + testenv.Name(t)
	loader := startLoader(t, "loader", loaderEnv(chCfg, br, group))

	prefix := "bk-" + testenv.Name(t) + "-"
	d := newDriver(url, "web-demo-key", prefix, batch)
	done := make(chan struct{})
	lim := rate.NewLimiter(rate.Limit(eventsPerSec/batch), 4)
	// The driver stops once n events were accepted or ctx ends.
	go func() {
		defer close(done)
		d.run(ctx, 8, lim, func() bool { return d.acceptedCount() >= n })
	}()

	var outages []string
	for i, at := range []float64{0.2, 0.45, 0.7} {
		for d.acceptedCount() < int(at*float64(n)) {
			if collector.exited() || loader.exited() {
				t.Fatalf("a process exited: collector %v, loader %v\n%s\n%s", collector.err, loader.err, collector.tail(20), loader.tail(20))
			}
			select {
			case <-done:
				t.Fatalf("driver stopped early with %d accepted", d.acceptedCount())
			case <-time.After(50 * time.Millisecond):
			}
		}
		t0 := time.Now()
		accBefore := d.acceptedCount()
		if err := kafka.kill9(t); err != nil {
			t.Fatal(err)
		}
		time.Sleep(down)
		if err := kafka.start(t); err != nil {
			t.Fatalf("restart kafka: %v", err)
		}
		outage := time.Since(t0).Round(100 * time.Millisecond)
		outages = append(outages, fmt.Sprintf("kill -9 at %d accepted (%d%%): broker back after %s", accBefore, accBefore*100/n, outage))
		t.Logf("broker kill %d at %d accepted: back after %s", i+1, accBefore, outage)
	}
	<-done
	accepted, refused, statuses, noRetryAfter, netErrors, _ := d.snapshot()
	present, missing, refusedPresent := waitAccepted(ctx, t, conn, prefix, accepted, refused, pick(3*time.Minute, 10*time.Minute))
	if err := loader.term(time.Minute); err != nil {
		t.Errorf("loader: %v\n%s", err, loader.tail(30))
	}
	if err := collector.term(30 * time.Second); err != nil {
		t.Errorf("collector: %v\n%s", err, collector.tail(30))
	}
	f, err := countEventsByPrefix(ctx, conn, prefix)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{
		Scenario: "broker killed", Broker: br.Name,
		Load:     fmt.Sprintf("%d events accepted through `tideline collect` (/v1/batch of %d, 8 clients, ≤ %.0f events/s)", n, batch, eventsPerSec),
		Faults:   fmt.Sprintf("3 SIGKILLs of the Kafka broker at ≥ 20/45/70%% of the load, each down %s plus its restart", down),
		Produced: int64(len(accepted)), Events: f, Lost: int64(len(missing)),
		Extra: map[string]any{
			"outages": outages, "http_statuses": statuses, "refused_events": len(refused),
			"refused_but_present": refusedPresent, "refusals_without_retry_after": noRetryAfter,
			"connection_errors": netErrors, "present_ids": len(present),
		},
	}
	r.derive(ctx, t, conn)
	r.publish(t, start)
	if len(missing) > 0 {
		t.Errorf("%d events answered 2xx are not in ClickHouse, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for code, c := range statuses {
		if code/100 != 2 && code != 503 {
			t.Errorf("%d requests answered %d: refusals during a broker outage must be 503", c, code)
		}
	}
	if statuses[503] == 0 {
		t.Errorf("no request was refused while the broker was down: the outage was not observed")
	}
	if noRetryAfter > 0 {
		t.Errorf("%d 503 answers without Retry-After", noRetryAfter)
	}
	if netErrors > 0 {
		t.Errorf("%d requests got no HTTP answer", netErrors)
	}
	if f.Final != f.Unique {
		t.Errorf("events_unique holds %d rows for %d distinct events", f.Final, f.Unique)
	}
}

// countEventsByPrefix counts the rows, distinct ids and FINAL rows of the
// events whose id starts with prefix.
func countEventsByPrefix(ctx context.Context, conn *chdb.Conn, prefix string) (eventFigures, error) {
	var f eventFigures
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(message_id) FROM events WHERE startsWith(message_id, ?)", prefix).Scan(&f.RawRows, &f.Unique); err != nil {
		return f, fmt.Errorf("count events: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM events_unique WHERE startsWith(message_id, ?)", prefix).Scan(&f.Final); err != nil {
		return f, fmt.Errorf("count events_unique: %w", err)
	}
	return f, nil
}
