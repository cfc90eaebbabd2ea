package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tideline-dev/tideline/definition"
)

// rawCampaign is the YAML shape of a campaign file. Fields whose YAML may be
// a number or a word (durations, "never") are decoded as any and checked by
// hand so the error can say what to write.
type rawCampaign struct {
	ID              string      `yaml:"id"`
	Name            string      `yaml:"name"`
	Description     string      `yaml:"description"`
	Enabled         *bool       `yaml:"enabled"`
	Trigger         *rawTrigger `yaml:"trigger"`
	Staleness       *rawStale   `yaml:"staleness"`
	ReeligibleAfter any         `yaml:"reeligible_after"`
	FrequencyCap    *rawCap     `yaml:"frequency_cap"`
	Groups          []string    `yaml:"groups"`
	Consent         *rawConsent `yaml:"consent"`
	QuietHours      *rawQuiet   `yaml:"quiet_hours"`
	BodyTemplate    *string     `yaml:"body_template"`
	Deliver         *rawDeliver `yaml:"deliver"`
}

type rawConsent struct {
	Attribute         string `yaml:"attribute"`
	Equals            any    `yaml:"equals"`
	SubscriptionGroup string `yaml:"subscription_group"`
}

type rawQuiet struct {
	From   string `yaml:"from"`
	To     string `yaml:"to"`
	Policy string `yaml:"policy"`
}

type rawThrottle struct {
	Rate  any `yaml:"rate"`
	Burst any `yaml:"burst"`
}

type rawTrigger struct {
	AudienceEntered string     `yaml:"audience_entered"`
	AudienceExited  string     `yaml:"audience_exited"`
	Event           *rawEvent  `yaml:"event"`
	Unless          *rawUnless `yaml:"unless"`
}

type rawEvent struct {
	Name  string         `yaml:"name"`
	Where map[string]any `yaml:"where"`
}

type rawUnless struct {
	Event  *rawEvent `yaml:"event"`
	Within any       `yaml:"within"`
}

type rawStale struct {
	Budget any    `yaml:"budget"`
	Late   string `yaml:"late"`
}

type rawCap struct {
	Max any `yaml:"max"`
	Per any `yaml:"per"`
}

type rawDeliver struct {
	Webhook    *rawWebhook `yaml:"webhook"`
	KafkaTopic string      `yaml:"kafka_topic"`
}

type rawWebhook struct {
	URL               string       `yaml:"url"`
	SecretEnv         string       `yaml:"secret_env"`
	PreviousSecretEnv string       `yaml:"previous_secret_env"`
	Throttle          *rawThrottle `yaml:"throttle"`
}

