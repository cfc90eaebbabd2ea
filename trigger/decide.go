package trigger

import "time"

// Action is what the poller does with a qualification.
type Action string

// Actions. Fire, FireLate and Skip are final and recorded in the ledger;
// Wait is not recorded: the qualification is decided again later.
const (
	Fire     Action = "fire"
	FireLate Action = "fire_late"
	Skip     Action = "skip"
	Wait     Action = "wait"
)

// Reasons recorded with a decision.
const (
	ReasonFresh         = "fresh"          // detected within the staleness budget
	ReasonLate          = "late"           // beyond the budget, fired late by policy
	ReasonStale         = "stale"          // beyond the budget, skipped by policy
	ReasonCapped        = "capped"         // the frequency cap is reached
	ReasonNotReeligible = "not_reeligible" // a previous send is too close (or re-eligibility is never)
	ReasonConverted     = "converted"      // the unless follow-up happened within its window
	ReasonWatermark     = "watermark_not_reached"
	ReasonNoConsent     = "no_consent"     // the required consent attribute is missing or different
	ReasonSuppressed    = "suppressed"     // the customer is on the suppression list
	ReasonCappedGlobal  = "capped_global"  // a cap across campaigns is reached
	ReasonQuietHours    = "quiet_hours"    // in the customer's quiet hours, skipped by policy
	ReasonTemplateError = "template_error" // the body template failed for the customer's values
)

// Fires reports whether a decision sends something.
func (a Action) Fires() bool { return a == Fire || a == FireLate }

// Input is everything a decision depends on. Decide reads nothing else, so
// the same input always gives the same decision.
type Input struct {
	Campaign *Campaign
	Q        Qualification
	// Existing is the ledger entry already recorded for Q's key, if any:
	// its decision is reused, never re-decided.
	Existing *Entry
	// History holds the qualification event times (epoch ms) of the
	// customer's other fires of this campaign.
	History []uint64
	// NowMs is the detection time.
	NowMs uint64
	// WatermarkMs is the lanes' completeness watermark ("every event received
	// before this time is loaded"); 0 when unknown.
	WatermarkMs uint64
	// FollowUp reports, for campaigns with an unless condition, whether the
	// follow-up event happened within its window; nil when not checked yet.
	FollowUp *bool
	// Attributes are the customer's current attributes (consent, time zone).
	Attributes map[string]any
	// Suppression is the customer's suppression, nil when there is none.
	Suppression *Suppression
	// Others are the customer's fires of other campaigns, for global caps.
	Others []Sent
}

// Decision is the outcome for one qualification.
type Decision struct {
	Action Action
	Reason string
	// LagMs is how long after its due time the qualification was detected.
	LagMs uint64
	// Reused is set when the decision comes from an existing ledger entry.
	Reused bool
	// Detail qualifies the reason: the cap window of "capped_global", the
	// suppression's reason, the quiet hours and zone of a deferral.
	Detail string
	// ReleaseAtMs, for a fire in quiet hours deferred by policy, is when
	// the quiet period ends; 0 for a fire to send now.
	ReleaseAtMs uint64
}

// DueMs is when a qualification can first be decided: its event time, or
// the end of its unless window.
func DueMs(c *Campaign, q Qualification) uint64 {
	if c.Trigger.Unless != nil {
		return q.EventTimeMs + uint64(c.Trigger.Unless.Within/time.Millisecond)
	}
	return q.EventTimeMs
}

