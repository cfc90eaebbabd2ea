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

// TestDecideControls covers the campaign-safety controls one by one and
// the order in which they apply: each case sets up a qualification that
// more than one control would stop and checks that the earliest wins.
func TestDecideControls(t *testing.T) {
	const (
		minute = uint64(time.Minute / time.Millisecond)
		hour   = 60 * minute
	)
	// 2026-06-10 14:00 UTC: afternoon in Paris (16:00), night in Tokyo (23:00).
	T := uint64(time.Date(2026, 6, 10, 14, 0, 0, 0, time.UTC).UnixMilli())
	night := &QuietHours{From: 21 * 3600, To: 8 * 3600, Policy: QuietDefer}
	policy := &Policy{
		Caps:     []GlobalCap{{Max: 3, Per: 24 * time.Hour}, {Max: 1, Per: time.Hour, Group: "promo"}},
		TimeZone: TimeZone{Attribute: "timezone", Default: "Europe/Paris"},
	}
	base := func(mod func(c *Campaign)) *Campaign {
		c := &Campaign{
			ID: "c", Trigger: Trigger{Kind: TriggerAudienceEntered, Audience: "a"},
			Staleness: Staleness{Budget: 15 * time.Minute, Late: LateFire},
			Consent:   &Consent{Attribute: "email_opt_in", Equals: true},
			Policy:    policy,
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	optIn := map[string]any{"email_opt_in": true, "timezone": "Europe/Paris"}
	tokyo := map[string]any{"email_opt_in": "true", "timezone": "Asia/Tokyo"}
	quiet := func(c *Campaign) { c.Quiet = night }
	promo := func(c *Campaign) { c.Groups = []string{"promo"} }
	unsub := &Suppression{Reason: "unsubscribe", Source: "event", AtMs: T - hour}
	// 08:00 in Tokyo (UTC+9) on the next day.
	tokyoMorning := uint64(time.Date(2026, 6, 10, 23, 0, 0, 0, time.UTC).UnixMilli())
	tests := []struct {
		name    string
		c       *Campaign
		now     uint64
		attrs   map[string]any
		supp    *Suppression
		history []uint64
		others  []Sent
		want    Decision
	}{
		{name: "consent given fires", c: base(nil), now: T + minute, attrs: optIn,
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "consent missing skips", c: base(nil), now: T + minute, attrs: map[string]any{},
			want: Decision{Action: Skip, Reason: ReasonNoConsent, LagMs: minute, Detail: "email_opt_in = true required"}},
		{name: "consent withdrawn skips", c: base(nil), now: T + minute, attrs: map[string]any{"email_opt_in": false},
			want: Decision{Action: Skip, Reason: ReasonNoConsent, LagMs: minute, Detail: "email_opt_in = true required"}},
		{name: "subscription group listed fires", c: base(func(c *Campaign) { c.Consent = &Consent{Attribute: "subscription_groups", Contains: "promo"} }),
			now: T + minute, attrs: map[string]any{"subscription_groups": []any{"news", "promo"}},
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "subscription group in a comma-separated attribute fires", c: base(func(c *Campaign) { c.Consent = &Consent{Attribute: "subscription_groups", Contains: "promo"} }),
			now: T + minute, attrs: map[string]any{"subscription_groups": "news, promo"},
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "subscription group not listed skips", c: base(func(c *Campaign) { c.Consent = &Consent{Attribute: "subscription_groups", Contains: "promo"} }),
			now: T + minute, attrs: map[string]any{"subscription_groups": []any{"news"}},
			want: Decision{Action: Skip, Reason: ReasonNoConsent, LagMs: minute, Detail: "subscription_groups contains promo required"}},
		{name: "consent comes before suppression", c: base(nil), now: T + minute, attrs: map[string]any{}, supp: unsub,
			want: Decision{Action: Skip, Reason: ReasonNoConsent, LagMs: minute, Detail: "email_opt_in = true required"}},
		{name: "suppressed skips with its reason", c: base(nil), now: T + minute, attrs: optIn, supp: unsub,
			want: Decision{Action: Skip, Reason: ReasonSuppressed, LagMs: minute, Detail: "unsubscribe"}},
		{name: "suppression comes before re-eligibility and caps", c: base(func(c *Campaign) { c.Reeligible.Never = true }), now: T + minute,
			attrs: optIn, supp: unsub, history: []uint64{T - hour},
			want: Decision{Action: Skip, Reason: ReasonSuppressed, LagMs: minute, Detail: "unsubscribe"}},
		{name: "re-eligibility comes before the global cap", c: base(func(c *Campaign) { c.Reeligible.Never = true }), now: T + minute,
			attrs: optIn, history: []uint64{T - hour}, others: []Sent{{EventMs: T}, {EventMs: T}, {EventMs: T}},
			want: Decision{Action: Skip, Reason: ReasonNotReeligible, LagMs: minute}},
		{name: "campaign cap comes before the global cap", c: base(func(c *Campaign) { c.Cap = &FrequencyCap{Max: 1, Per: time.Hour} }), now: T + minute,
			attrs: optIn, history: []uint64{T - minute}, others: []Sent{{EventMs: T}, {EventMs: T}},
			want: Decision{Action: Skip, Reason: ReasonCapped, LagMs: minute}},
		{name: "global cap counts other campaigns", c: base(nil), now: T + minute, attrs: optIn,
			others: []Sent{{Campaign: "x", EventMs: T - hour}, {Campaign: "y", EventMs: T - 2*hour}, {Campaign: "z", EventMs: T + 3*hour}},
			want:   Decision{Action: Skip, Reason: ReasonCappedGlobal, LagMs: minute, Detail: "3 per 1d"}},
		{name: "global cap counts this campaign's own sends too", c: base(nil), now: T + minute, attrs: optIn,
			history: []uint64{T - hour}, others: []Sent{{Campaign: "x", EventMs: T - hour}, {Campaign: "y", EventMs: T - 2*hour}},
			want: Decision{Action: Skip, Reason: ReasonCappedGlobal, LagMs: minute, Detail: "3 per 1d"}},
		{name: "global cap window is by event time", c: base(nil), now: T + minute, attrs: optIn,
			others: []Sent{{EventMs: T - 25*hour}, {EventMs: T - hour}, {EventMs: T + 25*hour}},
			want:   Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "group cap applies to the group's campaigns", c: base(promo), now: T + minute, attrs: optIn,
			others: []Sent{{Campaign: "x", Groups: []string{"promo"}, EventMs: T - 30*minute}},
			want:   Decision{Action: Skip, Reason: ReasonCappedGlobal, LagMs: minute, Detail: "1 per 1h in group promo"}},
		{name: "group cap ignores sends outside the group", c: base(promo), now: T + minute, attrs: optIn,
			others: []Sent{{Campaign: "x", Groups: []string{"news"}, EventMs: T - 30*minute}},
			want:   Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "group cap does not apply outside the group", c: base(nil), now: T + minute, attrs: optIn,
			others: []Sent{{Campaign: "x", Groups: []string{"promo"}, EventMs: T - 30*minute}},
			want:   Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "global cap comes before staleness", c: base(func(c *Campaign) { c.Staleness.Late = LateSkip }), now: T + 3*hour, attrs: optIn,
			others: []Sent{{EventMs: T}, {EventMs: T}, {EventMs: T}},
			want:   Decision{Action: Skip, Reason: ReasonCappedGlobal, LagMs: 3 * hour, Detail: "3 per 1d"}},
		{name: "quiet hours: afternoon in Paris fires now", c: base(quiet), now: T + minute, attrs: optIn,
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: minute}},
		{name: "quiet hours: the same instant is night in Tokyo, deferred to 08:00 Tokyo", c: base(quiet), now: T, attrs: tokyo,
			want: Decision{Action: Fire, Reason: ReasonFresh, ReleaseAtMs: tokyoMorning, Detail: "21:00 to 08:00, defer in Asia/Tokyo"}},
		{name: "quiet hours: skip by policy", c: base(func(c *Campaign) { c.Quiet = &QuietHours{From: 21 * 3600, To: 8 * 3600, Policy: QuietSkip} }), now: T, attrs: tokyo,
			want: Decision{Action: Skip, Reason: ReasonQuietHours, Detail: "21:00 to 08:00, skip in Asia/Tokyo"}},
		{name: "quiet hours: an invalid zone falls back to the policy default", c: base(quiet), now: T, attrs: map[string]any{"email_opt_in": true, "timezone": "Mars/Olympus"},
			want: Decision{Action: Fire, Reason: ReasonFresh}},
		{name: "quiet hours: the policy's hours apply to a campaign without its own", c: base(func(c *Campaign) {
			p := *policy
			p.QuietHours = night
			c.Policy = &p
		}), now: T, attrs: tokyo,
			want: Decision{Action: Fire, Reason: ReasonFresh, ReleaseAtMs: tokyoMorning, Detail: "21:00 to 08:00, defer in Asia/Tokyo"}},
		{name: "quiet hours: a late fire is deferred too, and stays late", c: base(quiet), now: T + 9*hour, attrs: optIn,
			want: Decision{Action: FireLate, Reason: ReasonLate, LagMs: 9 * hour,
				ReleaseAtMs: uint64(time.Date(2026, 6, 11, 6, 0, 0, 0, time.UTC).UnixMilli()), Detail: "21:00 to 08:00, defer in Europe/Paris"}},
		{name: "quiet hours come after staleness: a stale skip is not deferred", c: base(func(c *Campaign) { c.Quiet = night; c.Staleness.Late = LateSkip }),
			now: T + 9*hour, attrs: optIn, want: Decision{Action: Skip, Reason: ReasonStale, LagMs: 9 * hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Campaign: tc.c, Q: Qualification{CampaignID: "c", CustomerID: "u", Episode: "1", EventTimeMs: T},
				History: tc.history, NowMs: tc.now, Attributes: tc.attrs, Suppression: tc.supp, Others: tc.others}
			if got := Decide(in); got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestQuietHoursAcrossDST checks the release time across daylight saving
// changes: the end of the quiet period is the local clock time on the
// day it ends, whatever the offset was when the period began.
func TestQuietHoursAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	q := &QuietHours{From: 22 * 3600, To: 8 * 3600, Policy: QuietDefer}
	tests := []struct {
		name      string
		now, want time.Time
	}{
		// Clocks go forward at 02:00 on 2026-03-08: 23:30 EST is 04:30 UTC,
		// 08:00 EDT is 12:00 UTC (9.5 hours later, not 8.5 + 1).
		{"spring forward", time.Date(2026, 3, 7, 23, 30, 0, 0, ny), time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)},
		{"spring forward, after midnight", time.Date(2026, 3, 8, 1, 30, 0, 0, ny), time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)},
		// Clocks go back at 02:00 on 2026-11-01: 08:00 EST is 13:00 UTC.
		{"fall back", time.Date(2026, 10, 31, 23, 0, 0, 0, ny), time.Date(2026, 11, 1, 13, 0, 0, 0, time.UTC)},
		{"fall back, the repeated hour", time.Date(2026, 11, 1, 1, 30, 0, 0, ny).Add(time.Hour), time.Date(2026, 11, 1, 13, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, quiet := quietUntil(q, ny, uint64(tc.now.UnixMilli()))
			if !quiet {
				t.Fatalf("%s is not quiet", tc.now)
			}
			if g := time.UnixMilli(int64(got)).UTC(); !g.Equal(tc.want) {
				t.Errorf("release at %s, want %s", g, tc.want)
			}
		})
	}
	if _, quiet := quietUntil(q, ny, uint64(time.Date(2026, 3, 8, 8, 0, 0, 0, ny).UnixMilli())); quiet {
		t.Error("08:00 is the end of the quiet period, not inside it")
	}
}

// TestDecideGlobalCapInvariant checks the global cap against an oracle:
// qualifications of three campaigns for one customer, decided in random
// event-time order (late data), never put more than Max fires of all
// campaigns in any window of Per, nor more than the group's cap in the
// group's campaigns.
func TestDecideGlobalCapInvariant(t *testing.T) {
	const day = uint64(24 * time.Hour / time.Millisecond)
	policy := &Policy{Caps: []GlobalCap{{Max: 3, Per: 24 * time.Hour}, {Max: 1, Per: 24 * time.Hour, Group: "promo"}}}
	cs := []*Campaign{
		{ID: "a", Staleness: Staleness{Budget: time.Hour}, Policy: policy, Groups: []string{"promo"}},
		{ID: "b", Staleness: Staleness{Budget: time.Hour}, Policy: policy, Groups: []string{"promo"}},
		{ID: "c", Staleness: Staleness{Budget: time.Hour}, Policy: policy},
	}
	seed := uint64(11)
	next := func() uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return seed >> 33 }
	type sent struct {
		c  *Campaign
		at uint64
	}
	for round := 0; round < 50; round++ {
		var fires []sent
		for i := 0; i < 60; i++ {
			c := cs[next()%3]
			ev := 10*day + next()%(5*day)
			in := Input{Campaign: c, Q: Qualification{CampaignID: c.ID, EventTimeMs: ev}, NowMs: ev}
			for _, f := range fires {
				if f.c == c {
					in.History = append(in.History, f.at)
				} else {
					in.Others = append(in.Others, Sent{Campaign: f.c.ID, Groups: f.c.Groups, EventMs: f.at})
				}
			}
			if Decide(in).Action.Fires() {
				fires = append(fires, sent{c, ev})
			}
		}
		for _, a := range fires {
			all, promo := 0, 0
			for _, b := range fires {
				if b.at >= a.at && b.at < a.at+day {
					all++
					if b.c.InGroup("promo") {
						promo++
					}
				}
			}
			if all > 3 || promo > 1 {
				t.Fatalf("round %d: %d fires (%d promo) within a day from %d", round, all, promo, a.at)
			}
		}
	}
}
