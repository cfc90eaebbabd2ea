package trigger

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TriggerKind says what makes a customer qualify for a campaign.
type TriggerKind string

// Trigger kinds.
const (
	// TriggerAudienceEntered qualifies a customer each time they enter an
	// audience; the qualification episode is the audience episode number.
	TriggerAudienceEntered TriggerKind = "audience_entered"
	// TriggerAudienceExited qualifies a customer each time they leave an
	// audience; the episode is the number of the episode that ended.
	TriggerAudienceExited TriggerKind = "audience_exited"
	// TriggerEvent qualifies a customer for each matching event; the
	// episode is the event's message id.
	TriggerEvent TriggerKind = "event"
)

// LatePolicy says what happens to a qualification detected after its
// staleness budget.
type LatePolicy string

// Late policies.
const (
	// LateSkip records the qualification as skipped with reason "stale".
	LateSkip LatePolicy = "skip"
	// LateFire sends it anyway, marked "late": true with its lag.
	LateFire LatePolicy = "fire_late"
)

// Campaign is one campaign definition, as declared in its YAML file.
type Campaign struct {
	// ID identifies the campaign in the ledger, metrics and webhooks.
	ID string
	// Name is for humans (default: the id).
	Name string
	// Description is free text.
	Description string
	// Trigger says what qualifies a customer.
	Trigger Trigger
	// Staleness is the lateness policy.
	Staleness Staleness
	// Reeligible says when a customer may receive the campaign again.
	Reeligible Reeligibility
	// Cap bounds sends per customer in a sliding window (nil: no cap).
	Cap *FrequencyCap
	// Groups are the campaign's tags; a global cap with a group counts the
	// sends of the campaigns in it.
	Groups []string
	// Consent, when set, is required of every customer sent to.
	Consent *Consent
	// Quiet is the campaign's own quiet hours (nil: the policy's, if any).
	Quiet *QuietHours
	// Template, when set, shapes the webhook body (see RenderBody).
	Template *BodyTemplate
	// Policy is the shared policy of the campaigns folder (nil: none).
	Policy *Policy
	// Deliver lists the destinations.
	Deliver Delivery
	// Active is false for a definition with "enabled: false": it is
	// validated and listed, but the poller does not read its qualifications.
	Active bool
	// File is where the definition was read from.
	File string
	// Version is a hash of the definition's bytes.
	Version string
	// Definition is the YAML as written.
	Definition string
}

// Trigger is what makes a customer qualify.
type Trigger struct {
	Kind TriggerKind
	// Audience is the audience id of audience triggers.
	Audience string
	// Event is the event filter of event triggers.
	Event EventFilter
	// Unless, when set, holds the qualification until its window has
	// passed and skips it (reason "converted") if the customer performed
	// the follow-up event within it: "started checkout and did not buy
	// within 1h". It is decided only once the lane watermarks have passed
	// the end of the window.
	Unless *Unless
}

// EventFilter matches events by name and properties.
type EventFilter struct {
	// Name is the event name (track event or page name).
	Name string
	// Where are property conditions that must all hold.
	Where []Condition
}

// Unless is a negative follow-up condition.
type Unless struct {
	Event  EventFilter
	Within time.Duration
}

// Staleness is the lateness policy of a campaign.
type Staleness struct {
	// Budget is how long after its event time a qualification may be
	// detected and still fire normally.
	Budget time.Duration
	// Late is what happens beyond the budget.
	Late LatePolicy
}

// Reeligibility says when a customer who received the campaign may
// receive it again.
type Reeligibility struct {
	// Never: one send per customer, ever.
	Never bool
	// After is the minimum event-time distance between two sends (0: every
	// qualification is eligible; the frequency cap still applies).
	After time.Duration
}

// FrequencyCap bounds sends per customer: at most Max in any window of Per
// (by qualification event time).
type FrequencyCap struct {
	Max int
	Per time.Duration
}

// Delivery lists a campaign's destinations; at least one is set.
type Delivery struct {
	Webhook *Webhook
	// KafkaTopic, when set, also produces every fire to this topic (with the
	// configured topic prefix), keyed by the webhook id.
	KafkaTopic string
}

// Webhook is an HTTP destination signed per Standard Webhooks.
type Webhook struct {
	URL string
	// SecretEnv names the environment variable holding the signing secret
	// ("whsec_" followed by base64).
	SecretEnv string
	// PreviousSecretEnv, during a rotation, names the variable of the old
	// secret: both signatures are sent until it is removed.
	PreviousSecretEnv string
	// Throttle bounds the send rate to the URL (nil: max_in_flight only).
	Throttle *Throttle
}

