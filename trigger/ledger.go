package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Delivery states of a ledger entry.
const (
	StatePending   = "pending"   // decided to fire, not delivered yet
	StateDelivered = "delivered" // every destination acknowledged
	StateFailed    = "failed"    // an attempt failed; retrying
	StateDead      = "dead"      // retries exhausted: in trigger_dead_letters
	StateDisabled  = "disabled"  // a destination answered 410 Gone: in trigger_dead_letters
	StateSkipped   = "skipped"   // the decision was skip: nothing to deliver
	// StateDeferred is a fire held until its release time (the end of the
	// customer's quiet hours, in send_ledger_controls); then it is pending.
	StateDeferred = "deferred"
	// StateSuppressed is a fire not sent because the customer was
	// suppressed between the decision and the send.
	StateSuppressed = "suppressed"
)

// Origins of ledger entries.
const (
	OriginPoller   = "poller"
	OriginBackfill = "backfill"
)

// Qualification is one customer qualifying for one campaign: an audience
// transition, or an event matching an event trigger.
type Qualification struct {
	CampaignID string
	CustomerID string
	// AudienceID is set for audience triggers.
	AudienceID string
	// Episode is the audience episode number, or the triggering message id.
	Episode string
	// MessageID is the message that caused the qualification.
	MessageID string
	Lane      string
	// Event, Properties and Context are the triggering event's name,
	// properties and context (JSON), for event triggers.
	Event      string
	Properties string
	Context    string
	// EventTimeMs is the qualification's event time, IngestTimeMs when
	// its event was loaded, DerivedAtMs when it became visible as a
	// qualification (the transition's derivation, or the event's ingest).
	EventTimeMs, IngestTimeMs, DerivedAtMs uint64
}

// Key is the ledger key and webhook id of q.
func (q Qualification) Key() string { return ledgerKey(q.CampaignID, q.CustomerID, q.Episode) }

