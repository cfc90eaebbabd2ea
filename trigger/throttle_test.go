package trigger

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestThrottledBackfillRelease records 10 000 late qualifications the way
// `tideline backfill apply` does (Recorder, origin backfill) and lets a
// poller release them to a local receiver through a 200/s throttle with a
// queue of 500: the rest waits in the ledger. It asserts counts only —
// every fire delivered, each id received, none lost — and logs the
// delivery rate and the process's peak RSS (the receiver, which keeps
// every body, runs in the same process).
func TestThrottledBackfillRelease(t *testing.T) {
	const n = 10_000
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	t.Setenv("RELEASE_SECRET", h.Secret.String())
	c := campaign(t, fmt.Sprintf(`
id: release
trigger: {audience_entered: recovered}
staleness: {budget: 15m, late: fire_late}
reeligible_after: 0
deliver:
  webhook:
    url: %s/release
    secret_env: RELEASE_SECRET
    throttle: {rate: 200, burst: 20}`, h.URL))
	rec := &Recorder{Ledger: NewLedger(conn), Conn: conn, Attributes: NewAttributeSource(conn, testenv.Logger(t)), Origin: OriginBackfill}
	now := chdb.NowMs()
	for off := 0; off < n; off += 2000 {
		var qs []Qualification
		for i := off; i < off+2000; i++ {
			qs = append(qs, Qualification{CampaignID: "release", CustomerID: fmt.Sprintf("r%05d", i), AudienceID: "recovered", Episode: "1",
				EventTimeMs: now - uint64(3*time.Hour/time.Millisecond), IngestTimeMs: now, DerivedAtMs: now})
		}
		if _, err := rec.Record(context.Background(), map[string]*Campaign{"release": c}, qs, 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig()
	cfg.QueueSize = 500
	cfg.MaxInFlight = 8
	start := time.Now()
	startPoller(t, cfg, []*Campaign{c}, conn, broker.Config{}, nil)
	testenv.Eventually(t, 5*time.Minute, "the release delivered", func() (bool, string) {
		got := len(h.Accepted())
		return got == n, fmt.Sprintf("%d of %d received", got, n)
	})
	elapsed := time.Since(start)
	var first, last time.Time
	for _, ds := range h.Deliveries() {
		for _, d := range ds {
			if first.IsZero() || d.At.Before(first) {
				first = d.At
			}
			if d.At.After(last) {
				last = d.At
			}
		}
	}
	testenv.Eventually(t, time.Minute, "every entry delivered in the ledger", func() (bool, string) {
		delivered := 0
		for _, e := range ledgerState(t, conn) {
			if e.DeliveryState == StateDelivered {
				delivered++
			}
		}
		return delivered == n, fmt.Sprintf("%d of %d delivered", delivered, n)
	})
	if c := h.Counts(); c.Invalid != 0 {
		t.Errorf("invalid signatures: %v", h.InvalidReasons())
	}
	rate := float64(n-1) / last.Sub(first).Seconds()
	fmt.Printf("throttled release: %d fires at throttle 200/s burst 20, queue 500: first to last delivery %s (%.1f/s), %s from poller start; %s\n",
		n, last.Sub(first).Round(time.Millisecond), rate, elapsed.Round(time.Millisecond), memory())
}

// memory reports the process's current and peak resident set.
func memory() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "rss unknown: " + err.Error()
	}
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			parts = append(parts, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(parts, ", ")
}
