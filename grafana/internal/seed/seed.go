package seed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
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
type Transition = materialize.Transition

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
type Run = backfill.Run

// Completeness is an audience_completeness row.
type Completeness = materialize.AudienceCompleteness

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

// generate builds the dataset's rows except the events (see Seed).
func generate(c Config) *Data {
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
	d := generate(c)
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
	dead := make([]trigger.DeadLetter, len(d.DeliveryDeadLetters))
	for i, dl := range d.DeliveryDeadLetters {
		dead[i] = trigger.DeadLetter{Key: dl.LedgerKey, CampaignID: dl.CampaignID, CustomerID: dl.CustomerID, DestinationID: dl.DestinationID,
			Destination: "webhook:https://example.invalid/hook", Payload: "{}", Attempts: 8, LastStatus: 503, LastError: "503 Service Unavailable",
			State: dl.State, DeadAtMs: dl.DeadAtMs, UpdatedMs: dl.UpdatedAtMs}
	}
	if err := trigger.InsertDeadLetters(ctx, conn, dead); err != nil {
		return fmt.Errorf("seed delivery dead letters: %w", err)
	}
	return nil
}

func (d *Data) insertEntities(ctx context.Context, conn *chdb.Conn) error {
	auds := make([]materialize.AppliedAudience, len(d.Audiences))
	for i, a := range d.Audiences {
		auds[i] = materialize.AppliedAudience{ID: a.ID, Name: a.Name, Condition: "1", Version: "v1", Active: a.Active, AppliedAtMs: ms(d.Config.From)}
	}
	if err := materialize.InsertAudiences(ctx, conn, auds); err != nil {
		return fmt.Errorf("seed audiences: %w", err)
	}
	camps := make([]*trigger.Campaign, len(d.Campaigns))
	for i, c := range d.Campaigns {
		camps[i] = &trigger.Campaign{ID: c.ID, Name: c.Name, Version: "v1", Active: c.Active}
	}
	if err := trigger.InsertCampaigns(ctx, conn, camps, ms(d.Config.From)); err != nil {
		return fmt.Errorf("seed campaigns: %w", err)
	}
	return nil
}

// batchRows bounds one insert.
const batchRows = 200_000

// InsertTransitions writes transitions to audience_transitions, as the
// evaluator does.
func InsertTransitions(ctx context.Context, conn *chdb.Conn, ts []Transition) error {
	for start := 0; start < len(ts); start += batchRows {
		if err := materialize.InsertTransitions(ctx, conn, ts[start:min(start+batchRows, len(ts))]); err != nil {
			return fmt.Errorf("seed transitions: %w", err)
		}
	}
	return nil
}

func (d *Data) insertLedger(ctx context.Context, conn *chdb.Conn) error {
	ledger := trigger.NewLedger(conn)
	for start := 0; start < len(d.Ledger); start += batchRows {
		var entries []*trigger.Entry
		for _, l := range d.Ledger[start:min(start+batchRows, len(d.Ledger))] {
			entries = append(entries, &trigger.Entry{Key: l.Key, CampaignID: l.CampaignID, CustomerID: l.CustomerID, AudienceID: l.AudienceID,
				Episode: l.Episode, Decision: l.Decision, Reason: l.Reason,
				QualifiedEventTimeMs: l.QualifiedEventTimeMs, QualifiedIngestTimeMs: l.QualifiedIngestTimeMs, DerivedAtMs: l.DerivedAtMs,
				DetectedAtMs: l.DetectedAtMs, SentAtMs: l.SentAtMs, DeliveryState: l.DeliveryState, Attempts: 1,
				Origin: "poller", Lane: l.Lane, UpdatedAtMs: l.DetectedAtMs + l.SentAtMs})
		}
		if err := ledger.Insert(ctx, entries); err != nil {
			return fmt.Errorf("seed ledger: %w", err)
		}
	}
	return nil
}

// insertEvents writes Config.Events events in columnar batches; they are
// generated here rather than in generate so that a benchmark's millions
// never sit in memory at once.
func (d *Data) insertEvents(ctx context.Context, conn *chdb.Conn) error {
	c := d.Config
	rng := rand.New(rand.NewPCG(c.Seed, 0x6576656e))
	from, span := ms(c.From), uint64(c.Span.Milliseconds())
	var rows ingest.EventRows
	for start := 0; start < c.Events; start += batchRows {
		n := min(batchRows, c.Events-start)
		rows.Reset()
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
			rows.Add(&ingest.Event{MessageID: e.MessageID, Type: ingest.TypeTrack, UserID: e.CustomerID, Event: "page_view",
				Timestamp: time.UnixMilli(int64(e.EventTimeMs)), ReceivedAt: time.UnixMilli(int64(e.ReceivedAtMs))}, e.Lane, "", 0, 0)
			rows.IngestTimeMs[i] = e.IngestMs
			if c.Keep {
				d.Events = append(d.Events, e)
			}
		}
		if err := rows.InsertLoaded(ctx, conn); err != nil {
			return fmt.Errorf("seed events: %w", err)
		}
		d.EventCount += n
	}
	return nil
}

func (d *Data) insertRest(ctx context.Context, conn *chdb.Conn) error {
	for _, p := range d.Progress {
		row := ingest.Progress{Lane: p.Lane, Topic: p.Topic, Partition: p.Partition, CommittedOffset: p.Committed, HighWatermark: p.High, WatermarkMs: p.WatermarkMs}
		if err := ingest.InsertProgress(ctx, conn, []ingest.Progress{row}, p.UpdatedAtMs); err != nil {
			return fmt.Errorf("seed progress: %w", err)
		}
	}
	dls := make([]ingest.DeadLetter, len(d.DeadLetters))
	for i, dl := range d.DeadLetters {
		dls[i] = ingest.DeadLetter{Topic: dl.Topic, Partition: dl.Partition, Offset: dl.Offset, Lane: dl.Lane, Reason: dl.Reason, Raw: "{}", AtMs: dl.AtMs}
	}
	if err := ingest.InsertDeadLetters(ctx, conn, dls); err != nil {
		return fmt.Errorf("seed dead letters: %w", err)
	}
	if err := insertCompleteness(ctx, conn, d.Completeness); err != nil {
		return err
	}
	return insertRuns(ctx, conn, d.Runs)
}

// insertCompleteness writes audience_completeness rows, as the evaluator
// does.
func insertCompleteness(ctx context.Context, conn *chdb.Conn, rows []Completeness) error {
	if err := materialize.InsertCompleteness(ctx, conn, rows); err != nil {
		return fmt.Errorf("seed audience completeness: %w", err)
	}
	return nil
}

// insertRuns writes backfill runs, as the backfill records them.
func insertRuns(ctx context.Context, conn *chdb.Conn, runs []Run) error {
	if err := backfill.InsertRuns(ctx, conn, runs); err != nil {
		return fmt.Errorf("seed backfill runs: %w", err)
	}
	return nil
}
