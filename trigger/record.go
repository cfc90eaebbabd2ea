package trigger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Recorder decides qualifications and records the decisions: the one path
// by which the poller and the backfill write ledger entries. For a batch it
// reads the decisions' facts first (LoadFacts: existing entries keep their
// decision; the customers' other fires feed re-eligibility and caps; their
// attributes and suppressions feed consent, quiet hours and suppression),
// decides in event time order, and writes the control rows, then the fires'
// payloads and the new ledger rows.
type Recorder struct {
	Ledger     *Ledger
	Conn       *chdb.Conn
	Attributes AttributeSource
	// Origin is recorded in new entries: OriginPoller or OriginBackfill.
	Origin string
	// Now returns the detection time in epoch ms (default chdb.NowMs).
	Now func() uint64
}

// Recorded is one qualification's outcome.
type Recorded struct {
	Q        Qualification
	Campaign *Campaign
	Decision Decision
	// Entry is the ledger entry: new, or the existing one when Decision.Reused.
	Entry *Entry
	// Body is the payload of a new fire (nil for skips, and for reused
	// entries, whose payload is in trigger_payloads).
	Body []byte
}

// Result is the outcome of one Record call.
type Result struct {
	// New are the qualifications decided now and recorded.
	New []Recorded
	// Reused are the qualifications that already had a ledger entry.
	Reused []Recorded
	// Waiting are the qualifications not decided yet (their unless window
	// has not passed the watermark); record them again later.
	Waiting []Qualification
	// Decide is the time spent reading the facts and deciding, Write the
	// time spent writing the ledger, its controls and payloads.
	Decide, Write time.Duration
}

// Record decides qs (all of campaigns in cs, by id) and records the new
// decisions. watermarkMs is the lanes' completeness watermark. Nothing is
// recorded when an error is returned; calling it again with the same
// qualifications is safe.
func (r *Recorder) Record(ctx context.Context, cs map[string]*Campaign, qs []Qualification, watermarkMs uint64) (*Result, error) {
	start := time.Now()
	res, detected, err := r.decide(ctx, cs, qs, watermarkMs)
	if err != nil {
		return nil, err
	}
	res.Decide = time.Since(start)
	if len(res.New) == 0 {
		return res, nil
	}
	start = time.Now()
	defer func() { res.Write = time.Since(start) }()
	payloads := make([]Payload, 0, len(res.New))
	var controls []Control
	for _, n := range res.New {
		if n.Body != nil {
			payloads = append(payloads, Payload{Key: n.Entry.Key, CampaignID: n.Q.CampaignID, Body: n.Body})
		}
		if ct, ok := controlOf(n.Entry); ok {
			controls = append(controls, ct)
		}
	}
	// The payloads and the ledger rows are written at once (one round trip
	// on the path to the webhook). Nothing is sent before both succeeded, so
	// if only the ledger rows land (an error, a crash), whoever delivers the
	// entry finds no payload, builds one and stores it before sending: every
	// send of a webhook id still carries the same body.
	//
	// Control rows go first, on their own: a deferred entry must never be
	// visible without its release time, or a poller would send it at once.
	if err := r.Ledger.InsertControls(ctx, controls); err != nil {
		return nil, err
	}
	perr := make(chan error, 1)
	go func() { perr <- r.Ledger.InsertPayloads(ctx, payloads, detected) }()
	entries := make([]*Entry, len(res.New))
	for i, n := range res.New {
		entries[i] = n.Entry
	}
	lerr := r.Ledger.Insert(ctx, entries)
	if err := <-perr; err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, lerr
	}
	return res, nil
}

// Preview decides qs as Record does, on the same facts, and records
// nothing: what recording them now would send, skip or hold.
func (r *Recorder) Preview(ctx context.Context, cs map[string]*Campaign, qs []Qualification, watermarkMs uint64) (*Result, error) {
	res, _, err := r.decide(ctx, cs, qs, watermarkMs)
	return res, err
}

// decide is Record without the writes: the decisions, with the bodies of
// new fires, and the detection time they were decided at.
func (r *Recorder) decide(ctx context.Context, cs map[string]*Campaign, qs []Qualification, watermarkMs uint64) (*Result, uint64, error) {
	res := &Result{}
	if len(qs) == 0 {
		return res, 0, nil
	}
	now := chdb.NowMs
	if r.Now != nil {
		now = r.Now
	}
	qs = dedupe(qs)
	camps, custs := map[string]bool{}, map[string]bool{}
	for _, q := range qs {
		if cs[q.CampaignID] == nil {
			return nil, 0, fmt.Errorf("%w %q in a qualification", ErrUnknownCampaign, q.CampaignID)
		}
		camps[q.CampaignID], custs[q.CustomerID] = true, true
	}
	facts, err := LoadFacts(ctx, r.Conn, r.Ledger, r.Attributes, cs, keys(camps), keys(custs))
	if err != nil {
		return nil, 0, err
	}
	existing := facts.Existing
	followUps, err := r.followUps(ctx, cs, qs, existing, watermarkMs)
	if err != nil {
		return nil, 0, err
	}
	// Decide in a fixed order (customer, event time, key) so that the
	// same batch always gives the same decisions, whatever order the feed
	// returned it in.
	sort.Slice(qs, func(i, j int) bool {
		a, b := qs[i], qs[j]
		if a.CustomerID != b.CustomerID {
			return a.CustomerID < b.CustomerID
		}
		if a.EventTimeMs != b.EventTimeMs {
			return a.EventTimeMs < b.EventTimeMs
		}
		return a.Key() < b.Key()
	})
	detected := now()
	var fires []int
	for _, q := range qs {
		c := cs[q.CampaignID]
		key := q.Key()
		in := facts.Input(c, q, detected, watermarkMs)
		if fu, ok := followUps[key]; ok {
			in.FollowUp = &fu
		}
		d := Decide(in)
		switch {
		case d.Reused:
			res.Reused = append(res.Reused, Recorded{Q: q, Campaign: c, Decision: d, Entry: existing[key]})
		case d.Action == Wait:
			res.Waiting = append(res.Waiting, q)
		default:
			e := newEntry(q, d, detected, r.Origin)
			if d.Action.Fires() {
				facts.Fired(c, q)
				fires = append(fires, len(res.New))
			}
			res.New = append(res.New, Recorded{Q: q, Campaign: c, Decision: d, Entry: e})
		}
	}
	if err := r.buildBodies(res, fires, facts.Attributes); err != nil {
		return nil, 0, err
	}
	return res, detected, nil
}

