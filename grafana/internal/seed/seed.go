package seed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Config shapes a dataset. The same Config always gives the same rows.
type Config struct {
	Seed      uint64
	Customers int
	Events    int
	// Audiences and Campaigns are how many active ones; one inactive
	// audience and campaign are added to each.
	Audiences int
	Campaigns int
	// From and Span place every event time in [From, From+Span).
	From time.Time
	Span time.Duration
	// Keep keeps the events in Data (for oracles); big benchmark seeds leave
	// it off and only insert them.
	Keep bool
}

// Entity is an audience or a campaign row.
type Entity struct {
	ID, Name string
	Active   bool
	// Audience is the audience a campaign fires on.
	Audience string
}

// Transition is an audience_transitions row.
type Transition struct {
	AudienceID, CustomerID string
	Episode                uint32
	Kind                   string
	EventTimeMs            uint64
	IngestTimeMs           uint64
	DerivedAtMs            uint64
	MessageID, Lane        string
}

// Ledger is a send_ledger row.
type Ledger struct {
	Key, CampaignID, CustomerID, AudienceID, Episode string
	Decision, Reason                                 string
	QualifiedEventTimeMs, QualifiedIngestTimeMs      uint64
	DerivedAtMs, DetectedAtMs, SentAtMs              uint64
	DeliveryState, Lane                              string
}

// Event is the part of an events row the plugin reads.
type Event struct {
	MessageID, CustomerID, Lane         string
	EventTimeMs, ReceivedAtMs, IngestMs uint64
}

// Progress is a loader_progress row.
type Progress struct {
	Lane, Topic              string
	Partition                int32
	Committed, High          int64
	WatermarkMs, UpdatedAtMs uint64
}

// DeadLetter is a dead_letters row.
type DeadLetter struct {
	Topic        string
	Partition    int32
	Offset       int64
	Lane, Reason string
	AtMs         uint64
}

// Run is a backfill_runs row.
type Run struct {
	RunID, PlanID, State             string
	StartedAtMs, FinishedAtMs        uint64
	WindowFromMs, WindowToMs         uint64
	EventsReingested, Fired, Skipped uint64
	UpdatedAtMs                      uint64
}

// Completeness is an audience_completeness row.
type Completeness struct {
	AudienceID          string
	Lanes               []string
	Direction, HeldBy   string
	CompleteMs, EagerMs uint64
	UpdatedAtMs         uint64
}

// DeliveryDeadLetter is a trigger_dead_letters row.
type DeliveryDeadLetter struct {
	LedgerKey, CampaignID, CustomerID, DestinationID, State string
	DeadAtMs, UpdatedAtMs                                   uint64
}

// Data is what Seed inserted, for oracles. Transitions holds each key once
// (Seed inserts some twice, as a replayed evaluation would).
type Data struct {
	Config      Config
	Audiences   []Entity
	Campaigns   []Entity
	Transitions []Transition
	Ledger      []Ledger
	Events      []Event
	Progress    []Progress
	DeadLetters []DeadLetter
	Runs        []Run
	// Completeness holds every row inserted, older ones included: the
	// newest per audience is the one readers must show.
	Completeness []Completeness
	// DeliveryDeadLetters are deliveries given up (only InsertState
	// writes them).
	DeliveryDeadLetters []DeliveryDeadLetter
	// EventCount is how many events were inserted, kept or not.
	EventCount int
}

// Lanes of the generated events.
var Lanes = []string{"web", "server", "backfill"}

func ms(t time.Time) uint64 { return uint64(t.UnixMilli()) }

