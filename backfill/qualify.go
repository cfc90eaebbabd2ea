package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/tideline-dev/tideline/internal/shares"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// The qualifications of a window: audience transitions caused by an event
// received in the window (time-driven ones by their event time), and
// events received in the window that match an event trigger. A window is
// Kafka record time, like the offsets a plan compares, so the records a
// plan finds missing and the qualifications they cause are in one window.
// Whether a message was received in the window, and when it was first and
// last loaded, are read from event_positions, which keeps every delivery:
// in events a merge keeps one delivery of a retried message, whose receive
// and ingest times may lie elsewhere. A transition that late data dated
// again has several rows; the newest (by derived_at_ms) holds its true
// date and cause.

// CampaignQualifier finds and decides qualifications with the trigger
// package: its campaign definitions, its ledger and the Recorder the
// poller itself decides with, so the backfill and the poller apply one
// policy to one ledger.
type CampaignQualifier struct {
	Conn      *chdb.Conn
	Campaigns []*trigger.Campaign
	// WatermarkLanes bound negative (unless) decisions, as the poller's
	// trigger.watermark_lanes do (default web, server).
	WatermarkLanes []string
	// Shards is the pollers' trigger.shards (default 16).
	Shards int
	// PollerStaleAfter is how recently a poller must have saved a position
	// to count as running (default 15s).
	PollerStaleAfter time.Duration
	Log              *slog.Logger
}

