package backfill

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"
)

// planFormat is the version of the plan file layout.
const planFormat = 1

// Plan is what `tideline backfill plan` found: a window's missing records,
// late events, stale customers and unledgered qualifications. It is written
// as JSON and executed by Apply.
type Plan struct {
	Format int `json:"format"`
	// ID is a hash of the findings: two plans that found the same things
	// have the same ID, and applies of one plan share checkpoints.
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// Database and TopicPrefix name the deployment; apply refuses another.
	Database    string   `json:"clickhouse_database"`
	TopicPrefix string   `json:"topic_prefix"`
	Window      Window   `json:"window"`
	Lanes       []string `json:"lanes"`
	// Campaigns restricts the qualification part (empty: every campaign).
	Campaigns []string `json:"campaigns,omitempty"`
	// Source is "kafka" or the path of the archive the plan compared with.
	Source string `json:"source"`
	// LateAfterMs is the lateness threshold the findings used.
	LateAfterMs int64 `json:"late_after_ms"`

	LaneFindings   []LaneFinding         `json:"lanes_found"`
	Stale          StaleFindings         `json:"stale"`
	Qualifications QualificationFindings `json:"qualifications"`
	// Notes are caveats the summary repeats (a source that was not checked,
	// a window cut by retention).
	Notes []string `json:"notes,omitempty"`
}

// LaneFinding is one lane's events in the window.
type LaneFinding struct {
	Lane  string `json:"lane"`
	Topic string `json:"topic"`
	// InWindow is the number of records Kafka (or the archive) holds in the window.
	InWindow int64 `json:"in_window"`
	// Loaded is the number of those ClickHouse holds: their position is in
	// event_positions (or dead_letters), or their message is in events.
	Loaded int64 `json:"loaded"`
	// Missing is InWindow - Loaded: records neither whose position nor
	// whose messageId was loaded. Backlog of them are at or past the
	// loader's committed offset (the live loader has yet to reach them) and
	// Unavailable are no longer in the source.
	Missing     int64 `json:"missing"`
	Backlog     int64 `json:"backlog"`
	Unavailable int64 `json:"unavailable"`
	// Duplicates counts loaded records of the window that carry a message
	// another record of the window (or, for a record whose own position was
	// not loaded, any record) already delivered: client retries of one
	// messageId, a producer's redelivery. They are part of Loaded, never of
	// Missing, and apply re-ingests none of them.
	Duplicates int64 `json:"duplicate_deliveries"`
	// Redelivered counts extra loads of positions of the window: the same
	// record inserted again by a replayed batch or a second re-ingest.
	Redelivered int64 `json:"redelivered"`
	// Late counts loaded events whose ingest lagged their receipt by more
	// than the threshold; Lag is the distribution over every loaded event.
	Late       int64              `json:"late"`
	Lag        LagStats           `json:"lag"`
	Partitions []PartitionFinding `json:"partitions"`
}

// PartitionFinding is one partition's offsets.
type PartitionFinding struct {
	Partition int32 `json:"partition"`
	// Window is the offsets of the window in Kafka (for an archive: the
	// span of the archived offsets).
	Window Range `json:"window"`
	// LogStart is Kafka's oldest offset (0 for an archive).
	LogStart int64 `json:"log_start"`
	// Committed is the loader's committed offset (-1: unknown).
	Committed int64 `json:"loader_committed"`
	// Truncated is set when retention may have deleted records of the window.
	Truncated bool `json:"retention_truncated,omitempty"`
	// Missing lists the offsets in the window that ClickHouse does not hold.
	Missing Ranges `json:"missing"`
	// Duplicates lists the offsets whose position was not loaded but whose
	// message was, from another record: counted as duplicate deliveries.
	Duplicates Ranges `json:"duplicates,omitempty"`
}

// LagStats is a distribution of delays in milliseconds.
type LagStats struct {
	P50       int64       `json:"p50_ms"`
	P90       int64       `json:"p90_ms"`
	P99       int64       `json:"p99_ms"`
	Max       int64       `json:"max_ms"`
	Histogram []LagBucket `json:"histogram,omitempty"`
}

// LagBucket counts delays up to UpToMs (0: the open-ended last bucket).
type LagBucket struct {
	UpToMs int64 `json:"up_to_ms"`
	Count  int64 `json:"count"`
}