// Generate builds the dataset's rows except the events (see Seed).
func Generate(c Config) *Data {
	rng := rand.New(rand.NewPCG(c.Seed, 0x7469646c))
	d := &Data{Config: c}
	for i := 0; i < c.Audiences; i++ {
		d.Audiences = append(d.Audiences, Entity{ID: fmt.Sprintf("aud_%d", i), Name: fmt.Sprintf("Audience %d", i), Active: true})
	}
	d.Audiences = append(d.Audiences, Entity{ID: "aud_retired", Name: "Retired", Active: false})
	for i := 0; i < c.Campaigns; i++ {
		aud := d.Audiences[i%max(c.Audiences, 1)].ID
		d.Campaigns = append(d.Campaigns, Entity{ID: fmt.Sprintf("camp_%d", i), Name: fmt.Sprintf("Campaign %d", i), Active: true, Audience: aud})
	}
	d.Campaigns = append(d.Campaigns, Entity{ID: "camp_retired", Name: "Retired campaign", Active: false})

	from := ms(c.From)
	span := uint64(c.Span.Milliseconds())
	// Qualifications: about a third of the customers enter each audience
	// once, a third of those leave again, and some of those come back.
	campaignsOf := map[string][]Entity{}
	for _, cp := range d.Campaigns[:len(d.Campaigns)-1] {
		campaignsOf[cp.Audience] = append(campaignsOf[cp.Audience], cp)
	}
	for _, a := range d.Audiences[:c.Audiences] {
		for cust := 0; cust < c.Customers; cust++ {
			if rng.IntN(3) != 0 {
				continue
			}
			customer := fmt.Sprintf("cust_%d", cust)
			// Some entries happen before From's range starts (the size
			// baseline), the rest inside it.
			t := from - span/4 + rng.Uint64N(span+span/4)
			for episode := uint32(1); episode <= 2; episode++ {
				lane := Lanes[rng.IntN(len(Lanes))]
				entered := transition(rng, a.ID, customer, episode, "entered", t, lane)
				d.Transitions = append(d.Transitions, entered)
				for _, cp := range campaignsOf[a.ID] {
					d.Ledger = append(d.Ledger, ledger(rng, cp, entered))
				}
				if rng.IntN(3) != 0 {
					break
				}
				t += 1 + rng.Uint64N(span/8+1)
				d.Transitions = append(d.Transitions, transition(rng, a.ID, customer, episode, "exited", t, lane))
				if rng.IntN(2) == 0 {
					break
				}
				t += 1 + rng.Uint64N(span/8+1)
			}
		}
	}
	now := from + span
	for i, lane := range Lanes {
		for p := int32(0); p < 2; p++ {
			d.Progress = append(d.Progress, Progress{
				Lane: lane, Topic: "events." + lane, Partition: p,
				Committed: int64(1000*(i+1)) + int64(p), High: int64(1000*(i+1)) + int64(p) + int64(10*(i+1)),
				WatermarkMs: now - uint64(1000*(i+1)) - uint64(p)*500, UpdatedAtMs: now - 100,
			})
		}
	}
	for i := 0; i < 7; i++ {
		lane := append([]string{"collector"}, Lanes...)[i%4]
		d.DeadLetters = append(d.DeadLetters, DeadLetter{Topic: "events.dlq", Partition: 0, Offset: int64(i), Lane: lane, Reason: "missing field", AtMs: from + span/8*uint64(i+1)})
	}
	// Each active audience was evaluated twice; the newer record has the
	// server lane holding it back behind the web lane; readers must show
	// the newer one whether or not ClickHouse merged them.
	for i, a := range d.Audiences[:c.Audiences] {
		d.Completeness = append(d.Completeness,
			Completeness{AudienceID: a.ID, Lanes: []string{"web"}, Direction: "rising", CompleteMs: now - 60_000, EagerMs: now - 60_000, UpdatedAtMs: now - 50_000},
			Completeness{AudienceID: a.ID, Lanes: []string{"server", "web"}, Direction: "rising", HeldBy: "server",
				CompleteMs: now - 2000 - uint64(i)*1000, EagerMs: now - 1000, UpdatedAtMs: now - 500})
	}
	d.Runs = []Run{
		{RunID: "run_1", PlanID: "plan_a", State: "done", StartedAtMs: from + span/10, FinishedAtMs: from + span/10 + 90_000, WindowFromMs: from - span, WindowToMs: from, EventsReingested: 1200, Fired: 40, Skipped: 3, UpdatedAtMs: from + span/10 + 90_000},
		{RunID: "run_2", PlanID: "plan_b", State: "running", StartedAtMs: from + span/2, WindowFromMs: from, WindowToMs: from + span/4, EventsReingested: 300, Fired: 5, UpdatedAtMs: from + span/2 + 1000},
		{RunID: "run_0", PlanID: "plan_old", State: "done", StartedAtMs: from - 2*span, FinishedAtMs: from - 2*span + 1000, UpdatedAtMs: from - 2*span + 1000},
	}
	return d
}

