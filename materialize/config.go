package materialize

import (
	"errors"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/internal/shares"
)

// DefaultAudiencesDir is where audience definitions live in the repository.
const DefaultAudiencesDir = "materialize/audiences"

// Config configures `tideline audiences` and the evaluator (section
// "materialize").
type Config struct {
	// AudiencesDir holds the audience definitions, one YAML file each
	// (default materialize/audiences; when that default is missing, as in
	// an installed binary, the definitions built into tideline are used).
	AudiencesDir string `koanf:"audiences_dir"`
	// Attributes are maintained even when no audience reads them, so
	// analysts find them in customer_profile (default plan, country, email,
	// age: the demo's traits).
	Attributes []string `koanf:"attributes"`
	// SetOnce lists attributes that keep their first non-null value
	// instead of the latest (default none).
	SetOnce []string `koanf:"set_once"`
	// EvaluatorID names the evaluator's durable position, so two
	// deployments can share a database (default "default").
	EvaluatorID string `koanf:"evaluator_id"`
	// Sharding, Shards, Group, CoordinationTopic, InstanceID and
	// SessionTimeout divide customers among evaluators (default: sharding
	// "none", one evaluator per evaluator_id evaluates every customer; with
	// "group" any number share them, each evaluating and writing only its
	// shards' customers, over 16 shards, group "tideline-evaluate", topic
	// "evaluate.shards").
	shares.Config `koanf:",flatten,squash"`
	// Interval is the pause between evaluation passes (default 250ms).
	Interval time.Duration `koanf:"interval"`
	// Lanes are the lanes whose watermarks bound evaluation: conditions are
	// evaluated as of the smallest watermark among them (default web,
	// server; backfill is left out because it is behind by design).
	Lanes []string `koanf:"lanes"`
	// BatchCustomers bounds the customers evaluated by one query (default 5000).
	BatchCustomers int `koanf:"batch_customers"`
	// MaxTouches bounds the touched-customer rows one pass reads (default
	// 200000); a backlog is worked off over several passes.
	MaxTouches int `koanf:"max_touches"`
	// TouchOverlap is re-read behind the touch cursor each pass: an insert
	// can become visible this long after its rows were stamped (default 10s).
	TouchOverlap time.Duration `koanf:"touch_overlap"`
	// TouchSettle is how long after a touch the evaluator looks at its
	// customer a second time when the loader's progress cannot tell that
	// the touch's insert finished (backfill, rows inserted by other tools),
	// and on a cluster, where replicated rows reach the evaluator's server
	// after the insert: an insert fills the views of events one by one, and
	// the touch may be seen before the attribute, signal or identity rows
	// of the same insert. On one server a touch is looked at again as soon
	// as the loader's progress shows its insert finished, and not again if
	// it did by the first look; a second look waits for that progress up
	// to touch_overlap. Default 3s; less than touch_overlap.
	TouchSettle time.Duration `koanf:"touch_settle"`
	// TouchRetention is how long customer_touches keeps its daily
	// partitions before the evaluator drops them (default 72h).
	TouchRetention time.Duration `koanf:"touch_retention"`
	// MetricsAddr serves the evaluator's /metrics and /healthz (default
	// 127.0.0.1:9103; "" turns it off).
	MetricsAddr string `koanf:"metrics_addr"`
	// ApplySettle is how long apply waits between creating a view and
	// backfilling it from history, so inserts in flight when the view was
	// created are committed before the backfill reads (default 5s).
	ApplySettle time.Duration `koanf:"apply_settle"`
	// ConfirmAbove is the number of campaign messages above which
	// `tideline audiences apply` asks for confirmation on a terminal, and
	// refuses elsewhere without --yes (default 100).
	ConfirmAbove int `koanf:"confirm_above"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		AudiencesDir:   DefaultAudiencesDir,
		Attributes:     []string{"plan", "country", "email", "age"},
		EvaluatorID:    "default",
		Config:         noSharding(shares.Defaults("tideline-evaluate", "evaluate.shards")),
		Interval:       250 * time.Millisecond,
		Lanes:          []string{"web", "server"},
		BatchCustomers: 5000,
		MaxTouches:     200000,
		TouchOverlap:   10 * time.Second,
		TouchSettle:    3 * time.Second,
		TouchRetention: 72 * time.Hour,
		ApplySettle:    5 * time.Second,
		ConfirmAbove:   100,
		MetricsAddr:    "127.0.0.1:9103",
	}
}

// Validate says what to fix in c.
func (c Config) Validate() error {
	var errs []error
	if c.AudiencesDir == "" {
		errs = append(errs, errors.New("materialize.audiences_dir is empty: give the folder of audience YAML files"))
	}
	for _, a := range append(append([]string(nil), c.Attributes...), c.SetOnce...) {
		if !validAttributeName(a) {
			errs = append(errs, fmt.Errorf("materialize.attributes / set_once: %q is not a valid attribute name (letters, digits, underscores)", a))
		}
	}
	if !idRe.MatchString(c.EvaluatorID) {
		errs = append(errs, fmt.Errorf("materialize.evaluator_id %q: use lower-case letters, digits and underscores", c.EvaluatorID))
	}
	errs = append(errs, c.Config.Validate("materialize"))
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("materialize.interval must be positive, got %s", c.Interval))
	}
	if len(c.Lanes) == 0 {
		errs = append(errs, errors.New("materialize.lanes is empty: name the lanes whose watermarks bound evaluation, e.g. web,server"))
	}
	for _, l := range c.Lanes {
		switch l {
		case "web", "server", "backfill":
		default:
			errs = append(errs, fmt.Errorf("materialize.lanes: %q is not a lane (web, server, backfill)", l))
		}
	}
	if c.BatchCustomers < 1 || c.BatchCustomers > 100000 {
		errs = append(errs, fmt.Errorf("materialize.batch_customers must be between 1 and 100000, got %d", c.BatchCustomers))
	}
	if c.MaxTouches < 1 {
		errs = append(errs, fmt.Errorf("materialize.max_touches must be at least 1, got %d", c.MaxTouches))
	}
	if c.TouchOverlap < time.Second {
		errs = append(errs, fmt.Errorf("materialize.touch_overlap must be at least 1s (touch times have second resolution), got %s", c.TouchOverlap))
	}
	if c.TouchSettle < time.Second || c.TouchSettle >= c.TouchOverlap {
		errs = append(errs, fmt.Errorf("materialize.touch_settle must be at least 1s and less than touch_overlap (%s), got %s", c.TouchOverlap, c.TouchSettle))
	}
	if c.TouchRetention < 24*time.Hour {
		errs = append(errs, fmt.Errorf("materialize.touch_retention must be at least 24h, got %s", c.TouchRetention))
	}
	if c.ApplySettle < 0 {
		errs = append(errs, fmt.Errorf("materialize.apply_settle must not be negative, got %s", c.ApplySettle))
	}
	if c.ConfirmAbove < 0 {
		errs = append(errs, fmt.Errorf("materialize.confirm_above must not be negative, got %d", c.ConfirmAbove))
	}
	return errors.Join(errs...)
}

// noSharding is c with one process owning every customer.
func noSharding(c shares.Config) shares.Config {
	c.Sharding = "none"
	return c
}

// attributeSettings are the attribute settings of c.
func (c Config) attributeSettings() AttributeSettings {
	return AttributeSettings{Declared: c.Attributes, SetOnce: c.SetOnce}
}

// LoadPlan reads the definitions in c.AudiencesDir and compiles them with
// c's attribute settings: what `tideline audiences apply` installs.
func LoadPlan(c Config) (*Plan, error) {
	auds, err := LoadDefinitions(c.AudiencesDir)
	if err != nil {
		return nil, err
	}
	return Compile(auds, c.attributeSettings())
}
