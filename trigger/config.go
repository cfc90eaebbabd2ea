package trigger

import (
	"errors"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/internal/shares"
)

// Config configures the poller, its delivery and `tideline trigger redeliver`.
type Config struct {
	// CampaignsDir holds the campaign definitions, one YAML file each
	// (default "trigger/campaigns", the examples shipped with the repo).
	CampaignsDir string `koanf:"campaigns_dir"`
	// PollInterval is the pause between polls when the last one found
	// nothing more to read (default 100ms). It bounds the poller's share of
	// the qualification-to-send latency.
	PollInterval time.Duration `koanf:"poll_interval"`
	// Overlap is how far behind its position the poller looks again for
	// rows that became visible late (an insert stamped earlier than one
	// that finished first); it must exceed the longest insert (default 15s).
	Overlap time.Duration `koanf:"overlap"`
	// BatchSize is the most feed rows read per feed per poll (default 5000).
	BatchSize int `koanf:"batch_size"`
	// CursorInterval is how often positions are saved (default 1s); a
	// restart re-reads at most this much plus the overlap.
	CursorInterval time.Duration `koanf:"cursor_interval"`
	// StartFrom is where a shard without a saved position starts:
	// "earliest" (every row in the feeds: each qualification gets a
	// decision, old ones mostly "stale") or "latest" (now). Default earliest.
	StartFrom string `koanf:"start_from"`
	// Sharding, Shards, Group, CoordinationTopic, InstanceID and
	// SessionTimeout divide customers among pollers (default: group
	// sharding over 16 shards, group "tideline-trigger", topic
	// "trigger.shards").
	shares.Config `koanf:",flatten,squash"`
	// WatermarkLanes are the lanes whose watermarks bound negative
	// decisions (default web, server). A lane without a watermark holds them.
	WatermarkLanes []string `koanf:"watermark_lanes"`
	// WebhookTimeout bounds one delivery attempt (default 10s).
	WebhookTimeout time.Duration `koanf:"webhook_timeout"`
	// MaxAttempts per destination before a delivery is dead-lettered (default 10).
	MaxAttempts int `koanf:"max_attempts"`
	// BackoffBase is the first retry delay; each retry doubles it, with
	// jitter (default 1s).
	BackoffBase time.Duration `koanf:"backoff_base"`
	// BackoffMax caps the retry delay (default 5m).
	BackoffMax time.Duration `koanf:"backoff_max"`
	// MaxRetryAfter caps how long a Retry-After header may delay a retry
	// (default 10m).
	MaxRetryAfter time.Duration `koanf:"max_retry_after"`
	// MaxInFlight bounds concurrent attempts per destination, so a slow
	// endpoint holds only its own workers (default 16).
	MaxInFlight int `koanf:"max_in_flight"`
	// QueueSize bounds deliveries queued in memory per destination; beyond
	// it they wait in the ledger for the next open-delivery scan (default 10000).
	QueueSize int `koanf:"queue_size"`
	// OpenScanInterval is how often the ledger is scanned for fires whose
	// delivery has not ended and that no worker holds: after a restart, a
	// queue overflow, or entries the backfill recorded (default 30s).
	OpenScanInterval time.Duration `koanf:"open_scan_interval"`
	// OpenScanWindow bounds that scan to fires detected this recently (default 7d).
	OpenScanWindow time.Duration `koanf:"open_scan_window"`
	// FeedRetention is how long the poller's feed tables keep rows (default
	// 7d; 0 keeps everything). Daily partitions older than this and than
	// every poller's position are dropped.
	FeedRetention time.Duration `koanf:"feed_retention"`
	// MetricsAddr serves /metrics and /healthz (default 127.0.0.1:9104; "" turns it off).
	MetricsAddr string `koanf:"metrics_addr"`
	// ShutdownTimeout bounds the wait for in-flight deliveries on SIGTERM
	// (default 15s); unfinished ones are delivered after the next start.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// WebhookURLOverride sends every webhook to this URL instead of its
	// campaign's: for `tideline dev` and local runs (default "").
	WebhookURLOverride string `koanf:"webhook_url_override"`
	// SecretOverride signs every webhook with this whsec_ secret instead of
	// its campaign's secret_env: for `tideline dev` and local runs (default "").
	SecretOverride string `koanf:"secret_override"`
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		CampaignsDir:     "trigger/campaigns",
		PollInterval:     100 * time.Millisecond,
		Overlap:          15 * time.Second,
		BatchSize:        5000,
		CursorInterval:   time.Second,
		StartFrom:        "earliest",
		Config:           shares.Defaults("tideline-trigger", "trigger.shards"),
		WatermarkLanes:   []string{"web", "server"},
		WebhookTimeout:   10 * time.Second,
		MaxAttempts:      10,
		BackoffBase:      time.Second,
		BackoffMax:       5 * time.Minute,
		MaxRetryAfter:    10 * time.Minute,
		MaxInFlight:      16,
		QueueSize:        10000,
		OpenScanInterval: 30 * time.Second,
		OpenScanWindow:   7 * 24 * time.Hour,
		FeedRetention:    7 * 24 * time.Hour,
		MetricsAddr:      "127.0.0.1:9104",
		ShutdownTimeout:  15 * time.Second,
	}
}

// Validate says what to fix in c.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("trigger.%s must be positive, got %s", name, d))
		}
	}
	positive("poll_interval", c.PollInterval)
	positive("overlap", c.Overlap)
	positive("cursor_interval", c.CursorInterval)
	positive("webhook_timeout", c.WebhookTimeout)
	positive("backoff_base", c.BackoffBase)
	positive("backoff_max", c.BackoffMax)
	positive("open_scan_interval", c.OpenScanInterval)
	positive("open_scan_window", c.OpenScanWindow)
	positive("shutdown_timeout", c.ShutdownTimeout)
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("trigger.batch_size must be at least 1, got %d", c.BatchSize))
	}
	switch c.StartFrom {
	case "earliest", "latest":
	default:
		errs = append(errs, fmt.Errorf("trigger.start_from %q: want earliest or latest", c.StartFrom))
	}
	errs = append(errs, c.Config.Validate("trigger"))
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("trigger.max_attempts must be at least 1, got %d", c.MaxAttempts))
	}
	if c.MaxRetryAfter < 0 || c.FeedRetention < 0 {
		errs = append(errs, errors.New("trigger.max_retry_after and trigger.feed_retention must not be negative"))
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("trigger.backoff_max (%s) is below trigger.backoff_base (%s)", c.BackoffMax, c.BackoffBase))
	}
	if c.MaxInFlight < 1 || c.QueueSize < 1 {
		errs = append(errs, errors.New("trigger.max_in_flight and trigger.queue_size must be at least 1"))
	}
	if c.FeedRetention > 0 && c.FeedRetention < c.Overlap+24*time.Hour {
		errs = append(errs, fmt.Errorf("trigger.feed_retention %s is too short: keep at least a day more than the overlap", c.FeedRetention))
	}
	if c.SecretOverride != "" {
		if _, err := ParseSecret(c.SecretOverride); err != nil {
			errs = append(errs, fmt.Errorf("trigger.secret_override: %w", err))
		}
	}
	return errors.Join(errs...)
}
