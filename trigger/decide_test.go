package trigger

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	const (
		T      = uint64(1_765_000_000_000) // the qualification's event time
		minute = uint64(time.Minute / time.Millisecond)
		hour   = 60 * minute
		day    = 24 * hour
	)
	base := func(mod func(c *Campaign)) *Campaign {
		c := &Campaign{
			ID:         "c",
			Trigger:    Trigger{Kind: TriggerAudienceEntered, Audience: "a"},
			Staleness:  Staleness{Budget: 15 * time.Minute, Late: LateSkip},
			Reeligible: Reeligibility{After: 30 * 24 * time.Hour},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	capped := func(c *Campaign) {
		c.Reeligible = Reeligibility{}
		c.Cap = &FrequencyCap{Max: 3, Per: 24 * time.Hour}
	}
	unless := func(c *Campaign) {
		c.Trigger = Trigger{Kind: TriggerEvent, Event: EventFilter{Name: "checkout_started"},
			Unless: &Unless{Event: EventFilter{Name: "purchase"}, Within: time.Hour}}
	}
	yes, no := true, false
	tests := []struct {
		name     string
		c        *Campaign
		now      uint64
		history  []uint64
		existing *Entry
		wm       uint64
		followUp *bool
		want     Decision
	}{
		{name: "fresh", c: base(nil), now: T + minute, want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "exactly at the budget is fresh", c: base(nil), now: T + 15*minute, want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: 15 * minute}},
		{name: "detected before its event time (clock skew) is fresh with no lag", c: base(nil), now: T - minute, want: Decision{Action: Fire, Reason: ReasonFresh}},
		{name: "late and policy skip is stale", c: base(nil), now: T + 15*minute + 1, want: Decision{Action: Skip, Reason: ReasonStale, LagMs: 15*minute + 1}},
		{name: "late and policy fire_late fires late", c: base(func(c *Campaign) { c.Staleness.Late = LateFire }), now: T + 3*hour,
			want: Decision{Action: FireLate, Reason: ReasonLate, LagMs: 3 * hour}},
		{name: "re-eligible after 30d: a send 10 days before", c: base(nil), now: T + minute, history: []uint64{T - 10*day},
			want: Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: minute}},
		{name: "re-eligible after 30d: a send 31 days before", c: base(nil), now: T + minute, history: []uint64{T - 31*day},
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "re-eligibility is symmetric: a send 10 days after (late qualification)", c: base(func(c *Campaign) { c.Staleness.Late = LateFire }), now: T + 20*day,
			history: []uint64{T + 10*day}, want: Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: 20 * day}},
		{name: "never re-eligible with a previous send", c: base(func(c *Campaign) { c.Reeligible = Reeligibility{Never: true} }), now: T + minute,
			history: []uint64{T - 400*day}, want: Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: minute}},
		{name: "never re-eligible, first send", c: base(func(c *Campaign) { c.Reeligible = Reeligibility{Never: true} }), now: T + minute,
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "re-eligible always", c: base(func(c *Campaign) { c.Reeligible = Reeligibility{} }), now: T + minute, history: []uint64{T - 1000},
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "cap reached", c: base(capped), now: T + minute, history: []uint64{T - hour, T - 2*hour, T - 3*hour},
			want: Decision{Action: Skip, Reason: ReasonCapped, LagMs: minute}},
		{name: "cap not reached", c: base(capped), now: T + minute, history: []uint64{T - hour, T - 2*hour},
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "cap counts sends after it too", c: base(capped), now: T + minute, history: []uint64{T + hour, T + 2*hour, T + 3*hour},
			want: Decision{Action: Skip, Reason: ReasonCapped, LagMs: minute}},
		{name: "cap window excludes a send exactly one period away", c: base(capped), now: T + minute, history: []uint64{T - day, T - hour, T - 2*hour},
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "not re-eligible is reported before stale", c: base(nil), now: T + 2*hour, history: []uint64{T - day},
			want: Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: 2 * hour}},
		{name: "an existing entry keeps its decision", c: base(nil), now: T + minute,
			existing: &Entry{Decision: string(Skip), Reason: ReasonStale, DetectedAtMs: T + 16*minute},
			want:     Decision{Action: Skip, Reason: ReasonStale, LagMs: 16 * minute, Reused: true}},
		{name: "an existing fire is kept even if now capped", c: base(capped), now: T + minute, history: []uint64{T - hour, T - 2*hour, T - 3*hour},
			existing: &Entry{Decision: string(Fire), Reason: ReasonFresh, DetectedAtMs: T + 1},
			want:     Decision{Action: Fire, Reason: ReasonFresh, LagMs: 1, Reused: true}},
		{name: "unless: watermark not reached waits", c: base(unless), now: T + 2*hour, wm: T + hour - 1, followUp: &no,
			want: Decision{Action: Wait, Reason: ReasonWatermark, LagMs: hour}},
		{name: "unless: watermark unknown waits", c: base(unless), now: T + 2*hour, wm: 0,
			want: Decision{Action: Wait, Reason: ReasonWatermark, LagMs: hour}},
		{name: "unless: watermark reached but follow-up not checked waits", c: base(unless), now: T + hour + minute, wm: T + hour,
			want: Decision{Action: Wait, Reason: ReasonWatermark, LagMs: minute}},
		{name: "unless: follow-up happened", c: base(unless), now: T + hour + minute, wm: T + hour, followUp: &yes,
			want: Decision{Action: Skip, Reason: ReasonConverted, LagMs: minute}},
		{name: "unless: no follow-up fires, lag counted from the end of the window", c: base(unless), now: T + hour + minute, wm: T + hour, followUp: &no,
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "unless: decided long after the window is stale", c: base(unless), now: T + 2*hour, wm: T + 2*hour, followUp: &no,
			want: Decision{Action: Skip, Reason: ReasonStale, LagMs: hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Campaign: tc.c, Q: Qualification{CampaignID: "c", CustomerID: "u", Episode: "1", EventTimeMs: T},
				Existing: tc.existing, History: tc.history, NowMs: tc.now, WatermarkMs: tc.wm, FollowUp: tc.followUp}
			got := Decide(in)
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
			// Decide reads nothing but its input.
			if again := Decide(in); again != got {
				t.Errorf("second Decide = %+v, first %+v", again, got)
			}
		})
	}
}

// TestDecideCapInvariant checks the cap against an oracle: deciding a
// random sequence of qualifications (in random event-time order, as late
// data arrives) never puts more than Max fires in any window of Per.
func TestDecideCapInvariant(t *testing.T) {
	c := &Campaign{Staleness: Staleness{Budget: time.Hour}, Cap: &FrequencyCap{Max: 3, Per: 24 * time.Hour}}
	const day = uint64(24 * time.Hour / time.Millisecond)
	seed := uint64(7)
	next := func() uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return seed >> 33 }
	for round := 0; round < 50; round++ {
		var fires []uint64
		for i := 0; i < 40; i++ {
			ev := 10*day + next()%(5*day)
			d := Decide(Input{Campaign: c, Q: Qualification{EventTimeMs: ev}, History: fires, NowMs: ev})
			if d.Action.Fires() {
				fires = append(fires, ev)
			}
		}
		for _, a := range fires {
			n := 0
			for _, b := range fires {
				if b >= a && b < a+day {
					n++
				}
			}
			if n > 3 {
				t.Fatalf("round %d: %d fires within a day starting at %d: %v", round, n, a, fires)
			}
		}
	}
}
