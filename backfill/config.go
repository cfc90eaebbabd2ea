package backfill

import (
	"errors"
	"fmt"
	"time"
)

// Config configures plan and apply (the "backfill" config section).
type Config struct {
	// Lanes a plan covers when --lane is not given (default web, server).
	Lanes []string `koanf:"lanes"`
	// LoaderGroup is the loader's consumer group prefix, loader.group
	// (default "tideline-loader"): a plan reads each lane's committed offset
	// to tell lost records from the live backlog, and apply watches the
	// backfill lane's group to know when re-ingested records are loaded.
	LoaderGroup string `koanf:"loader_group"`
	// LateAfter is the ingest delay past which an event counts as late in
	// the summary (default 1m).
	LateAfter time.Duration `koanf:"late_after"`
	// IncludeBacklog makes apply re-ingest missing records the loader has
	// not reached yet too (default false: the live loader will load them,
	// and re-ingesting them would only double the work).
	IncludeBacklog bool `koanf:"include_backlog"`
	// ConfirmAbove is the number of sends above which apply asks for
	// confirmation on a terminal and refuses elsewhere without --yes
	// (default 100).
	ConfirmAbove int `koanf:"confirm_above"`
	// RateLimit caps re-ingest in records per second (default 0: no cap), to
	// keep a large backfill from crowding the brokers during business hours.
	RateLimit float64 `koanf:"rate_limit"`
	// CheckpointInterval is how often apply records how far it got
	// (default 1s); a killed apply redoes at most this much work.
	CheckpointInterval time.Duration `koanf:"checkpoint_interval"`
	// Heartbeat is how often a running apply refreshes its backfill_runs row
	// (default 5s).
	Heartbeat time.Duration `koanf:"heartbeat"`
	// StaleAfter is how long without a heartbeat before a running apply on
	// another host counts as dead, so its window can be applied again
	// (default 1m). On the same host a dead process is recognised at once.
	StaleAfter time.Duration `koanf:"stale_after"`
	// LoadTimeout bounds the wait for the backfill lane to load what apply
	// produced while the loader makes no progress (default 10m). The backfill
	// lane yields to live traffic, so the wait only counts while live lanes
	// are caught up.
	LoadTimeout time.Duration `koanf:"load_timeout"`
	// PollInterval is how often apply checks loading progress (default 500ms).
	PollInterval time.Duration `koanf:"poll_interval"`
	// QualifyBatch is how many qualifications apply decides and records per
	// ledger write (default 500); each batch is checkpointed in
	// backfill_runs.
	QualifyBatch int `koanf:"qualify_batch"`
	// Replay chooses the customers a plan replays to compare derived state:
	// "window" (every customer with an event in the window, the default),
	// "affected" (only those with a late or missing event: cheaper on big
	// windows, blind to customers an incident made stale otherwise), or
	// "off".
	Replay string `koanf:"replay"`
	// ReplayTimeout bounds one replay query, such as copying the customers'
	// events into the scratch database (default 30m).
	ReplayTimeout time.Duration `koanf:"replay_timeout"`
	// BucketSize is the offset bucket used to compare Kafka with ClickHouse:
	// complete buckets are confirmed by a count, only incomplete ones are
	// listed offset by offset (default 65536).
	BucketSize int64 `koanf:"bucket_size"`
	// GrafanaURL is the Grafana a plan links its window's incident
	// dashboard on (default http://localhost:3000, what docker compose
	// starts; empty: no link).
	GrafanaURL string `koanf:"grafana_url"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Lanes:              []string{"web", "server"},
		LoaderGroup:        "tideline-loader",
		LateAfter:          time.Minute,
		ConfirmAbove:       100,
		CheckpointInterval: time.Second,
		Heartbeat:          5 * time.Second,
		StaleAfter:         time.Minute,
		LoadTimeout:        10 * time.Minute,
		PollInterval:       500 * time.Millisecond,
		BucketSize:         1 << 16,
		QualifyBatch:       500,
		Replay:             "window",
		ReplayTimeout:      30 * time.Minute,
		GrafanaURL:         "http://localhost:3000",
	}
}

// Validate says what to fix in c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Lanes) == 0 {
		errs = append(errs, errors.New("backfill.lanes is empty: give web, server or both"))
	}
	for _, l := range c.Lanes {
		if l != "web" && l != "server" {
			errs = append(errs, fmt.Errorf("backfill.lanes: %q is not a live lane: want web or server", l))
		}
	}
	if c.LoaderGroup == "" {
		errs = append(errs, errors.New("backfill.loader_group is empty: set it to the loader's loader.group (default tideline-loader)"))
	}
	if c.LateAfter <= 0 {
		errs = append(errs, errors.New("backfill.late_after must be positive, e.g. 1m"))
	}
	if c.ConfirmAbove < 0 {
		errs = append(errs, errors.New("backfill.confirm_above must not be negative"))
	}
	if c.RateLimit < 0 {
		errs = append(errs, errors.New("backfill.rate_limit must not be negative (0 means no cap)"))
	}
	for name, d := range map[string]time.Duration{
		"checkpoint_interval": c.CheckpointInterval, "heartbeat": c.Heartbeat, "stale_after": c.StaleAfter,
		"load_timeout": c.LoadTimeout, "poll_interval": c.PollInterval,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("backfill.%s must be positive", name))
		}
	}
	if c.StaleAfter > 0 && c.StaleAfter < 2*c.Heartbeat {
		errs = append(errs, fmt.Errorf("backfill.stale_after (%s) must be at least twice backfill.heartbeat (%s), or live applies look dead", c.StaleAfter, c.Heartbeat))
	}
	switch c.Replay {
	case "window", "affected", "off":
	default:
		errs = append(errs, fmt.Errorf("backfill.replay %q: want window, affected or off", c.Replay))
	}
	if c.ReplayTimeout <= 0 {
		errs = append(errs, errors.New("backfill.replay_timeout must be positive"))
	}
	if c.QualifyBatch < 1 {
		errs = append(errs, fmt.Errorf("backfill.qualify_batch must be at least 1, got %d", c.QualifyBatch))
	}
	if c.BucketSize < 1024 {
		errs = append(errs, fmt.Errorf("backfill.bucket_size must be at least 1024, got %d", c.BucketSize))
	}
	return errors.Join(errs...)
}
