package trigger

import (
	"fmt"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // customers' time zones must resolve the same on every host

	"github.com/tideline-dev/tideline/definition"
)

// Consent is an attribute a campaign requires: a qualification of a
// customer whose attribute does not equal Equals (or, for a subscription
// group, does not contain Contains) is skipped ("no_consent"). A missing
// attribute is no consent.
type Consent struct {
	Attribute string
	Equals    any
	// Contains, when set, is a subscription group the attribute (a list,
	// or a comma-separated string) must hold.
	Contains string
}

// Quiet-hours policies.
const (
	QuietDefer = "defer" // hold the fire until the quiet period ends
	QuietSkip  = "skip"  // skip it ("quiet_hours")
)

// QuietHours is a daily period in the customer's local time during which
// nothing is sent. From and To are seconds after local midnight; From > To
// spans midnight (21:00 to 08:00).
type QuietHours struct {
	From, To int
	Policy   string
}

// TimeZone says where a customer's time zone comes from.
type TimeZone struct {
	// Attribute names the customer attribute holding an IANA zone name
	// (default "timezone").
	Attribute string
	// Default is the zone of customers without a valid one (default UTC).
	Default string
}

// GlobalCap bounds sends per customer across campaigns: at most Max in any
// window of Per (by qualification event time), over every campaign, or
// over the campaigns of Group only.
type GlobalCap struct {
	Max   int
	Per   time.Duration
	Group string
}

// Policy holds the controls shared by every campaign, declared in the
// campaigns folder's _policy.yaml.
type Policy struct {
	Caps []GlobalCap
	// QuietHours apply to every campaign that declares none of its own.
	QuietHours *QuietHours
	TimeZone   TimeZone
	// File is where the policy was read from ("" when none).
	File string
}

// Throttle bounds the send rate to one destination: Rate messages per
// second on average, Burst at once.
type Throttle struct {
	Rate  float64
	Burst int
}

// Suppression says a customer must receive nothing: loaded by an operator
// or added by an unsubscribe event.
type Suppression struct {
	Reason string
	Source string
	AtMs   uint64
}

// Sent is a fire of another campaign to the same customer, for global caps.
type Sent struct {
	Campaign string
	Groups   []string
	EventMs  uint64
}

func (q *QuietHours) String() string {
	return fmt.Sprintf("%s to %s, %s", clock(q.From), clock(q.To), q.Policy)
}

func (g GlobalCap) String() string {
	s := fmt.Sprintf("%d per %s", g.Max, definition.FormatDuration(g.Per))
	if g.Group != "" {
		s += " in group " + g.Group
	}
	return s
}

func clock(sec int) string {
	if sec%60 != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
	}
	return fmt.Sprintf("%02d:%02d", sec/3600, sec/60%60)
}

// quietHours returns the quiet hours that apply to c: its own, else the
// policy's.
func (c *Campaign) quietHours() *QuietHours {
	if c.Quiet != nil {
		return c.Quiet
	}
	if c.Policy != nil {
		return c.Policy.QuietHours
	}
	return nil
}

// InGroup reports whether c belongs to group ("" is every campaign).
func (c *Campaign) InGroup(group string) bool {
	if group == "" {
		return true
	}
	for _, g := range c.Groups {
		if g == group {
			return true
		}
	}
	return false
}

func (c *Campaign) timeZone() TimeZone {
	tz := TimeZone{Attribute: "timezone", Default: "UTC"}
	if c.Policy != nil {
		if c.Policy.TimeZone.Attribute != "" {
			tz.Attribute = c.Policy.TimeZone.Attribute
		}
		if c.Policy.TimeZone.Default != "" {
			tz.Default = c.Policy.TimeZone.Default
		}
	}
	return tz
}

// contextTimeZone is the attribute the collector keeps from Segment's
// context.timezone: the zone the customer's own device reported.
const contextTimeZone = "context_timezone"

// customerLocation is the time zone of a customer with attrs for c: the
// zone named by the time-zone attribute when it is a valid IANA name, else
// the zone the customer's device last reported (context.timezone), else
// the default.
func customerLocation(c *Campaign, attrs map[string]any) *time.Location {
	tz := c.timeZone()
	for _, name := range []string{tz.Attribute, contextTimeZone} {
		if s, ok := attrs[name].(string); ok && s != "" {
			if loc, err := location(s); err == nil {
				return loc
			}
		}
	}
	if loc, err := location(tz.Default); err == nil {
		return loc
	}
	return time.UTC
}

var zones sync.Map // name -> *time.Location

// location loads an IANA zone once. The zone database is embedded
// (time/tzdata) when the host has none, so the same name gives the same
// rules everywhere and a decision does not depend on the host.
func location(name string) (*time.Location, error) {
	if v, ok := zones.Load(name); ok {
		return v.(*time.Location), nil
	}
	if strings.EqualFold(name, "local") {
		return nil, fmt.Errorf("time zone %q: name an IANA zone such as Europe/Paris", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	zones.Store(name, loc)
	return loc, nil
}

// quietUntil reports whether nowMs falls in q for a customer in loc, and
// when the quiet period ends (epoch ms). The end is the next local To
// clock time, computed in the zone's rules, so a DST change between now
// and then moves it by the hour the clocks moved.
func quietUntil(q *QuietHours, loc *time.Location, nowMs uint64) (uint64, bool) {
	if q == nil || q.From == q.To {
		return 0, false
	}
	t := time.UnixMilli(int64(nowMs)).In(loc)
	m := t.Hour()*3600 + t.Minute()*60 + t.Second()
	var quiet bool
	if q.From < q.To {
		quiet = m >= q.From && m < q.To
	} else {
		quiet = m >= q.From || m < q.To
	}
	if !quiet {
		return 0, false
	}
	y, mo, d := t.Date()
	if m >= q.To {
		// Before midnight of a period spanning it: it ends tomorrow.
		d++
	}
	end := time.Date(y, mo, d, q.To/3600, q.To/60%60, q.To%60, 0, loc)
	return uint64(end.UnixMilli()), true
}

// consents reports whether attrs satisfy the consent requirement. Values
// compare as text, so true and "true" agree.
func (cn *Consent) consents(attrs map[string]any) bool {
	v, ok := attrs[cn.Attribute]
	if !ok {
		return false
	}
	if cn.Contains == "" {
		return fmt.Sprint(v) == fmt.Sprint(cn.Equals)
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if fmt.Sprint(e) == cn.Contains {
				return true
			}
		}
	case string:
		for _, e := range strings.Split(x, ",") {
			if strings.TrimSpace(e) == cn.Contains {
				return true
			}
		}
	}
	return false
}

func (cn *Consent) String() string {
	if cn.Contains != "" {
		return fmt.Sprintf("%s contains %s", cn.Attribute, cn.Contains)
	}
	return fmt.Sprintf("%s = %v", cn.Attribute, cn.Equals)
}
