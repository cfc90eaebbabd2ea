package trigger

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// TestReceiverChaos delivers to an endpoint that answers 500, 429 with
// Retry-After and times out for a share of requests, and to one that
// answers 410 after a few deliveries. Every fire must end delivered or
// dead-lettered (never lost), retries must respect the backoff and
// Retry-After, the 410 must disable its destination, and `redeliver` must
// then deliver every dead letter under its original id with the same body.
func TestReceiverChaos(t *testing.T) {
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	h.Seed(42)
	h.SetChaos("/chaos", receiver.Chaos{Fail500: 0.2, TooMany: 0.1, RetryAfter: time.Second, Timeout: 0.1, TimeoutDelay: 3 * time.Second})
	h.SetChaos("/gone", receiver.Chaos{GoneAfter: 5})
	t.Setenv("CHAOS_SECRET", h.Secret.String())
	var cs []*Campaign
	for _, id := range []string{"chaos", "gone"} {
		cs = append(cs, campaign(t, fmt.Sprintf(`
id: %s
trigger: {audience_entered: %s}
staleness: {budget: 1h}
reeligible_after: 0
deliver:
  webhook: {url: %s/%s, secret_env: CHAOS_SECRET}`, id, id, h.URL, id)))
	}
	cfg := testConfig()
	cfg.MaxAttempts = 4
	cfg.BackoffBase, cfg.BackoffMax = 100*time.Millisecond, 800*time.Millisecond
	cfg.WebhookTimeout = 700 * time.Millisecond
	cfg.MaxInFlight = 8
	r := startPoller(t, cfg, cs, conn, broker.Config{}, nil)

	now := chdb.NowMs()
	var trs []transition
	for i := 0; i < 300; i++ {
		trs = append(trs, transition{audience: "chaos", customer: fmt.Sprintf("c%03d", i), episode: 1, eventMs: now})
	}
	for i := 0; i < 40; i++ {
		trs = append(trs, transition{audience: "gone", customer: fmt.Sprintf("g%03d", i), episode: 1, eventMs: now})
	}
	insertTransitions(t, conn, trs)
	testenv.Eventually(t, 90*time.Second, "every delivery ended", func() (bool, string) {
		es := ledgerState(t, conn)
		open := 0
		for _, e := range es {
			if e.Open() {
				open++
			}
		}
		return len(es) == 340 && open == 0, fmt.Sprintf("%d entries, %d open, stats %+v", len(es), open, r.p.Stats())
	})
	r.stop(t)

	es := ledgerState(t, conn)
	dead, err := deadLetters(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	deadByKey := map[string]DeadLetter{}
	for _, d := range dead {
		deadByKey[d.Key] = d
	}
	accepted := h.Accepted()
	states := map[string]int{}
	for _, e := range es {
		states[e.CampaignID+":"+e.DeliveryState]++
		switch e.DeliveryState {
		case StateDelivered:
			if !accepted[e.Key] {
				t.Errorf("%s is delivered in the ledger but the receiver never accepted it", e.Key)
			}
		case StateDead, StateDisabled:
			d, ok := deadByKey[e.Key]
			if !ok || d.LastError == "" || d.Payload == "" {
				t.Errorf("%s is %s without a dead letter carrying the last error and the payload: %+v", e.Key, e.DeliveryState, d)
			}
		default:
			t.Errorf("%s ended in state %s", e.Key, e.DeliveryState)
		}
	}
	t.Logf("outcomes: %v; receiver %+v", states, h.Counts())
	if h.Counts().Invalid != 0 {
		t.Errorf("invalid signatures: %v", h.InvalidReasons())
	}
	if states["chaos:"+StateDelivered] < 250 {
		t.Errorf("only %d of 300 chaos deliveries succeeded within 4 attempts", states["chaos:"+StateDelivered])
	}
	if states["gone:"+StateDelivered] < 5 || states["gone:"+StateDisabled] == 0 {
		t.Errorf("410 endpoint: %v", states)
	}

	// After the first 410, the destination is disabled: at most the
	// requests already in flight reach it.
	deliveries := h.Deliveries()
	var first410 time.Time
	var goneAt []time.Time
	for _, ds := range deliveries {
		for _, d := range ds {
			if d.Path != "/gone" {
				continue
			}
			goneAt = append(goneAt, d.At)
			if d.Status == http.StatusGone && (first410.IsZero() || d.At.Before(first410)) {
				first410 = d.At
			}
		}
	}
	after := 0
	for _, at := range goneAt {
		if at.After(first410) {
			after++
		}
	}
	if first410.IsZero() || after > cfg.MaxInFlight {
		t.Errorf("%d requests reached the 410 endpoint after its first 410 (max in flight %d)", after, cfg.MaxInFlight)
	}
	dis, err := disabledDestinations(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dis[cs[1].Destinations()[0].ID()]; !ok || len(dis) != 1 {
		t.Errorf("disabled destinations = %v", dis)
	}

	// Retries waited at least the backoff (half of base*2^(n-1), the jitter
	// floor), and at least Retry-After after a 429.
	checked := 0
	for id, ds := range deliveries {
		sort.Slice(ds, func(i, j int) bool { return ds[i].At.Before(ds[j].At) })
		for i := 1; i < len(ds); i++ {
			if ds[i].Path != "/chaos" {
				continue
			}
			floor := retryFloor(cfg, i)
			if ds[i-1].Status == http.StatusTooManyRequests {
				floor = time.Second
			}
			if gap := ds[i].At.Sub(ds[i-1].At); gap < floor {
				t.Errorf("%s: attempt %d came %v after attempt %d (status %d); want at least %v", id, i+1, gap, i, ds[i-1].Status, floor)
			}
			checked++
		}
	}
	if checked < 30 {
		t.Errorf("only %d retries to check; the chaos did not happen", checked)
	}

	// Redeliver every dead letter once the endpoints are healthy again.
	h.SetChaos("/chaos", receiver.Chaos{})
	h.SetChaos("/gone", receiver.Chaos{})
	res, err := Redeliver(context.Background(), conn, cs, cfg, nil, "", RedeliverOptions{Reenable: true}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Selected != len(dead) || res.Delivered != len(dead) || res.Failed != 0 || len(res.Reenabled) != 1 {
		t.Errorf("redeliver: %+v, want all %d delivered and the 410 destination re-enabled", res, len(dead))
	}
	for _, e := range ledgerState(t, conn) {
		if e.DeliveryState != StateDelivered {
			t.Errorf("%s is %s after redelivery", e.Key, e.DeliveryState)
		}
		if !h.Accepted()[e.Key] {
			t.Errorf("%s never accepted", e.Key)
		}
	}
	if left, _ := deadLetters(context.Background(), conn); len(left) != 0 {
		t.Errorf("%d dead letters left after redelivery", len(left))
	}
	// Every attempt of an id, first or redelivered, carried the same body.
	for id, ds := range h.Deliveries() {
		for _, d := range ds[1:] {
			if !bytes.Equal(d.Body, ds[0].Body) {
				t.Fatalf("%s was sent with two bodies:\n%s\n%s", id, ds[0].Body, d.Body)
			}
		}
	}
}

// retryFloor is the shortest wait retryDelay can give after n failed attempts.
func retryFloor(cfg Config, n int) time.Duration {
	b := cfg.BackoffBase
	for i := 1; i < n && b < cfg.BackoffMax; i++ {
		b *= 2
	}
	return min(b, cfg.BackoffMax) / 2
}