// StaleFindings are the customers whose state lagged or still differs.
type StaleFindings struct {
	// LateCustomers had at least one late event; StaleFor is the
	// distribution of each one's longest delay.
	LateCustomers int64    `json:"customers_with_late_events"`
	StaleFor      LagStats `json:"stale_for"`
	// MissingCustomers have events still missing from ClickHouse, the
	// oldest received at OldestMissing: their state is stale until applied.
	MissingCustomers int64     `json:"customers_with_missing_events"`
	OldestMissing    time.Time `json:"oldest_missing,omitzero"`
	// Examples are the customers stale the longest.
	Examples []StaleCustomer `json:"examples,omitempty"`
	// Derived is the replay comparison (absent when it was not run).
	Derived *StateFindings `json:"derived,omitempty"`
}

// StaleCustomer is one customer's worst delay in the window.
type StaleCustomer struct {
	CustomerID string `json:"customer_id"`
	Lane       string `json:"lane"`
	StaleForMs int64  `json:"stale_for_ms"`
	// Missing is set when the customer has events not loaded yet; StaleForMs
	// then runs until the plan was made.
	Missing bool `json:"missing,omitempty"`
}

// StateFindings compares materialized state with a replay of raw events.
type StateFindings struct {
	// Checked is the number of customers replayed.
	Checked int64 `json:"checked"`
	// Customers lists every customer whose attributes or memberships differ.
	Customers []string `json:"customers"`
	// Attributes counts customers with a differing attribute.
	Attributes int64 `json:"attributes"`
	// Audiences counts differing memberships per audience.
	Audiences []AudienceDiff `json:"audiences,omitempty"`
	// Examples show a few differences.
	Examples []StateDiff `json:"examples,omitempty"`
}

// AudienceDiff counts an audience's stale memberships.
type AudienceDiff struct {
	AudienceID string `json:"audience_id"`
	// ShouldEnter are customers the replay puts in the audience who are not
	// members; ShouldExit the reverse.
	ShouldEnter int64 `json:"should_enter"`
	ShouldExit  int64 `json:"should_exit"`
}

// StateDiff is one difference between materialized and replayed state.
type StateDiff struct {
	CustomerID string `json:"customer_id"`
	// Kind is "attribute" or "membership".
	Kind string `json:"kind"`
	// Name is the attribute name or the audience id.
	Name         string `json:"name"`
	Materialized string `json:"materialized"`
	Replayed     string `json:"replayed"`
}

// QualificationFindings are qualifications in the window without a send-ledger entry.
type QualificationFindings struct {
	// Checked is false when qualifications were not examined.
	Checked   bool              `json:"checked"`
	Campaigns []CampaignFinding `json:"campaigns,omitempty"`
	// Pending lists each unledgered qualification with the decision the
	// staleness policy would make at plan time.
	Pending []Qualification `json:"pending,omitempty"`
}

// CampaignFinding counts one campaign's qualifications in the window.
type CampaignFinding struct {
	CampaignID string `json:"campaign_id"`
	AudienceID string `json:"audience_id,omitempty"`
	// Qualified is the number of qualifications in the window, Ledgered
	// those with a ledger entry already.
	Qualified int64 `json:"qualified"`
	Ledgered  int64 `json:"ledgered"`
	// Decisions counts the pending ones by decision (fire, fire_late, skip)
	// and Reasons by decision:reason.
	Decisions map[string]int64 `json:"decisions"`
	Reasons   map[string]int64 `json:"reasons,omitempty"`
	// LeftToPoller counts pending qualifications a running poller has yet
	// to read: it decides them itself.
	LeftToPoller int64 `json:"left_to_poller,omitempty"`
	// Deferred counts the fires that would wait for the end of the
	// customers' quiet hours (the skips by control are in Reasons).
	Deferred int64 `json:"deferred,omitempty"`
	// Throttle, for a campaign with a webhook throttle, is how long its
	// immediate fires take to drain at that rate.
	Throttle *ThrottleEstimate `json:"throttle,omitempty"`
}

// ThrottleEstimate is the release of a campaign's fires at its throttle.
type ThrottleEstimate struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// Fires are the fires sent as soon as they are recorded (not deferred).
	Fires int64 `json:"fires"`
	// ReleaseSeconds is how long they take: (fires - burst) / rate.
	ReleaseSeconds float64 `json:"release_seconds"`
}