var (
	campaignIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,63}$`)
	audienceIDRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	envNameRe    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
	topicRe      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)
	propertyRe   = regexp.MustCompile(`^[A-Za-z0-9_$][A-Za-z0-9_$-]*(\.[A-Za-z0-9_$][A-Za-z0-9_$-]*)*$`)
)

// ParseCampaign parses and validates one campaign file. Errors are
// *DefinitionError values (joined when there are several) naming the file,
// the line and the field.
func ParseCampaign(file string, data []byte) (*Campaign, error) {
	astFile, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(file, err)
	}
	if len(astFile.Docs) != 1 || astFile.Docs[0].Body == nil {
		return nil, &DefinitionError{File: file, Line: 1, Msg: "want exactly one YAML document holding one campaign"}
	}
	body := astFile.Docs[0].Body
	var raw rawCampaign
	if err := yaml.NodeToValue(body, &raw, yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(file, err)
	}
	v := &validator{file: file, root: body}
	c := v.campaign(&raw)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	sum := sha256.Sum256(data)
	c.Version = hex.EncodeToString(sum[:8])
	c.File = file
	c.Definition = string(data)
	return c, nil
}

// yamlError turns a go-yaml error into a DefinitionError with its line.
func yamlError(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line, col := 0, 0
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line, col = tk.Position.Line, tk.Position.Column
		}
		msg := ye.GetMessage()
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			msg += ": check the spelling against the campaign reference in the README"
		}
		return &DefinitionError{File: file, Line: line, Column: col, Msg: msg}
	}
	return &DefinitionError{File: file, Msg: err.Error()}
}

// validator collects every problem of one file.
type validator struct {
	file string
	root ast.Node
	errs []error
}

func (v *validator) fail(field, format string, args ...any) {
	line, col := positionOf(v.root, strings.Split(field, ".")...)
	v.errs = append(v.errs, &DefinitionError{File: v.file, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// failKey is fail for a key that holds dots itself (a where path such as
// context.campaign.source) inside the mapping at field.
func (v *validator) failKey(field, key, format string, args ...any) {
	line, col := positionOf(v.root, append(strings.Split(field, "."), key)...)
	v.errs = append(v.errs, &DefinitionError{File: v.file, Line: line, Column: col, Field: field + "." + key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) campaign(r *rawCampaign) *Campaign {
	c := &Campaign{ID: r.ID, Name: r.Name, Description: r.Description, Active: true}
	if r.Enabled != nil {
		c.Active = *r.Enabled
	}
	switch {
	case r.ID == "":
		v.fail("id", "is required: a lower-case id such as welcome_gold")
	case !campaignIDRe.MatchString(r.ID):
		v.fail("id", "%q: use lower-case letters, digits and underscores (at most 64), starting with a letter or digit", r.ID)
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	v.trigger(r.Trigger, &c.Trigger)
	if r.Staleness == nil {
		v.fail("staleness", "is required: e.g. {budget: 15m, late: skip}")
	} else {
		c.Staleness.Budget = v.duration("staleness.budget", r.Staleness.Budget, true)
		switch LatePolicy(r.Staleness.Late) {
		case "", LateSkip:
			c.Staleness.Late = LateSkip
		case LateFire:
			c.Staleness.Late = LateFire
		default:
			v.fail("staleness.late", "%q: want skip or fire_late", r.Staleness.Late)
		}
	}
	switch x := r.ReeligibleAfter.(type) {
	case nil:
		v.fail("reeligible_after", "is required: a duration such as 30d, 0 (every qualification), or never")
	case string:
		if strings.TrimSpace(x) == "never" {
			c.Reeligible.Never = true
		} else {
			c.Reeligible.After = v.duration("reeligible_after", x, false)
		}
	default:
		c.Reeligible.After = v.duration("reeligible_after", x, false)
	}
	if r.FrequencyCap != nil {
		fc := &FrequencyCap{Per: v.duration("frequency_cap.per", r.FrequencyCap.Per, true)}
		n, ok := asInt(r.FrequencyCap.Max)
		if !ok || n < 1 {
			v.fail("frequency_cap.max", "want a whole number of sends of at least 1, got %v", r.FrequencyCap.Max)
		}
		fc.Max = n
		c.Cap = fc
	}
	for i, g := range r.Groups {
		if !campaignIDRe.MatchString(g) {
			v.fail("groups", "group %d %q: use lower-case letters, digits and underscores", i+1, g)
		}
	}
	c.Groups = r.Groups
	if cn := r.Consent; cn != nil {
		attr := cn.Attribute
		if attr == "" && cn.SubscriptionGroup != "" {
			attr = "subscription_groups"
		}
		switch {
		case !propertyRe.MatchString(attr):
			v.fail("consent.attribute", "%q is not an attribute name: e.g. email_opt_in", attr)
		case cn.Equals == nil && cn.SubscriptionGroup == "":
			v.fail("consent", "needs equals (the attribute's value that means consent, e.g. true) or subscription_group")
		case cn.Equals != nil && cn.SubscriptionGroup != "":
			v.fail("consent", "sets both equals and subscription_group: a campaign requires one of them")
		}
		c.Consent = &Consent{Attribute: attr, Equals: cn.Equals, Contains: cn.SubscriptionGroup}
	}
	if r.QuietHours != nil {
		c.Quiet = v.quiet("quiet_hours", r.QuietHours)
	}
	if r.BodyTemplate != nil {
		bt, line, err := parseBodyTemplate(*r.BodyTemplate)
		if err != nil {
			v.failAt("body_template", line, "%v", err)
		}
		c.Template = bt
	}
	v.deliver(r.Deliver, &c.Deliver)
	return c
}

// failAt reports a problem at a line inside a field's (multi-line) value:
// line 1 is the value's first line.
func (v *validator) failAt(field string, line int, format string, args ...any) {
	at, col := positionOf(v.root, strings.Split(field, ".")...)
	if line > 0 {
		// The column of a line inside the value is not known.
		col = 0
		at += line - 1
		if mv := definition.Find(v.root, strings.Split(field, ".")...); mv != nil {
			if _, block := mv.Value.(*ast.LiteralNode); block {
				// A block scalar's text starts on the line after its key.
				at++
			}
		}
	}
	v.errs = append(v.errs, &DefinitionError{File: v.file, Line: at, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) quiet(field string, r *rawQuiet) *QuietHours {
	q := &QuietHours{Policy: r.Policy}
	q.From = v.clock(field+".from", r.From)
	q.To = v.clock(field+".to", r.To)
	switch r.Policy {
	case "":
		q.Policy = QuietDefer
	case QuietDefer, QuietSkip:
	default:
		v.fail(field+".policy", "%q: want defer or skip", r.Policy)
	}
	if r.From != "" && q.From == q.To {
		v.fail(field+".to", "equals from: quiet hours need a period, e.g. from: \"21:00\", to: \"08:00\"")
	}
	return q
}

// clock reads "HH:MM" or "HH:MM:SS" as seconds after midnight.
func (v *validator) clock(field, s string) int {
	s = strings.TrimSpace(s)
	t, err := time.Parse("15:04", s)
	if err != nil {
		t, err = time.Parse("15:04:05", s)
	}
	if err != nil {
		v.fail(field, "%q: want a local clock time such as \"21:00\"", s)
		return 0
	}
	return t.Hour()*3600 + t.Minute()*60 + t.Second()
}

func (v *validator) trigger(r *rawTrigger, t *Trigger) {
	if r == nil {
		v.fail("trigger", "is required: audience_entered: AUDIENCE_ID, audience_exited: AUDIENCE_ID, or event: {name: EVENT}")
		return
	}
	n := 0
	if r.AudienceEntered != "" {
		n++
		t.Kind, t.Audience = TriggerAudienceEntered, r.AudienceEntered
		v.audience("trigger.audience_entered", r.AudienceEntered)
	}
	if r.AudienceExited != "" {
		n++
		t.Kind, t.Audience = TriggerAudienceExited, r.AudienceExited
		v.audience("trigger.audience_exited", r.AudienceExited)
	}
	if r.Event != nil {
		n++
		t.Kind = TriggerEvent
		t.Event = v.event("trigger.event", r.Event)
	}
	switch n {
	case 0:
		v.fail("trigger", "names nothing: set one of audience_entered, audience_exited or event")
	case 1:
	default:
		v.fail("trigger", "sets %d triggers: a campaign has exactly one of audience_entered, audience_exited or event", n)
	}
	if r.Unless != nil {
		u := &Unless{Within: v.duration("trigger.unless.within", r.Unless.Within, true)}
		if r.Unless.Event == nil {
			v.fail("trigger.unless.event", "is required: the follow-up event, e.g. {name: purchase}")
		} else {
			u.Event = v.event("trigger.unless.event", r.Unless.Event)
		}
		t.Unless = u
	}
}

func (v *validator) audience(field, id string) {
	if !audienceIDRe.MatchString(id) {
		v.fail(field, "%q is not an audience id (letters, digits, _ . -)", id)
	}
}

func (v *validator) event(field string, r *rawEvent) EventFilter {
	f := EventFilter{Name: r.Name}
	if strings.TrimSpace(r.Name) == "" {
		v.fail(field+".name", "is required: the track event or page name, e.g. purchase")
	}
	props := make([]string, 0, len(r.Where))
	for p := range r.Where {
		props = append(props, p)
	}
	sort.Strings(props)
	for _, p := range props {
		conds, err := parseConditions(p, r.Where[p])
		if err != nil {
			v.failKey(field+".where", p, "%v", err)
			continue
		}
		f.Where = append(f.Where, conds...)
	}
	return f
}

func (v *validator) deliver(r *rawDeliver, d *Delivery) {
	if r == nil || (r.Webhook == nil && r.KafkaTopic == "") {
		v.fail("deliver", "is required: a webhook {url, secret_env} and/or a kafka_topic")
		return
	}
	if r.KafkaTopic != "" {
		if !topicRe.MatchString(r.KafkaTopic) {
			v.fail("deliver.kafka_topic", "%q is not a Kafka topic name (letters, digits, . _ -)", r.KafkaTopic)
		}
		d.KafkaTopic = r.KafkaTopic
	}
	if w := r.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			v.fail("deliver.webhook.url", "is required: the endpoint's https URL")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.fail("deliver.webhook.url", "%q is not an absolute http(s) URL", w.URL)
		}
		switch {
		case w.SecretEnv == "":
			v.fail("deliver.webhook.secret_env", "is required: the environment variable holding the endpoint's whsec_ secret")
		case !envNameRe.MatchString(w.SecretEnv):
			v.fail("deliver.webhook.secret_env", "%q is not an environment variable name (A-Z, 0-9, _)", w.SecretEnv)
		}
		if w.PreviousSecretEnv != "" && !envNameRe.MatchString(w.PreviousSecretEnv) {
			v.fail("deliver.webhook.previous_secret_env", "%q is not an environment variable name (A-Z, 0-9, _)", w.PreviousSecretEnv)
		}
		d.Webhook = &Webhook{URL: w.URL, SecretEnv: w.SecretEnv, PreviousSecretEnv: w.PreviousSecretEnv}
		if th := w.Throttle; th != nil {
			rate, ok := asFloat(th.Rate)
			if !ok || rate <= 0 {
				v.fail("deliver.webhook.throttle.rate", "want messages per second above 0, got %v", th.Rate)
			}
			burst := 1
			if th.Burst != nil {
				n, ok := asInt(th.Burst)
				if !ok || n < 1 {
					v.fail("deliver.webhook.throttle.burst", "want a whole number of at least 1, got %v", th.Burst)
				}
				burst = n
			}
			d.Webhook.Throttle = &Throttle{Rate: rate, Burst: burst}
		}
	}
}

// duration reads a YAML duration: a string such as "15m" or "30d", or the number 0.
func (v *validator) duration(field string, x any, positive bool) time.Duration {
	var (
		d   time.Duration
		err error
	)
	switch t := x.(type) {
	case nil:
		v.fail(field, "is required: a duration such as 15m, 2h or 30d")
		return 0
	case string:
		d, err = definition.ParseDuration(t)
	default:
		if n, ok := asInt(t); ok && n == 0 {
			d = 0
		} else {
			_, err = definition.ParseDuration(fmt.Sprint(x))
		}
	}
	if err != nil {
		v.fail(field, "%v", err)
		return 0
	}
	if positive && d <= 0 {
		v.fail(field, "must be more than 0")
	}
	return d
}

func asInt(x any) (int, bool) {
	switch t := x.(type) {
	case int:
		return t, true
	case int64:
		return int(t), true
	case uint64:
		return int(t), true
	case float64:
		if t == float64(int(t)) {
			return int(t), true
		}
	case string:
		n, err := strconv.Atoi(t)
		return n, err == nil
	}
	return 0, false
}

func asFloat(x any) (float64, bool) {
	switch t := x.(type) {
	case float64:
		return t, true
	case string:
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	}
	n, ok := asInt(x)
	return float64(n), ok
}

// positionOf finds the line and column of the key at path in a YAML tree,
// or of the deepest key of path that exists (line 1 when none does).
func positionOf(node ast.Node, path ...string) (line, col int) {
	line = 1
	for _, seg := range path {
		mv := definition.Find(node, seg)
		if mv == nil {
			return line, col
		}
		if l, c := definition.Position(mv.Key); l > 0 {
			line, col = l, c
		}
		node = mv.Value
	}
	return line, col
}