func transition(rng *rand.Rand, aud, cust string, episode uint32, kind string, eventMs uint64, lane string) Transition {
	ingest := eventMs + 20 + rng.Uint64N(2000)
	return Transition{
		AudienceID: aud, CustomerID: cust, Episode: episode, Kind: kind,
		EventTimeMs: eventMs, IngestTimeMs: ingest, DerivedAtMs: ingest + 5 + rng.Uint64N(3000),
		MessageID: fmt.Sprintf("m_%s_%s_%d_%s", aud, cust, episode, kind), Lane: lane,
	}
}

var skipReasons = []string{"stale", "capped", "not_reeligible"}

func ledger(rng *rand.Rand, cp Entity, q Transition) Ledger {
	l := Ledger{
		Key: fmt.Sprintf("%s|%s|%d", cp.ID, q.CustomerID, q.Episode), CampaignID: cp.ID, CustomerID: q.CustomerID,
		AudienceID: q.AudienceID, Episode: fmt.Sprint(q.Episode),
		QualifiedEventTimeMs: q.EventTimeMs, QualifiedIngestTimeMs: q.IngestTimeMs,
		DerivedAtMs: q.DerivedAtMs, DetectedAtMs: q.DerivedAtMs + 50, Lane: q.Lane,
	}
	switch n := rng.IntN(100); {
	case n < 10:
		l.Decision, l.Reason, l.DeliveryState = "skip", skipReasons[rng.IntN(len(skipReasons))], "skipped"
	case n < 16:
		l.Decision, l.Reason = "fire_late", "late"
	default:
		l.Decision, l.Reason = "fire", "fresh"
	}
	if l.Decision != "skip" {
		switch n := rng.IntN(100); {
		case n < 4:
			l.DeliveryState = []string{"failed", "dead", "disabled"}[n%3]
		case n < 8:
			l.DeliveryState = "pending"
		default:
			l.DeliveryState, l.SentAtMs = "delivered", l.DetectedAtMs+10+rng.Uint64N(800)
		}
	}
	return l
}

// Seed generates c's dataset, inserts it and returns it.
func Seed(ctx context.Context, conn *chdb.Conn, c Config) (*Data, error) {
	d := Generate(c)
	if err := EnsureBackfillRuns(ctx, conn); err != nil {
		return nil, err
	}
	if err := d.insertEntities(ctx, conn); err != nil {
		return nil, err
	}
	if err := InsertTransitions(ctx, conn, d.Transitions); err != nil {
		return nil, err
	}
	// A replayed evaluation writes some keys again: readers must not count them twice.
	var replay []Transition
	for i := 0; i < len(d.Transitions); i += 7 {
		replay = append(replay, d.Transitions[i])
	}
	if err := InsertTransitions(ctx, conn, replay); err != nil {
		return nil, err
	}
	if err := d.insertLedger(ctx, conn); err != nil {
		return nil, err
	}
	if err := d.insertEvents(ctx, conn); err != nil {
		return nil, err
	}
	if err := d.insertRest(ctx, conn); err != nil {
		return nil, err
	}
	return d, nil
}