func (c *CampaignQualifier) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// active returns the active campaigns, restricted to ids when given.
func (c *CampaignQualifier) active(ids []string) (map[string]*trigger.Campaign, error) {
	out := map[string]*trigger.Campaign{}
	for _, cp := range c.Campaigns {
		if cp.Active {
			out[cp.ID] = cp
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	sel := map[string]*trigger.Campaign{}
	for _, id := range ids {
		cp, ok := out[id]
		if !ok {
			return nil, fmt.Errorf("campaign %q is not an active campaign (see tideline campaigns list)", id)
		}
		sel[id] = cp
	}
	return sel, nil
}

// found is a qualification with where the poller reads it: its feed and
// the newest position among the feed rows that carry it.
type found struct {
	q    trigger.Qualification
	feed string
	pos  uint64
}

// qualifications lists the window's qualifications for campaigns, as the
// poller would have built them from its feeds.
func (c *CampaignQualifier) qualifications(ctx context.Context, w Window, cs map[string]*trigger.Campaign) ([]found, error) {
	audiences, names := map[string]bool{}, map[string]bool{}
	campaigns := make([]*trigger.Campaign, 0, len(cs))
	for _, id := range slices.Sorted(maps.Keys(cs)) {
		campaigns = append(campaigns, cs[id])
	}
	for _, cp := range cs {
		if cp.Trigger.Kind == trigger.TriggerEvent {
			names[cp.Trigger.Event.Name] = true
		} else {
			audiences[cp.Trigger.Audience] = true
		}
	}
	from, to := uint64(w.FromMs()), uint64(w.ToMs())
	var out []found
	// add records the qualifications o gives, read from feed at pos.
	add := func(feed string, pos uint64, o trigger.Occurrence) error {
		for _, q := range trigger.Match(campaigns, o) {
			out = append(out, found{feed: feed, pos: pos, q: q})
		}
		return nil
	}
	if len(audiences) > 0 {
		err := materialize.EachWindowTransition(ctx, c.Conn, slices.Sorted(maps.Keys(audiences)), from, to, func(t materialize.WindowTransition) error {
			return add("transitions", t.LastDerivedAtMs, trigger.Occurrence{
				AudienceID: t.AudienceID, Kind: t.Kind, Episode: t.Episode, CustomerID: t.CustomerID, MessageID: t.MessageID, Lane: t.Lane,
				EventTimeMs: t.EventTimeMs, IngestTimeMs: t.IngestTimeMs, DerivedAtMs: t.DerivedAtMs,
			})
		})
		if err != nil {
			return nil, fmt.Errorf("read the window's audience transitions: %w", err)
		}
	}
	if len(names) > 0 {
		err := ingest.EachReceived(ctx, c.Conn, slices.Sorted(maps.Keys(names)), from, to, func(r ingest.Received) error {
			return add("events", r.LastLoadMs, trigger.Occurrence{
				Event: r.Event, Properties: r.Properties, Context: r.Context, ContextIP: r.ContextIP, CustomerID: r.CustomerID, MessageID: r.MessageID, Lane: r.Lane,
				EventTimeMs: r.EventTimeMs, IngestTimeMs: r.FirstLoadMs, DerivedAtMs: r.FirstLoadMs,
			})
		})
		if err != nil {
			return nil, fmt.Errorf("read the window's events: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].q.Key() < out[j].q.Key() })
	return out, nil
}

// ledgerByKeys reads entries in chunks, keeping each query's text small.
func ledgerByKeys(ctx context.Context, l *trigger.Ledger, keys []string) (map[string]*trigger.Entry, error) {
	out := map[string]*trigger.Entry{}
	const chunk = 5000
	for i := 0; i < len(keys); i += chunk {
		m, err := l.ByKeys(ctx, keys[i:min(i+chunk, len(keys))])
		if err != nil {
			return nil, err
		}
		for k, e := range m {
			out[k] = e
		}
	}
	return out, nil
}

// Unledgered implements Qualifier. Decisions are previews made with the
// poller's decision function and the customers' ledger history; unless
// campaigns show "wait" until apply checks their follow-up events.
//
// While a poller is running, a qualification at or past its saved position
// is the poller's: it has yet to read it (or holds it for an unless window)
// and decides it itself, and deciding it here too would make two writers of
// one customer. The saved position is durable: everything before it was
// decided or is held at or past it. So an unledgered qualification before
// it was passed without a decision (a poller that restarted at its latest
// rows, a feed rebuilt), and it is the backfill's, as is everything when no
// poller runs (Owner "backfill").
func (c *CampaignQualifier) Unledgered(ctx context.Context, w Window, campaigns []string, now time.Time) ([]Qualification, []CampaignFinding, error) {
	cs, err := c.active(campaigns)
	if err != nil {
		return nil, nil, err
	}
	fs, err := c.qualifications(ctx, w, cs)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.q.Key()
	}
	ledger := trigger.NewLedger(c.Conn)
	entries, err := ledgerByKeys(ctx, ledger, keys)
	if err != nil {
		return nil, nil, err
	}
	positions, err := c.pollerPositions(ctx)
	if err != nil {
		return nil, nil, err
	}
	shards := c.Shards
	if shards <= 0 {
		shards = trigger.DefaultConfig().Shards
	}
	var pending []found
	custs := map[string]bool{}
	findings := map[string]*CampaignFinding{}
	for id, cp := range cs {
		findings[id] = &CampaignFinding{CampaignID: id, AudienceID: cp.Trigger.Audience, Decisions: map[string]int64{}, Reasons: map[string]int64{}}
	}
	for _, f := range fs {
		fd := findings[f.q.CampaignID]
		fd.Qualified++
		if entries[f.q.Key()] != nil {
			fd.Ledgered++
			continue
		}
		pending = append(pending, f)
		custs[f.q.CustomerID] = true
	}
	wm, err := c.watermark(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Preview in the Recorder's order (customer, event time), each fire
	// counting for the customer's later ones, as they would be recorded.
	sort.Slice(pending, func(i, j int) bool {
		a, b := pending[i].q, pending[j].q
		if a.CustomerID != b.CustomerID {
			return a.CustomerID < b.CustomerID
		}
		if a.EventTimeMs != b.EventTimeMs {
			return a.EventTimeMs < b.EventTimeMs
		}
		return a.Key() < b.Key()
	})
	followUps, err := c.followUps(ctx, cs, pending, wm)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Qualification, 0, len(pending))
	nowMs := uint64(now.UnixMilli())
	ledger, attrs := trigger.NewLedger(c.Conn), trigger.NewAttributeSource(c.Conn, c.Log)
	var (
		facts       *trigger.Facts
		loadedUntil int
	)
	for i, f := range pending {
		q := f.q
		cp := cs[q.CampaignID]
		if i >= loadedUntil {
			// The facts of the next customers (about 5000 qualifications'
			// worth, never splitting a customer, whose qualifications are
			// adjacent), read as the Recorder reads them when apply records.
			end := min(i+5000, len(pending))
			for end < len(pending) && pending[end].q.CustomerID == pending[end-1].q.CustomerID {
				end++
			}
			ids := map[string]bool{}
			for _, g := range pending[i:end] {
				ids[g.q.CustomerID] = true
			}
			if facts, err = trigger.LoadFacts(ctx, c.Conn, ledger, attrs, cs, slices.Sorted(maps.Keys(cs)), slices.Sorted(maps.Keys(ids))); err != nil {
				return nil, nil, err
			}
			loadedUntil = end
		}
		in := facts.Input(cp, q, nowMs, wm)
		if fu, ok := followUps[q.Key()]; ok {
			in.FollowUp = &fu
		}
		d := trigger.Decide(in)
		if d.Action.Fires() {
			facts.Fired(cp, q)
		}
		fd := findings[q.CampaignID]
		fd.Decisions[string(d.Action)]++
		fd.Reasons[string(d.Action)+":"+d.Reason]++
		if d.ReleaseAtMs > 0 {
			fd.Deferred++
		}
		pq := fromTrigger(q, string(d.Action), d.Reason)
		pq.Owner = OwnerBackfill
		if positions != nil {
			if p, ok := positions[f.feed][shares.Of(q.CustomerID, shards)]; ok && f.pos >= p {
				pq.Owner = OwnerPoller
				fd.LeftToPoller++
			}
		}
		out = append(out, pq)
	}
	for id, cp := range cs {
		findings[id].Throttle = throttleEstimate(cp, findings[id])
	}
	var cf []CampaignFinding
	for _, id := range slices.Sorted(maps.Keys(cs)) {
		cf = append(cf, *findings[id])
	}
	return out, cf, nil
}

// throttleEstimate says how long the fires the backfill would release
// take at the campaign's webhook throttle (nil without one).
func throttleEstimate(cp *trigger.Campaign, fd *CampaignFinding) *ThrottleEstimate {
	wh := cp.Deliver.Webhook
	if wh == nil || wh.Throttle == nil {
		return nil
	}
	fires := fd.Decisions[string(trigger.Fire)] + fd.Decisions[string(trigger.FireLate)] - fd.Deferred
	est := &ThrottleEstimate{Rate: wh.Throttle.Rate, Burst: wh.Throttle.Burst, Fires: max(fires, 0)}
	if over := float64(est.Fires - int64(est.Burst)); over > 0 {
		est.ReleaseSeconds = over / est.Rate
	}
	return est
}

// followUps reports whether the customers of pending qualifications of
// unless campaigns performed the follow-up, with the check the trigger's
// Recorder makes before deciding.
func (c *CampaignQualifier) followUps(ctx context.Context, cs map[string]*trigger.Campaign, pending []found, wm uint64) (map[string]bool, error) {
	qs := make([]trigger.Qualification, len(pending))
	for i, f := range pending {
		qs[i] = f.q
	}
	return trigger.FollowUps(ctx, c.Conn, cs, qs, wm)
}

// pollerPositions returns the saved positions of a running poller by feed
// and shard, or nil when no poller saved one within PollerStaleAfter.
func (c *CampaignQualifier) pollerPositions(ctx context.Context) (map[string]map[int32]uint64, error) {
	staleAfter := c.PollerStaleAfter
	if staleAfter <= 0 {
		staleAfter = 15 * time.Second
	}
	cs, err := trigger.ReadCursors(ctx, c.Conn)
	if err != nil {
		return nil, fmt.Errorf("read the poller's positions: %w", err)
	}
	now := chdb.NowMs()
	for _, cur := range cs {
		if now-min(now, cur.UpdatedAtMs) < uint64(staleAfter.Milliseconds()) {
			return trigger.CursorPositions(cs), nil
		}
	}
	return nil, nil
}

// Record implements Qualifier with the trigger's Recorder: qualifications
// that have a ledger entry keep it; the others are decided now and written
// with origin "backfill", and the poller that owns each customer delivers
// the fires.
func (c *CampaignQualifier) Record(ctx context.Context, qs []Qualification) (RecordResult, error) {
	var res RecordResult
	cs, err := c.active(nil)
	if err != nil {
		return res, err
	}
	tqs := make([]trigger.Qualification, 0, len(qs))
	for _, q := range qs {
		if cs[q.CampaignID] == nil {
			return res, fmt.Errorf("campaign %q of a qualification is not active any more", q.CampaignID)
		}
		tqs = append(tqs, q.toTrigger())
	}
	wm, err := c.watermark(ctx)
	if err != nil {
		return res, err
	}
	rec := &trigger.Recorder{Ledger: trigger.NewLedger(c.Conn), Conn: c.Conn, Attributes: trigger.NewAttributeSource(c.Conn, c.Log), Origin: trigger.OriginBackfill}
	r, err := rec.Record(ctx, cs, tqs, wm)
	if err != nil {
		return res, err
	}
	for _, n := range r.New {
		res.Created = append(res.Created, fromTrigger(n.Q, string(n.Decision.Action), n.Decision.Reason))
	}
	for _, n := range r.Reused {
		res.Existing = append(res.Existing, fromTrigger(n.Q, string(n.Decision.Action), n.Decision.Reason))
	}
	for _, q := range r.Waiting {
		res.Waiting = append(res.Waiting, fromTrigger(q, string(trigger.Wait), trigger.ReasonWatermark))
	}
	return res, nil
}

// watermark is the lowest watermark of the lanes, 0 while one has none.
func (c *CampaignQualifier) watermark(ctx context.Context) (uint64, error) {
	lanes := c.WatermarkLanes
	if len(lanes) == 0 {
		lanes = []string{"web", "server"}
	}
	wm, _, err := materialize.Watermark(ctx, c.Conn, lanes)
	return wm, err
}

func fromTrigger(q trigger.Qualification, decision, reason string) Qualification {
	return Qualification{
		CampaignID: q.CampaignID, CustomerID: q.CustomerID, AudienceID: q.AudienceID, Episode: q.Episode,
		MessageID: q.MessageID, Event: q.Event, Properties: q.Properties, Context: q.Context,
		EventTimeMs: q.EventTimeMs, IngestTimeMs: q.IngestTimeMs, DerivedAtMs: q.DerivedAtMs, Lane: q.Lane,
		Decision: decision, Reason: reason,
	}
}

func (q Qualification) toTrigger() trigger.Qualification {
	return trigger.Qualification{
		CampaignID: q.CampaignID, CustomerID: q.CustomerID, AudienceID: q.AudienceID, Episode: q.Episode,
		MessageID: q.MessageID, Lane: q.Lane, Event: q.Event, Properties: q.Properties, Context: q.Context,
		EventTimeMs: q.EventTimeMs, IngestTimeMs: q.IngestTimeMs, DerivedAtMs: q.DerivedAtMs,
	}
}
