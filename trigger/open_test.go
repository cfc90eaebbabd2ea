package trigger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLedgerIsTheQueue records qualifications the way the backfill does
// (Recorder with origin backfill, no feed rows, no running poller) and
// writes one entry with no stored payload, as a tool writing the ledger
// directly would; a poller started afterwards delivers all of them through
// its open-delivery scan, under their ledger keys, paging past more open
// entries than one batch.
func TestLedgerIsTheQueue(t *testing.T) {
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	t.Setenv("QUEUE_SECRET", h.Secret.String())
	c := campaign(t, fmt.Sprintf(`
id: queued
trigger: {audience_entered: backfilled}
staleness: {budget: 2h, late: fire_late}
reeligible_after: 0
deliver:
  webhook: {url: %s/queued, secret_env: QUEUE_SECRET}`, h.URL))
	rec := &Recorder{Ledger: NewLedger(conn), Conn: conn, Attributes: NewAttributeSource(conn, testenv.Logger(t)), Origin: OriginBackfill}
	now := chdb.NowMs()
	var qs []Qualification
	for i := 0; i < 30; i++ {
		qs = append(qs, Qualification{CampaignID: "queued", CustomerID: fmt.Sprintf("b%02d", i), AudienceID: "backfilled", Episode: "1",
			EventTimeMs: now - uint64(3*time.Hour/time.Millisecond), IngestTimeMs: now, DerivedAtMs: now})
	}
	res, err := rec.Record(context.Background(), map[string]*Campaign{"queued": c}, qs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.New) != 30 || res.New[0].Decision.Action != FireLate {
		t.Fatalf("recorded %d, first %+v", len(res.New), res.New[0].Decision)
	}
	// Recording again decides nothing new: the decisions are sticky.
	again, err := rec.Record(context.Background(), map[string]*Campaign{"queued": c}, qs, 0)
	if err != nil || len(again.New) != 0 || len(again.Reused) != 30 {
		t.Fatalf("second Record: %d new, %d reused, %v", len(again.New), len(again.Reused), err)
	}
	bare := newEntry(Qualification{CampaignID: "queued", CustomerID: "bare", AudienceID: "backfilled", Episode: "7", EventTimeMs: now, DerivedAtMs: now},
		Decision{Action: Fire, Reason: ReasonFresh}, now, OriginBackfill)
	if err := NewLedger(conn).Insert(context.Background(), []*Entry{bare}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.BatchSize = 7 // several pages of open entries
	startPoller(t, cfg, []*Campaign{c}, conn, broker.Config{}, nil)
	testenv.Eventually(t, 30*time.Second, "the open entries delivered", func() (bool, string) {
		es := ledgerState(t, conn)
		delivered := 0
		for _, e := range es {
			if e.DeliveryState == StateDelivered {
				delivered++
			}
		}
		return delivered == 31, fmt.Sprintf("%d of 31 delivered", delivered)
	})
	acc := h.Accepted()
	for _, n := range res.New {
		if !acc[n.Entry.Key] {
			t.Errorf("%s not received", n.Entry.Key)
		}
	}
	if !acc[bare.Key] {
		t.Fatalf("the entry without a payload was not delivered")
	}
	b := body(t, h.Deliveries()[bare.Key][0].Body)
	if b.Data.WebhookID != bare.Key || b.Data.CustomerID != "bare" || b.Data.Trigger.Episode != "7" {
		t.Errorf("rebuilt payload: %+v", b.Data)
	}
	if n := count(t, conn, "SELECT count() FROM trigger_payloads WHERE ledger_key = ?", bare.Key); n != 1 {
		t.Errorf("the rebuilt payload was stored %d times", n)
	}
}