// InsertState writes every row of d except events: entities,
// transitions, ledger, loader progress, dead letters, completeness,
// backfill runs and delivery dead letters. Tests that need data dated
// relative to now build a Data by hand and insert it with this.
func (d *Data) InsertState(ctx context.Context, conn *chdb.Conn) error {
	if err := EnsureBackfillRuns(ctx, conn); err != nil {
		return err
	}
	if err := d.insertEntities(ctx, conn); err != nil {
		return err
	}
	if err := InsertTransitions(ctx, conn, d.Transitions); err != nil {
		return err
	}
	if err := d.insertLedger(ctx, conn); err != nil {
		return err
	}
	if err := d.insertRest(ctx, conn); err != nil {
		return err
	}
	b, err := conn.PrepareBatch(ctx, `INSERT INTO trigger_dead_letters (ledger_key, campaign_id, customer_id, destination_id, destination,
		payload, attempts, last_status, last_error, state, dead_at_ms, updated_at_ms, dead_at)`)
	if err != nil {
		return fmt.Errorf("prepare delivery dead letters: %w", err)
	}
	for _, dl := range d.DeliveryDeadLetters {
		if err := b.Append(dl.LedgerKey, dl.CampaignID, dl.CustomerID, dl.DestinationID, "webhook:https://example.invalid/hook",
			"{}", uint32(8), uint16(503), "503 Service Unavailable", dl.State, dl.DeadAtMs, dl.UpdatedAtMs, time.UnixMilli(int64(dl.DeadAtMs))); err != nil {
			return fmt.Errorf("append delivery dead letter: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert delivery dead letters: %w", err)
	}
	return nil
}

func (d *Data) insertEntities(ctx context.Context, conn *chdb.Conn) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO audiences (audience_id, name, definition, condition_sql, version, active, applied_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare audiences: %w", err)
	}
	for _, a := range d.Audiences {
		if err := b.Append(a.ID, a.Name, "", "1", "v1", boolByte(a.Active), ms(d.Config.From)); err != nil {
			return fmt.Errorf("append audience: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert audiences: %w", err)
	}
	b, err = conn.PrepareBatch(ctx, "INSERT INTO campaigns (campaign_id, name, definition, version, active, applied_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare campaigns: %w", err)
	}
	for _, c := range d.Campaigns {
		if err := b.Append(c.ID, c.Name, "", "v1", boolByte(c.Active), ms(d.Config.From)); err != nil {
			return fmt.Errorf("append campaign: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert campaigns: %w", err)
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// batchRows bounds one insert.
const batchRows = 200_000

// InsertTransitions writes transitions to audience_transitions.
func InsertTransitions(ctx context.Context, conn *chdb.Conn, ts []Transition) error {
	for start := 0; start < len(ts); start += batchRows {
		chunk := ts[start:min(start+batchRows, len(ts))]
		b, err := conn.PrepareBatch(ctx, "INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at)")
		if err != nil {
			return fmt.Errorf("prepare transitions: %w", err)
		}
		for _, t := range chunk {
			if err := b.Append(t.AudienceID, t.CustomerID, t.Episode, t.Kind, t.EventTimeMs, t.IngestTimeMs, t.DerivedAtMs, t.MessageID, t.Lane, time.UnixMilli(int64(t.DerivedAtMs))); err != nil {
				return fmt.Errorf("append transition: %w", err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert transitions: %w", err)
		}
	}
	return nil
}

func (d *Data) insertLedger(ctx context.Context, conn *chdb.Conn) error {
	for start := 0; start < len(d.Ledger); start += batchRows {
		b, err := conn.PrepareBatch(ctx, `INSERT INTO send_ledger (ledger_key, campaign_id, customer_id, audience_id, episode, decision, reason,
			qualified_event_time_ms, qualified_ingest_time_ms, derived_at_ms, detected_at_ms, sent_at_ms, delivery_state, attempts,
			last_error, origin, lane, updated_at_ms, detected_at)`)
		if err != nil {
			return fmt.Errorf("prepare ledger: %w", err)
		}
		for _, l := range d.Ledger[start:min(start+batchRows, len(d.Ledger))] {
			if err := b.Append(l.Key, l.CampaignID, l.CustomerID, l.AudienceID, l.Episode, l.Decision, l.Reason,
				l.QualifiedEventTimeMs, l.QualifiedIngestTimeMs, l.DerivedAtMs, l.DetectedAtMs, l.SentAtMs, l.DeliveryState, uint32(1),
				"", "poller", l.Lane, l.DetectedAtMs+l.SentAtMs, time.UnixMilli(int64(l.DetectedAtMs))); err != nil {
				return fmt.Errorf("append ledger: %w", err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert ledger: %w", err)
		}
	}
	return nil
}

// insertEvents writes Config.Events events in columnar batches; they are
// generated here rather than in Generate so that a benchmark's millions
// never sit in memory at once.
func (d *Data) insertEvents(ctx context.Context, conn *chdb.Conn) error {
	c := d.Config
	rng := rand.New(rand.NewPCG(c.Seed, 0x6576656e))
	from, span := ms(c.From), uint64(c.Span.Milliseconds())
	for start := 0; start < c.Events; start += batchRows {
		n := min(batchRows, c.Events-start)
		var (
			id, typ, cust, name, lane = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			evt                       = make([]time.Time, n)
			evtMs, recvMs, ingMs      = make([]uint64, n), make([]uint64, n), make([]uint64, n)
		)
		for i := 0; i < n; i++ {
			e := Event{
				MessageID:  fmt.Sprintf("msg_%d", start+i),
				CustomerID: fmt.Sprintf("cust_%d", rng.IntN(max(c.Customers, 1))),
				Lane:       Lanes[[]int{0, 0, 0, 1, 1, 2}[rng.IntN(6)]],
			}
			e.EventTimeMs = from + rng.Uint64N(span)
			e.ReceivedAtMs = e.EventTimeMs + rng.Uint64N(2000)
			if rng.IntN(100) == 0 {
				// A late arrival, as in an incident's backlog.
				e.ReceivedAtMs += 60_000 + rng.Uint64N(span/10+1)
			}
			e.IngestMs = e.ReceivedAtMs + 5 + rng.Uint64N(1500)
			id[i], typ[i], cust[i], name[i], lane[i] = e.MessageID, "track", e.CustomerID, "page_view", e.Lane
			evt[i] = time.UnixMilli(int64(e.EventTimeMs))
			evtMs[i], recvMs[i], ingMs[i] = e.EventTimeMs, e.ReceivedAtMs, e.IngestMs
			if c.Keep {
				d.Events = append(d.Events, e)
			}
		}
		b, err := conn.PrepareBatch(ctx, "INSERT INTO events (message_id, type, customer_id, event, event_time, event_time_ms, received_at_ms, ingest_time_ms, lane)")
		if err != nil {
			return fmt.Errorf("prepare events: %w", err)
		}
		for i, col := range []any{id, typ, cust, name, evt, evtMs, recvMs, ingMs, lane} {
			if err := b.Column(i).Append(col); err != nil {
				_ = b.Abort()
				return fmt.Errorf("append events column %d: %w", i, err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		d.EventCount += n
	}
	return nil
}

func (d *Data) insertRest(ctx context.Context, conn *chdb.Conn) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO loader_progress (lane, kafka_topic, kafka_partition, committed_offset, high_watermark, watermark_ms, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare progress: %w", err)
	}
	for _, p := range d.Progress {
		if err := b.Append(p.Lane, p.Topic, p.Partition, p.Committed, p.High, p.WatermarkMs, p.UpdatedAtMs); err != nil {
			return fmt.Errorf("append progress: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert progress: %w", err)
	}
	b, err = conn.PrepareBatch(ctx, "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, lane, reason, field, raw, received_at_ms, received_at)")
	if err != nil {
		return fmt.Errorf("prepare dead letters: %w", err)
	}
	for _, dl := range d.DeadLetters {
		if err := b.Append(dl.Topic, dl.Partition, dl.Offset, dl.Lane, dl.Reason, "", "{}", dl.AtMs, time.UnixMilli(int64(dl.AtMs))); err != nil {
			return fmt.Errorf("append dead letter: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert dead letters: %w", err)
	}
	if err := InsertCompleteness(ctx, conn, d.Completeness); err != nil {
		return err
	}
	return InsertRuns(ctx, conn, d.Runs)
}

// InsertCompleteness writes audience_completeness rows.
func InsertCompleteness(ctx context.Context, conn *chdb.Conn, rows []Completeness) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO audience_completeness (audience_id, lanes, direction, complete_ms, eager_ms, held_by, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare audience completeness: %w", err)
	}
	for _, c := range rows {
		if err := b.Append(c.AudienceID, c.Lanes, c.Direction, c.CompleteMs, c.EagerMs, c.HeldBy, c.UpdatedAtMs); err != nil {
			return fmt.Errorf("append audience completeness: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert audience completeness: %w", err)
	}
	return nil
}

// InsertRuns writes backfill runs.
func InsertRuns(ctx context.Context, conn *chdb.Conn, runs []Run) error {
	b, err := conn.PrepareBatch(ctx, `INSERT INTO backfill_runs (run_id, plan_id, state, started_at_ms, finished_at_ms, window_from_ms,
		window_to_ms, events_reingested, fired, skipped, updated_at_ms)`)
	if err != nil {
		return fmt.Errorf("prepare backfill runs: %w", err)
	}
	for _, r := range runs {
		if err := b.Append(r.RunID, r.PlanID, r.State, r.StartedAtMs, r.FinishedAtMs, r.WindowFromMs, r.WindowToMs, r.EventsReingested, r.Fired, r.Skipped, r.UpdatedAtMs); err != nil {
			return fmt.Errorf("append backfill run: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert backfill runs: %w", err)
	}
	return nil
}
