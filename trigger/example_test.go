package trigger_test

import (
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/trigger"
)

func ExampleParseCampaign() {
	c, err := trigger.ParseCampaign("welcome_gold.yaml", []byte(`
id: welcome_gold
trigger:
  audience_entered: gold_repeat_buyers
staleness: {budget: 15m, late: skip}
reeligible_after: 30d
deliver:
  kafka_topic: campaign.fires
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.ID, c.Trigger.Kind, c.Trigger.Audience, c.Staleness, c.Reeligible)

	_, err = trigger.ParseCampaign("bad.yaml", []byte(`
id: bad
trigger:
  audience_entered: gold_repeat_buyers
staleness: {budget: 15 minutes, late: skip}
reeligible_after: 30d
deliver:
  kafka_topic: campaign.fires
`))
	fmt.Println(err)
	// Output:
	// welcome_gold audience_entered gold_repeat_buyers 15m then skip after 30d
	// bad.yaml:5:13: staleness.budget: "15 minutes" is not a duration: unknown unit " minutes"; write numbers each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g. 15m, 7d or 1d12h
}

func ExampleDecide() {
	c := &trigger.Campaign{
		ID:        "welcome_gold",
		Trigger:   trigger.Trigger{Kind: trigger.TriggerAudienceEntered, Audience: "gold_repeat_buyers"},
		Staleness: trigger.Staleness{Budget: 15 * time.Minute, Late: trigger.LateSkip},
	}
	entered := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	q := trigger.Qualification{CampaignID: c.ID, CustomerID: "c1", AudienceID: "gold_repeat_buyers", Episode: "1",
		EventTimeMs: uint64(entered.UnixMilli())}
	for _, detected := range []time.Duration{2 * time.Second, time.Hour} {
		d := trigger.Decide(trigger.Input{Campaign: c, Q: q, NowMs: uint64(entered.Add(detected).UnixMilli())})
		fmt.Printf("detected %v after entry: %s (%s)\n", detected, d.Action, d.Reason)
	}
	// Output:
	// detected 2s after entry: fire (fresh)
	// detected 1h0m0s after entry: skip (stale)
}