// Destinations returns the ids of c's destinations, in delivery order.
func (c *Campaign) Destinations() []Destination {
	var out []Destination
	if c.Deliver.KafkaTopic != "" {
		out = append(out, Destination{Campaign: c.ID, Kind: DestinationKafka, Target: c.Deliver.KafkaTopic})
	}
	if c.Deliver.Webhook != nil {
		out = append(out, Destination{Campaign: c.ID, Kind: DestinationWebhook, Target: c.Deliver.Webhook.URL})
	}
	return out
}

// Destination kinds.
const (
	DestinationWebhook = "webhook"
	DestinationKafka   = "kafka"
)

// Destination is one place a campaign delivers to.
type Destination struct {
	Campaign string
	// Kind is "webhook" or "kafka".
	Kind string
	// Target is the URL or the topic (without prefix).
	Target string
}

// ID is a stable identifier of the destination, used in the dead-letter
// and destination tables.
func (d Destination) ID() string {
	sum := sha256.Sum256([]byte(d.Campaign + "\x00" + d.Kind + "\x00" + d.Target))
	return d.Kind + "_" + hex.EncodeToString(sum[:8])
}

// String names the destination in logs and errors.
func (d Destination) String() string { return d.Kind + ":" + d.Target }

//go:embed campaigns/*.yaml
var defaultCampaigns embed.FS

// DefaultCampaigns returns the example campaigns shipped in
// trigger/campaigns, for `tideline dev` and tests.
func DefaultCampaigns() ([]*Campaign, error) {
	return loadCampaignsFS(defaultCampaigns, "campaigns")
}

// LoadCampaigns reads every *.yaml and *.yml file in dir. All problems of
// all files are returned together, each naming its file, line and field.
func LoadCampaigns(dir string) ([]*Campaign, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("campaigns folder %s: %w (set trigger.campaigns_dir or --campaigns)", dir, err)
	}
	if !st.IsDir() {
		data, err := os.ReadFile(dir)
		if err != nil {
			return nil, fmt.Errorf("read campaign %s: %w", dir, err)
		}
		c, err := ParseCampaign(dir, data)
		if err != nil {
			return nil, err
		}
		return []*Campaign{c}, nil
	}
	return loadFS(os.DirFS(dir), ".", dir)
}

// loadCampaignsFS is LoadCampaigns over a file system (e.g. an embed.FS).
func loadCampaignsFS(fsys fs.FS, dir string) ([]*Campaign, error) {
	return loadFS(fsys, dir, dir)
}

func loadFS(fsys fs.FS, dir, display string) ([]*Campaign, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read campaigns folder %s: %w", display, err)
	}
	var names []string
	var policy *Policy
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if e.Name() == PolicyFile {
			data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("read policy %s: %w", e.Name(), err)
			}
			if policy, err = parsePolicy(filepath.Join(display, e.Name()), data); err != nil {
				return nil, err
			}
			continue
		}
		if strings.HasPrefix(e.Name(), "_") {
			continue
		}
		if ext := path.Ext(e.Name()); ext == ".yaml" || ext == ".yml" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("%w in %s: add one .yaml file per campaign", ErrNoCampaigns, display)
	}
	var (
		out  []*Campaign
		errs []error
		seen = map[string]string{}
	)
	for _, name := range names {
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			errs = append(errs, fmt.Errorf("read campaign %s: %w", name, err))
			continue
		}
		file := filepath.Join(display, name)
		c, err := ParseCampaign(file, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[c.ID]; dup {
			errs = append(errs, &DefinitionError{File: file, Line: 1, Field: "id", Msg: fmt.Sprintf("campaign id %q is already used by %s: ids must be unique", c.ID, prev)})
			continue
		}
		seen[c.ID] = file
		c.Policy = policy
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// FindCampaign returns the campaign with id, or ErrUnknownCampaign.
func FindCampaign(cs []*Campaign, id string) (*Campaign, error) {
	for _, c := range cs {
		if c.ID == id {
			return c, nil
		}
	}
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownCampaign, id, strings.Join(ids, ", "))
}

// Secrets returns the signing secrets of c's webhook from the environment
// (current first, then the previous one during a rotation).
func (c *Campaign) Secrets(getenv func(string) string) ([]Secret, error) {
	w := c.Deliver.Webhook
	if w == nil {
		return nil, nil
	}
	var out []Secret
	for i, name := range []string{w.SecretEnv, w.PreviousSecretEnv} {
		if name == "" {
			continue
		}
		v := getenv(name)
		if v == "" {
			if i == 1 {
				// The previous secret is optional: a rotation ends by unsetting it.
				continue
			}
			return nil, fmt.Errorf("campaign %s: %w: set %s to the endpoint's whsec_ secret", c.ID, ErrSecretMissing, name)
		}
		s, err := ParseSecret(v)
		if err != nil {
			return nil, fmt.Errorf("campaign %s: %s: %w", c.ID, name, err)
		}
		out = append(out, s)
	}
	return out, nil
}
