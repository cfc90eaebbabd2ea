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
}

// Decision is the outcome for one qualification.
type Decision struct {
	Action Action
	Reason string
	// LagMs is how long after its due time the qualification was detected.
	LagMs uint64
	// Reused is set when the decision comes from an existing ledger entry.
	Reused bool
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
//  3. re-eligibility: any other send closer than reeligible_after (or any
//     at all with "never") skips it as "not_reeligible";
//  4. the frequency cap: Max other sends within Per of it skips it as "capped";
//  5. staleness: detected within the budget after its due time fires
//     ("fresh"); beyond it, fires late ("late") or skips ("stale") by policy.
//
// Distances in 3 and 4 are taken by event time in both directions, so a
// late qualification older than an existing send is judged by the same
// rule as a newer one, and no window of Per ever holds more than Max sends.
func Decide(in Input) Decision {
	c := in.Campaign
	if e := in.Existing; e != nil {
		return Decision{Action: Action(e.Decision), Reason: e.Reason, LagMs: sub(e.DetectedAtMs, DueMs(c, in.Q)), Reused: true}
	}
	due := DueMs(c, in.Q)
	lag := sub(in.NowMs, due)
	if c.Trigger.Unless != nil {
		if in.WatermarkMs < due || in.FollowUp == nil {
			return Decision{Action: Wait, Reason: ReasonWatermark, LagMs: lag}
		}
		if *in.FollowUp {
			return Decision{Action: Skip, Reason: ReasonConverted, LagMs: lag}
		}
	}
	t := in.Q.EventTimeMs
	if c.Reeligible.Never && len(in.History) > 0 {
		return Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: lag}
	}
	if d := ms(c.Reeligible.After); d > 0 {
		for _, h := range in.History {
			if dist(t, h) < d {
				return Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: lag}
			}
		}
	}
	if fc := c.Cap; fc != nil {
		per, n := ms(fc.Per), 0
		for _, h := range in.History {
			if dist(t, h) < per {
				n++
			}
		}
		if n >= fc.Max {
			return Decision{Action: Skip, Reason: ReasonCapped, LagMs: lag}
		}
	}
	if lag <= ms(c.Staleness.Budget) {
		return Decision{Action: Fire, Reason: ReasonFresh, LagMs: lag}
	}
	if c.Staleness.Late == LateFire {
		return Decision{Action: FireLate, Reason: ReasonLate, LagMs: lag}
	}
	return Decision{Action: Skip, Reason: ReasonStale, LagMs: lag}
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