// Decide applies a campaign's policy to one qualification. In order:
//
//  1. an existing ledger entry's decision is kept (the decision is sticky);
//  2. a negative condition (unless) waits until the watermark passed the
//     end of its window: absence is never concluded from data that may
//     still be on its way; then a follow-up skips it as "converted";
//  3. consent: a customer without the required attribute value is skipped
//     as "no_consent";
//  4. suppression: a suppressed customer is skipped as "suppressed";
//  5. re-eligibility: any other send closer than reeligible_after (or any
//     at all with "never") skips it as "not_reeligible";
//  6. the frequency cap: Max other sends within Per of it skips it as "capped";
//  7. the global caps: Max sends of the customer over all campaigns (or a
//     group's) within Per of it skips it as "capped_global", the window in
//     Detail;
//  8. staleness: detected within the budget after its due time fires
//     ("fresh"); beyond it, fires late ("late") or skips ("stale") by policy;
//  9. quiet hours: a fire decided while it is quiet in the customer's time
//     zone is deferred to the end of the quiet period (ReleaseAtMs) or
//     skipped as "quiet_hours", by policy.
//
// Distances in 5 to 7 are taken by event time in both directions, so a
// late qualification older than an existing send is judged by the same
// rule as a newer one, and no window of Per ever holds more than Max sends.
// The only clock is NowMs: staleness and quiet hours read it, nothing else.
func Decide(in Input) Decision {
	c := in.Campaign
	if e := in.Existing; e != nil {
		return Decision{Action: Action(e.Decision), Reason: e.Reason, LagMs: sub(e.DetectedAtMs, DueMs(c, in.Q)), Reused: true}
	}
	due := DueMs(c, in.Q)
	lag := sub(in.NowMs, due)
	skip := func(reason, detail string) Decision {
		return Decision{Action: Skip, Reason: reason, LagMs: lag, Detail: detail}
	}
	if c.Trigger.Unless != nil {
		if in.WatermarkMs < due || in.FollowUp == nil {
			return Decision{Action: Wait, Reason: ReasonWatermark, LagMs: lag}
		}
		if *in.FollowUp {
			return skip(ReasonConverted, "")
		}
	}
	if cn := c.Consent; cn != nil && !cn.consents(in.Attributes) {
		return skip(ReasonNoConsent, cn.String()+" required")
	}
	if s := in.Suppression; s != nil {
		return skip(ReasonSuppressed, s.Reason)
	}
	t := in.Q.EventTimeMs
	if c.Reeligible.Never && len(in.History) > 0 {
		return skip(ReasonNotReeligible, "")
	}
	if d := ms(c.Reeligible.After); d > 0 {
		for _, h := range in.History {
			if dist(t, h) < d {
				return skip(ReasonNotReeligible, "")
			}
		}
	}
	if fc := c.Cap; fc != nil && within(t, in.History, ms(fc.Per)) >= fc.Max {
		return skip(ReasonCapped, "")
	}
	if c.Policy != nil {
		for _, g := range c.Policy.Caps {
			if !c.InGroup(g.Group) {
				continue
			}
			per := ms(g.Per)
			n := within(t, in.History, per)
			for _, o := range in.Others {
				if dist(t, o.EventMs) < per && inGroups(o.Groups, g.Group) {
					n++
				}
			}
			if n >= g.Max {
				return skip(ReasonCappedGlobal, g.String())
			}
		}
	}
	d := Decision{Action: Fire, Reason: ReasonFresh, LagMs: lag}
	if lag > ms(c.Staleness.Budget) {
		if c.Staleness.Late != LateFire {
			return skip(ReasonStale, "")
		}
		d.Action, d.Reason = FireLate, ReasonLate
	}
	if qh := c.quietHours(); qh != nil {
		loc := customerLocation(c, in.Attributes)
		if until, quiet := quietUntil(qh, loc, in.NowMs); quiet {
			detail := qh.String() + " in " + loc.String()
			if qh.Policy == QuietSkip {
				return skip(ReasonQuietHours, detail)
			}
			d.ReleaseAtMs, d.Detail = until, detail
		}
	}
	return d
}

// within counts the times closer than per to t.
func within(t uint64, times []uint64, per uint64) int {
	n := 0
	for _, h := range times {
		if dist(t, h) < per {
			n++
		}
	}
	return n
}

func inGroups(groups []string, group string) bool {
	if group == "" {
		return true
	}
	for _, g := range groups {
		if g == group {
			return true
		}
	}
	return false
}

func ms(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d / time.Millisecond)
}

func sub(a, b uint64) uint64 {
	if a <= b {
		return 0
	}
	return a - b
}

func dist(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
