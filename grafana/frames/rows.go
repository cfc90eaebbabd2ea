package frames

// The rows the plugin scans from each statement of package query, in the
// statements' column order.

// Entity is an audience or a campaign with its human name.
type Entity struct {
	ID     string
	Name   string
	Active bool
}

// SizeDelta is the net change of an audience's members in a bucket; bucket
// 0 holds everything before the range (the baseline).
type SizeDelta struct {
	AudienceID string
	BucketMs   uint64
	Delta      int64
}

// TransitionCount is the entries and exits of an audience in a bucket.
type TransitionCount struct {
	AudienceID string
	BucketMs   uint64
	Entered    uint64
	Exited     uint64
}

// Latency is the latency quantiles (query.Quantiles, in ms) of a lane in a bucket.
type Latency struct {
	Lane     string
	BucketMs uint64
	N        uint64
	Q        []float32
}

// Outcome counts ledger entries of a campaign by decision, reason and
// whether their delivery failed.
type Outcome struct {
	CampaignID string
	Decision   string
	Reason     string
	Failed     bool
	N          uint64
}

// LaneWatermark is a row of the lane_watermarks view.
type LaneWatermark struct {
	Lane        string
	WatermarkMs uint64
	Lag         int64
	UpdatedAtMs uint64
}

// IngestDelay is the ingest delay quantiles (ms) of a lane over the range.
type IngestDelay struct {
	Lane  string
	N     uint64
	Q     []float32
	Worst uint64
}

// DeadLetters counts the records a lane dead-lettered in the range.
type DeadLetters struct {
	Lane string
	N    uint64
}

// BackfillRun is the newest row of a backfill run.
type BackfillRun struct {
	RunID            string
	PlanID           string
	State            string
	StartedAtMs      uint64
	FinishedAtMs     uint64
	WindowFromMs     uint64
	WindowToMs       uint64
	EventsReingested uint64
	Fired            uint64
	Skipped          uint64
	UpdatedAtMs      uint64
}

// Qualification is one audience transition as the live panel shows it.
type Qualification struct {
	DerivedAtMs  uint64
	AudienceID   string
	CustomerID   string
	Kind         string
	Episode      uint32
	EventTimeMs  uint64
	IngestTimeMs uint64
	Lane         string
}

// Key identifies a transition; a replayed evaluation writes the same key again.
type Key struct {
	AudienceID, CustomerID string
	Episode                uint32
	Kind                   string
}

// Key returns q's deduplication key.
func (q Qualification) Key() Key {
	return Key{q.AudienceID, q.CustomerID, q.Episode, q.Kind}
}

// Completeness is the evaluator's newest record of an audience's
// completeness (audience_completeness).
type Completeness struct {
	AudienceID  string
	Lanes       []string
	Direction   string
	CompleteMs  uint64
	EagerMs     uint64
	HeldBy      string
	UpdatedAtMs uint64
}

// CampaignCount is a count of one campaign.
type CampaignCount struct {
	CampaignID string
	N          uint64
}

// LateCount is how many events of a lane fell in a lateness class.
type LateCount struct {
	Lane     string
	Lateness uint8
	N        uint64
}

// IngestDelayBucket is the ingest delay quantiles (ms), row count and worst
// case of a lane in a bucket of whole minutes.
type IngestDelayBucket struct {
	Lane     string
	BucketMs uint64
	N        uint64
	Q        []float32
	Worst    uint64
}