// ledgerKey is the deterministic ledger key of (campaign, customer,
// episode), which is also the webhook id: "msg_" and 32 hex digits of a
// SHA-256 over the three values separated by NUL bytes (which none of them
// can contain ambiguously). Any process computing it for the same
// qualification gets the same id, so a re-sent webhook always carries the
// id the receiver saw first.
func ledgerKey(campaignID, customerID, episode string) string {
	h := sha256.New()
	h.Write([]byte(campaignID))
	h.Write([]byte{0})
	h.Write([]byte(customerID))
	h.Write([]byte{0})
	h.Write([]byte(episode))
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Entry is one ledger entry: the decision about one qualification and
// where its delivery stands.
type Entry struct {
	Key, CampaignID, CustomerID, AudienceID, Episode string
	Decision, Reason                                 string
	QualifiedEventTimeMs, QualifiedIngestTimeMs      uint64
	DerivedAtMs, DetectedAtMs, SentAtMs              uint64
	DeliveryState                                    string
	Attempts                                         uint32
	LastError, Origin, Lane                          string
	// UpdatedAtMs is the version of the entry's newest row.
	UpdatedAtMs uint64
	// ReleaseAtMs and Detail are kept beside the ledger, in
	// send_ledger_controls: when a deferred fire may be sent, and what a
	// control recorded (the cap window, the suppression's reason). They
	// are set on new entries and on entries read by Ledger.Controls.
	ReleaseAtMs uint64
	Detail      string
}

// Fires reports whether the entry's decision sends something.
func (e *Entry) Fires() bool { return Action(e.Decision).Fires() }

// Open reports whether the entry still has a delivery to make.
func (e *Entry) Open() bool {
	return e.Fires() && (e.DeliveryState == StatePending || e.DeliveryState == StateFailed)
}

// next returns a copy of e as a new version: updated_at_ms strictly
// increases per key, so the newest row is never ambiguous, even for two
// updates within one millisecond or after a restart on a slower clock.
func (e *Entry) next(nowMs uint64) *Entry {
	c := *e
	c.UpdatedAtMs = max(nowMs, e.UpdatedAtMs+1)
	return &c
}

// newEntry builds the first ledger row of a decided qualification.
func newEntry(q Qualification, d Decision, nowMs uint64, origin string) *Entry {
	state := StatePending
	switch {
	case !d.Action.Fires():
		state = StateSkipped
	case d.ReleaseAtMs > 0:
		state = StateDeferred
	}
	return &Entry{
		Key: q.Key(), CampaignID: q.CampaignID, CustomerID: q.CustomerID, AudienceID: q.AudienceID, Episode: q.Episode,
		Decision: string(d.Action), Reason: d.Reason,
		QualifiedEventTimeMs: q.EventTimeMs, QualifiedIngestTimeMs: q.IngestTimeMs, DerivedAtMs: q.DerivedAtMs,
		DetectedAtMs: nowMs, DeliveryState: state, Origin: origin, Lane: q.Lane, UpdatedAtMs: nowMs,
		ReleaseAtMs: d.ReleaseAtMs, Detail: d.Detail,
	}
}

// Ledger reads and writes the send ledger and the payload table.
type Ledger struct {
	conn *chdb.Conn
}

// NewLedger returns the ledger on conn.
func NewLedger(conn *chdb.Conn) *Ledger { return &Ledger{conn: conn} }

// ByCustomers returns the newest state of every entry of the given
// customers for the given campaigns, by key.
func (l *Ledger) ByCustomers(ctx context.Context, campaignIDs, customerIDs []string) (map[string]*Entry, error) {
	if len(campaignIDs) == 0 || len(customerIDs) == 0 {
		return map[string]*Entry{}, nil
	}
	return l.query(ctx, "read ledger by customer", qLedgerByCustomers, chdb.Set(campaignIDs), chdb.Set(customerIDs))
}

// ByCustomersAll returns the newest state of every entry of the given
// customers, of every campaign.
func (l *Ledger) ByCustomersAll(ctx context.Context, customerIDs []string) (map[string]*Entry, error) {
	if len(customerIDs) == 0 {
		return map[string]*Entry{}, nil
	}
	return l.query(ctx, "read ledger of customers", qLedgerByCustomersAll, chdb.Set(customerIDs))
}

// ByKeys returns the newest state of the given entries.
func (l *Ledger) ByKeys(ctx context.Context, keys []string) (map[string]*Entry, error) {
	if len(keys) == 0 {
		return map[string]*Entry{}, nil
	}
	return l.query(ctx, "read ledger by key", qLedgerByKeys, chdb.Set(keys))
}

// Open returns up to limit fires detected since sinceMs whose delivery has
// not ended, for the customers of the owned shards, in (detection time,
// key) order after the given position (0 and "" for the first page).
func (l *Ledger) Open(ctx context.Context, sinceMs uint64, shardCount int, owned []int32, afterMs uint64, afterKey string, limit int) ([]*Entry, error) {
	filter, fargs := shardFilter(shardCount, owned)
	args := append([]any{time.UnixMilli(int64(sinceMs)).Unix()}, fargs...)
	args = append(args, afterMs, afterKey, uint64(limit))
	m, err := l.query(ctx, "read open deliveries", fmt.Sprintf(qLedgerPending, filter), args...)
	if err != nil {
		return nil, err
	}
	out := make([]*Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DetectedAtMs != out[j].DetectedAtMs {
			return out[i].DetectedAtMs < out[j].DetectedAtMs
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

func (l *Ledger) query(ctx context.Context, what, q string, args ...any) (map[string]*Entry, error) {
	out := map[string]*Entry{}
	err := l.conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		e := &Entry{}
		if err := rows.Scan(&e.Key, &e.CampaignID, &e.CustomerID, &e.AudienceID, &e.Episode, &e.Decision, &e.Reason,
			&e.QualifiedEventTimeMs, &e.QualifiedIngestTimeMs, &e.DerivedAtMs, &e.DetectedAtMs, &e.SentAtMs,
			&e.DeliveryState, &e.Attempts, &e.LastError, &e.Origin, &e.Lane, &e.UpdatedAtMs); err != nil {
			return err
		}
		out[e.Key] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Counts are one campaign's ledger entries: Decided every qualification
// decided (fire or skip), Fired those decided to fire, late or not.
type Counts struct {
	Decided, Fired uint64
}

// Count counts campaignID's ledger entries. A key counts once however
// many versions of its entry are stored, so merges do not change it.
func (l *Ledger) Count(ctx context.Context, campaignID string) (Counts, error) {
	var c Counts
	err := l.conn.QueryRow(ctx, `SELECT uniqExact(ledger_key), uniqExactIf(ledger_key, decision IN ('fire', 'fire_late'))
FROM (SELECT ledger_key, argMax(decision, updated_at_ms) AS decision FROM send_ledger WHERE campaign_id = ? GROUP BY ledger_key)`, campaignID).Scan(&c.Decided, &c.Fired)
	if err != nil {
		return Counts{}, fmt.Errorf("count the ledger entries of %s: %w", campaignID, err)
	}
	return c, nil
}

// FiredQualifiedAt maps the key of every entry decided to fire, late or
// not, whose qualifying event time is in [fromMs, toMs) to that time.
func (l *Ledger) FiredQualifiedAt(ctx context.Context, fromMs, toMs uint64) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := l.conn.Each(ctx, `SELECT ledger_key, qualified_event_time_ms FROM send_ledger FINAL
WHERE decision IN ('fire', 'fire_late') AND qualified_event_time_ms >= ? AND qualified_event_time_ms < ?`, []any{fromMs, toMs},
		func(rows chdb.Rows) error {
			var key string
			var ev uint64
			if err := rows.Scan(&key, &ev); err != nil {
				return err
			}
			out[key] = ev
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read the fired entries: %w", err)
	}
	return out, nil
}

// Insert writes entries' rows in one insert.
func (l *Ledger) Insert(ctx context.Context, entries []*Entry) error {
	if len(entries) == 0 {
		return nil
	}
	batch, err := l.conn.PrepareBatch(ctx, qInsertLedger)
	if err != nil {
		return fmt.Errorf("prepare ledger insert: %w", err)
	}
	for _, e := range entries {
		if err := batch.Append(e.Key, e.CampaignID, e.CustomerID, e.AudienceID, e.Episode, e.Decision, e.Reason,
			e.QualifiedEventTimeMs, e.QualifiedIngestTimeMs, e.DerivedAtMs, e.DetectedAtMs, e.SentAtMs,
			e.DeliveryState, e.Attempts, e.LastError, e.Origin, e.Lane, e.UpdatedAtMs,
			time.UnixMilli(int64(e.DetectedAtMs))); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append ledger row: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d ledger rows: %w", len(entries), err)
	}
	return nil
}

// Payload is the body sent for one ledger key.
type Payload struct {
	Key        string
	CampaignID string
	Body       []byte
}

// InsertPayloads writes payloads; it runs before the ledger rows of the
// same keys are written, so an entry never exists without its body.
func (l *Ledger) InsertPayloads(ctx context.Context, ps []Payload, nowMs uint64) error {
	if len(ps) == 0 {
		return nil
	}
	batch, err := l.conn.PrepareBatch(ctx, qInsertPayloads)
	if err != nil {
		return fmt.Errorf("prepare payload insert: %w", err)
	}
	at := time.UnixMilli(int64(nowMs))
	for _, p := range ps {
		if err := batch.Append(p.Key, p.CampaignID, string(p.Body), nowMs, at); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append payload: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d payloads: %w", len(ps), err)
	}
	return nil
}

// Payloads returns the stored bodies of keys.
func (l *Ledger) Payloads(ctx context.Context, keys []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(keys) == 0 {
		return out, nil
	}
	err := l.conn.Each(ctx, qPayloads, []any{chdb.Set(keys)}, func(rows chdb.Rows) error {
		var k, body string
		if err := rows.Scan(&k, &body); err != nil {
			return err
		}
		out[k] = []byte(body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read payloads: %w", err)
	}
	return out, nil
}

// WaitForInserts waits until the ledger and payload inserts that were
// running on the server when it was called have finished, or ctx ends. A
// poller that takes over customers (after a restart or a rebalance) calls it
// before reading the ledger, so an insert its predecessor sent just before
// dying is visible before anything is decided again.
func (l *Ledger) WaitForInserts(ctx context.Context) error {
	running, err := l.runningInserts(ctx)
	if err != nil {
		return err
	}
	for len(running) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		now, err := l.runningInserts(ctx)
		if err != nil {
			return err
		}
		for id := range running {
			if !now[id] {
				delete(running, id)
			}
		}
	}
	return nil
}

func (l *Ledger) runningInserts(ctx context.Context) (map[string]bool, error) {
	ids, err := l.conn.Strings(ctx, qRunningInserts)
	if err != nil {
		return nil, fmt.Errorf("list running ledger inserts: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// episodeOf formats an audience episode number as the ledger's episode.
func episodeOf(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