// Qualification is one customer qualifying for a campaign.
type Qualification struct {
	CampaignID string `json:"campaign_id"`
	CustomerID string `json:"customer_id"`
	AudienceID string `json:"audience_id,omitempty"`
	// Episode is the audience episode number, or the triggering message id.
	Episode string `json:"episode"`
	// MessageID caused the qualification; Event and Properties are the
	// triggering event of an event-triggered campaign.
	MessageID    string `json:"message_id,omitempty"`
	Event        string `json:"event,omitempty"`
	Properties   string `json:"properties,omitempty"`
	Context      string `json:"context,omitempty"`
	EventTimeMs  uint64 `json:"event_time_ms"`
	IngestTimeMs uint64 `json:"ingest_time_ms"`
	DerivedAtMs  uint64 `json:"derived_at_ms"`
	Lane         string `json:"lane,omitempty"`
	// Decision and Reason are what the staleness policy decides.
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	// Owner is who decides it: "backfill", or "poller" when a running
	// poller has yet to read it and will decide it itself.
	Owner string `json:"owner"`
}

// Owners of a pending qualification.
const (
	OwnerBackfill = "backfill"
	OwnerPoller   = "poller"
)

// Totals sums the lanes.
func (p *Plan) Totals() (inWindow, loaded, missing, backlog, unavailable, late int64) {
	for _, l := range p.LaneFindings {
		inWindow += l.InWindow
		loaded += l.Loaded
		missing += l.Missing
		backlog += l.Backlog
		unavailable += l.Unavailable
		late += l.Late
	}
	return
}

// Deliveries sums the lanes' duplicate deliveries and redelivered records.
func (p *Plan) Deliveries() (duplicates, redelivered int64) {
	for _, l := range p.LaneFindings {
		duplicates += l.Duplicates
		redelivered += l.Redelivered
	}
	return
}

// Decisions sums the pending qualifications by decision.
func (p *Plan) Decisions() map[string]int64 {
	out := map[string]int64{}
	for _, q := range p.Qualifications.Pending {
		out[q.Decision]++
	}
	return out
}

// MissingRanges returns the plan's missing offsets per topic and partition.
func (p *Plan) MissingRanges() map[string]map[int32]Ranges {
	out := map[string]map[int32]Ranges{}
	for _, l := range p.LaneFindings {
		for _, pf := range l.Partitions {
			if len(pf.Missing) == 0 {
				continue
			}
			if out[l.Topic] == nil {
				out[l.Topic] = map[int32]Ranges{}
			}
			out[l.Topic][pf.Partition] = pf.Missing
		}
	}
	return out
}

// StaleCustomers lists the customers a replay found stale.
func (p *Plan) StaleCustomers() []string {
	if p.Stale.Derived == nil {
		return nil
	}
	return p.Stale.Derived.Customers
}

// computeID hashes what the plan found, so the same findings give the same ID.
func (p *Plan) computeID() string {
	type missing struct {
		Topic     string
		Partition int32
		Missing   Ranges
	}
	var ms []missing
	for _, l := range p.LaneFindings {
		for _, pf := range l.Partitions {
			ms = append(ms, missing{l.Topic, pf.Partition, pf.Missing})
		}
	}
	var quals []string
	for _, q := range p.Qualifications.Pending {
		quals = append(quals, q.CampaignID+"\x00"+q.CustomerID+"\x00"+q.Episode)
	}
	sort.Strings(quals)
	b, _ := json.Marshal(struct {
		Database, TopicPrefix, Source string
		From, To                      int64
		Lanes, Campaigns              []string
		Missing                       []missing
		Stale                         []string
		Qualifications                []string
	}{p.Database, p.TopicPrefix, p.Source, p.Window.FromMs(), p.Window.ToMs(), p.Lanes, p.Campaigns, ms, p.StaleCustomers(), quals})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// Save writes the plan as indented JSON.
func (p *Plan) Save(path string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write plan %s: %w", path, err)
	}
	return nil
}

// LoadPlan reads a plan file and checks it was not edited.
func LoadPlan(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPlanFormat, path, err)
	}
	if p.Format != planFormat {
		return nil, fmt.Errorf("%w: %s has format %d, this tideline reads %d; make a new plan", ErrPlanFormat, path, p.Format, planFormat)
	}
	if id := p.computeID(); id != p.ID {
		return nil, fmt.Errorf("%w: %s was edited after it was made (id %s, contents hash to %s); make a new plan", ErrPlanFormat, path, p.ID, id)
	}
	return &p, nil
}
