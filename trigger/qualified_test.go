package trigger

import (
	"testing"
	"time"
)

// TestDecideByQualificationTime is the status page's evening in one
// customer: plan gold at 23:54 (the moment the audience's condition became
// true), the same plan sent again at 01:27, the entry detected at 01:28.
// The budget is measured from 23:54, the entry's event time as the
// evaluator dates it, so the welcome is stale; measured from the repeated
// identify it would have passed for a fresh one.
func TestDecideByQualificationTime(t *testing.T) {
	became := time.Date(2025, 12, 14, 23, 54, 0, 0, time.UTC)
	repeated := became.Add(93 * time.Minute)
	detected := repeated.Add(time.Minute)
	c := &Campaign{
		ID:        "welcome_gold",
		Trigger:   Trigger{Kind: TriggerAudienceEntered, Audience: "gold_repeat_buyers"},
		Staleness: Staleness{Budget: 15 * time.Minute, Late: LateSkip},
	}
	ms := func(t time.Time) uint64 { return uint64(t.UnixMilli()) }
	tests := []struct {
		name      string
		qualified time.Time
		late      LatePolicy
		want      Decision
	}{
		{name: "dated when it became true: stale", qualified: became, late: LateSkip,
			want: Decision{Action: Skip, Reason: ReasonStale, LagMs: ms(detected) - ms(became)}},
		{name: "dated when it became true, policy fire_late: late, with the true lag", qualified: became, late: LateFire,
			want: Decision{Action: FireLate, Reason: ReasonLate, LagMs: ms(detected) - ms(became)}},
		{name: "dated by the repeated identify it would pass for fresh", qualified: repeated, late: LateSkip,
			want: Decision{Action: Fire, Reason: ReasonFresh, LagMs: ms(detected) - ms(repeated)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			cc.Staleness.Late = tc.late
			got := Decide(Input{Campaign: &cc, Q: Qualification{CampaignID: cc.ID, CustomerID: "u1", AudienceID: "gold_repeat_buyers", Episode: "1", EventTimeMs: ms(tc.qualified)}, NowMs: ms(detected)})
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}
