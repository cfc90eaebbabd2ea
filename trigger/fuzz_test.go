package trigger

import "testing"

// FuzzParseCampaign feeds arbitrary YAML to the campaign parser. Invariant:
// no panic, and an accepted campaign has an id and a destination.
func FuzzParseCampaign(f *testing.F) {
	for _, s := range []string{
		"id: welcome_gold\ntrigger:\n  audience_entered: gold_repeat_buyers\nstaleness:\n  budget: 15m\n  late: skip\nreeligible_after: 30d\nfrequency_cap: {max: 3, per: 1d}\ndeliver:\n  webhook: {url: https://example.test/hooks/welcome, secret_env: WELCOME_SECRET}\n",
		"id: thanks\ntrigger:\n  event:\n    name: purchase\n    where:\n      amount: {gt: 100}\nstaleness: {budget: 1h, late: fire_late}\ndeliver: {kafka_topic: campaign.fires}\n",
		"id: r\ntrigger:\n  event: {name: checkout_started}\n  unless: {event: {name: purchase}, within: 1h}\nstaleness: {budget: 30m, late: skip}\ndeliver: {kafka_topic: x}\n",
		"id: 'x; DROP TABLE send_ledger'\n", "deliver: {webhook: {url: 'file:///etc/passwd'}}", ":", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := ParseCampaign("fuzz.yaml", src)
		if err != nil {
			return
		}
		if c.ID == "" || len(c.Destinations()) == 0 {
			t.Fatalf("accepted a campaign without id or destination: %+v", c)
		}
	})
}
