package trigger

import (
	"context"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Facts are what the decisions about a batch of customers read from
// ClickHouse: their ledger entries (existing decisions, the fires that
// feed re-eligibility and caps), their attributes (consent, time zone) and
// their suppressions. The Recorder and the backfill's preview load them
// the same way, so a preview is the decision apply records.
type Facts struct {
	// Existing are the ledger entries of the batch's campaigns (and, with
	// global caps, of every campaign) for its customers, by key.
	Existing   map[string]*Entry
	Attributes map[string]map[string]any
	Suppressed map[string]*Suppression
	history    map[string][]fire // by campaign \x00 customer
	others     map[string][]Sent // by customer: fires of every campaign
	global     bool
	campaigns  map[string]*Campaign // by id, for the groups of other campaigns' fires
}

type fire struct {
	key     string
	eventMs uint64
}

// LoadFacts reads the facts for customers of campaigns (ids) among cs.
// attrs may be nil (no attributes: consent fails, the default time zone
// applies).
func LoadFacts(ctx context.Context, conn *chdb.Conn, ledger *Ledger, attrs AttributeSource, cs map[string]*Campaign, campaigns, customers []string) (*Facts, error) {
	f := &Facts{history: map[string][]fire{}, others: map[string][]Sent{}, campaigns: cs}
	for _, id := range campaigns {
		if c := cs[id]; c != nil && c.Policy != nil && len(c.Policy.Caps) > 0 {
			f.global = true
		}
	}
	// The attributes and suppressions are read beside the ledger: the
	// path from qualification to webhook keeps one round trip here.
	type attrResult struct {
		m   map[string]map[string]any
		err error
	}
	attrc := make(chan attrResult, 1)
	go func() {
		if attrs == nil || len(customers) == 0 {
			attrc <- attrResult{m: map[string]map[string]any{}}
			return
		}
		m, err := attrs.Attributes(ctx, customers)
		attrc <- attrResult{m, err}
	}()
	type suppResult struct {
		m   map[string]*Suppression
		err error
	}
	suppc := make(chan suppResult, 1)
	go func() {
		m, err := readSuppressions(ctx, conn, customers)
		suppc <- suppResult{m, err}
	}()
	var err error
	if f.global {
		f.Existing, err = ledger.ByCustomersAll(ctx, customers)
	} else {
		f.Existing, err = ledger.ByCustomers(ctx, campaigns, customers)
	}
	a, sp := <-attrc, <-suppc
	if err != nil {
		return nil, err
	}
	if sp.err != nil {
		return nil, sp.err
	}
	f.Suppressed = sp.m
	if a.err != nil {
		return nil, a.err
	}
	f.Attributes = a.m
	for _, e := range f.Existing {
		if e.Fires() {
			f.add(e.CampaignID, e.CustomerID, e.Key, e.QualifiedEventTimeMs)
		}
	}
	return f, nil
}

func (f *Facts) add(campaign, customer, key string, eventMs uint64) {
	k := campaign + "\x00" + customer
	f.history[k] = append(f.history[k], fire{key: key, eventMs: eventMs})
	var groups []string
	if c := f.campaigns[campaign]; c != nil {
		groups = c.Groups
	}
	f.others[customer] = append(f.others[customer], Sent{Campaign: campaign, Groups: groups, EventMs: eventMs})
}

// Input builds the decision input of q.
func (f *Facts) Input(c *Campaign, q Qualification, nowMs, watermarkMs uint64) Input {
	key := q.Key()
	in := Input{Campaign: c, Q: q, Existing: f.Existing[key], NowMs: nowMs, WatermarkMs: watermarkMs,
		Attributes: f.Attributes[q.CustomerID], Suppression: f.Suppressed[q.CustomerID]}
	for _, h := range f.history[q.CampaignID+"\x00"+q.CustomerID] {
		if h.key != key {
			in.History = append(in.History, h.eventMs)
		}
	}
	if f.global {
		for _, o := range f.others[q.CustomerID] {
			if o.Campaign != q.CampaignID {
				in.Others = append(in.Others, o)
			}
		}
	}
	return in
}

// Fired counts a new fire of q for the decisions after it.
func (f *Facts) Fired(c *Campaign, q Qualification) {
	f.add(c.ID, q.CustomerID, q.Key(), q.EventTimeMs)
}

// Control is what a control recorded about one ledger entry, kept beside
// the ledger in send_ledger_controls.
type Control struct {
	Key, CampaignID, CustomerID string
	// Control is the reason it records: quiet_hours (a deferral),
	// capped_global, suppressed, no_consent, template_error.
	Control     string
	Detail      string
	ReleaseAtMs uint64
}

// controlOf returns the control row a new entry needs, if any.
func controlOf(e *Entry) (Control, bool) {
	if e.Detail == "" && e.ReleaseAtMs == 0 {
		return Control{}, false
	}
	ctl := e.Reason
	if e.ReleaseAtMs > 0 {
		ctl = ReasonQuietHours
	}
	return Control{Key: e.Key, CampaignID: e.CampaignID, CustomerID: e.CustomerID, Control: ctl, Detail: e.Detail, ReleaseAtMs: e.ReleaseAtMs}, true
}

// InsertControls writes control rows.
func (l *Ledger) InsertControls(ctx context.Context, cs []Control) error {
	if len(cs) == 0 {
		return nil
	}
	batch, err := l.conn.PrepareBatch(ctx, qInsertControls)
	if err != nil {
		return fmt.Errorf("prepare ledger controls insert: %w", err)
	}
	now := chdb.NowMs()
	for _, c := range cs {
		if err := batch.Append(c.Key, c.CampaignID, c.CustomerID, c.Control, c.Detail, c.ReleaseAtMs, now, time.UnixMilli(int64(now))); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append ledger control: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d ledger controls: %w", len(cs), err)
	}
	return nil
}

// Controls fills ReleaseAtMs and Detail of entries from
// send_ledger_controls.
func (l *Ledger) Controls(ctx context.Context, entries []*Entry) error {
	if len(entries) == 0 {
		return nil
	}
	byKey := make(map[string]*Entry, len(entries))
	ks := make([]string, 0, len(entries))
	for _, e := range entries {
		byKey[e.Key] = e
		ks = append(ks, e.Key)
	}
	err := l.conn.Each(ctx, qControls, []any{chdb.Set(ks)}, func(rows chdb.Rows) error {
		var (
			k, detail string
			release   uint64
		)
		if err := rows.Scan(&k, &detail, &release); err != nil {
			return err
		}
		if e := byKey[k]; e != nil {
			e.Detail, e.ReleaseAtMs = detail, release
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read ledger controls: %w", err)
	}
	return nil
}

// readSuppressions returns the active suppressions of customers.
func readSuppressions(ctx context.Context, conn *chdb.Conn, customers []string) (map[string]*Suppression, error) {
	if len(customers) == 0 {
		return map[string]*Suppression{}, nil
	}
	m, _, err := scanSuppressions(ctx, conn, qSuppressions, chdb.Set(customers))
	for k, s := range m {
		if s == nil {
			delete(m, k)
		}
	}
	return m, err
}

// suppressionsSince returns the suppression changes stamped at or after
// sinceMs (a lifted suppression has a nil value), and the newest stamp.
func suppressionsSince(ctx context.Context, conn *chdb.Conn, sinceMs uint64) (map[string]*Suppression, uint64, error) {
	return scanSuppressions(ctx, conn, qSuppressionsSince, sinceMs)
}

func scanSuppressions(ctx context.Context, conn *chdb.Conn, q string, args ...any) (map[string]*Suppression, uint64, error) {
	out := map[string]*Suppression{}
	var newest uint64
	err := conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		var (
			cust, reason, source string
			active               uint8
			at, updated          uint64
		)
		if err := rows.Scan(&cust, &active, &reason, &source, &at, &updated); err != nil {
			return err
		}
		newest = max(newest, updated)
		out[cust] = nil
		if active == 1 {
			out[cust] = &Suppression{Reason: reason, Source: source, AtMs: at}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read suppressions: %w", err)
	}
	return out, newest, nil
}