// buildBodies renders the payload of every new fire. A body template that
// fails for one customer's values turns that fire into a skip
// ("template_error", the error in the entry's detail) rather than holding
// the batch: the same values would fail again on every retry.
func (r *Recorder) buildBodies(res *Result, fires []int, attrs map[string]map[string]any) error {
	for _, i := range fires {
		n := &res.New[i]
		body, err := buildBody(n.Campaign, n.Q, n.Entry, n.Decision, attrs[n.Q.CustomerID])
		if errors.Is(err, ErrTemplate) {
			n.Decision = Decision{Action: Skip, Reason: ReasonTemplateError, LagMs: n.Decision.LagMs, Detail: truncateErr(err.Error())}
			n.Entry.Decision, n.Entry.Reason, n.Entry.DeliveryState = string(Skip), ReasonTemplateError, StateSkipped
			n.Entry.Detail, n.Entry.ReleaseAtMs = n.Decision.Detail, 0
			continue
		}
		if err != nil {
			return err
		}
		n.Body = body
	}
	return nil
}

// followUps checks the unless condition of the qualifications that are
// due and not yet in the ledger.
func (r *Recorder) followUps(ctx context.Context, cs map[string]*Campaign, qs []Qualification, existing map[string]*Entry, watermarkMs uint64) (map[string]bool, error) {
	var open []Qualification
	for _, q := range qs {
		if existing[q.Key()] == nil {
			open = append(open, q)
		}
	}
	return FollowUps(ctx, r.Conn, cs, open, watermarkMs)
}

// followUpChunk is how many customers one follow-up query names, keeping
// its text small.
const followUpChunk = 5000

// FollowUps reports, by ledger key, for the qualifications of unless
// campaigns whose window the watermark has passed, whether the customer
// performed the follow-up event within it. The Recorder checks with it
// before deciding and the backfill's preview with it, so a preview is the
// decision apply records.
func FollowUps(ctx context.Context, conn *chdb.Conn, cs map[string]*Campaign, qs []Qualification, watermarkMs uint64) (map[string]bool, error) {
	type pending struct {
		q   Qualification
		c   *Campaign
		due uint64
	}
	var due []pending
	names, custs := map[string]bool{}, map[string]bool{}
	var lo, hi uint64
	for _, q := range qs {
		c := cs[q.CampaignID]
		if c == nil || c.Trigger.Unless == nil {
			continue
		}
		d := DueMs(c, q)
		if watermarkMs < d {
			continue
		}
		due = append(due, pending{q: q, c: c, due: d})
		names[c.Trigger.Unless.Event.Name], custs[q.CustomerID] = true, true
		if lo == 0 || q.EventTimeMs < lo {
			lo = q.EventTimeMs
		}
		hi = max(hi, d)
	}
	out := map[string]bool{}
	if len(due) == 0 {
		return out, nil
	}
	type ev struct {
		msg, name string
		fields    Fields
		at        uint64
	}
	byCustomer := map[string][]ev{}
	ids := keys(custs)
	for i := 0; i < len(ids); i += followUpChunk {
		err := ingest.EachNamed(ctx, conn, ids[i:min(i+followUpChunk, len(ids))], keys(names), lo, hi, func(s ingest.Stored) error {
			e := ev{msg: s.MessageID, name: s.Event, fields: Fields{Properties: s.Properties, Context: s.Context, ContextIP: s.ContextIP}, at: s.EventTimeMs}
			byCustomer[s.CustomerID] = append(byCustomer[s.CustomerID], e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read follow-up events: %w", err)
		}
	}
	for _, p := range due {
		found := false
		for _, e := range byCustomer[p.q.CustomerID] {
			if e.msg != p.q.MessageID && e.at >= p.q.EventTimeMs && e.at <= p.due && p.c.Trigger.Unless.Event.Matches(e.name, e.fields) {
				found = true
				break
			}
		}
		out[p.q.Key()] = found
	}
	return out, nil
}

func dedupe(qs []Qualification) []Qualification {
	seen := make(map[string]bool, len(qs))
	out := make([]Qualification, 0, len(qs))
	for _, q := range qs {
		k := q.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, q)
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
