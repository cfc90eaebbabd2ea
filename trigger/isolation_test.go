package trigger

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// TestSlowDestinationIsolated checks that a slow endpoint only holds its
// own workers: with four workers per destination and an endpoint taking
// 1.5 s per request, its 20 deliveries need at least 7.5 s, while another
// campaign's 40, decided in the same poll, are all delivered long before.
func TestSlowDestinationIsolated(t *testing.T) {
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	h.SetChaos("/slow", receiver.Chaos{Timeout: 1, TimeoutDelay: 1500 * time.Millisecond})
	t.Setenv("ISO_SECRET", h.Secret.String())
	var cs []*Campaign
	for _, id := range []string{"slow", "fast"} {
		cs = append(cs, campaign(t, fmt.Sprintf(`
id: %s
trigger: {audience_entered: %s}
staleness: {budget: 1h}
reeligible_after: 0
deliver:
  webhook: {url: %s/%s, secret_env: ISO_SECRET}`, id, id, h.URL, id)))
	}
	cfg := testConfig()
	cfg.MaxInFlight = 4
	cfg.WebhookTimeout = 10 * time.Second
	startPoller(t, cfg, cs, conn, broker.Config{}, nil)
	now := chdb.NowMs()
	var trs []transition
	for i := 0; i < 40; i++ {
		trs = append(trs, transition{audience: "fast", customer: fmt.Sprintf("f%02d", i), episode: 1, eventMs: now})
		if i < 20 {
			trs = append(trs, transition{audience: "slow", customer: fmt.Sprintf("s%02d", i), episode: 1, eventMs: now})
		}
	}
	insertTransitions(t, conn, trs)
	delivered := func(prefix string) int {
		n := 0
		for _, ds := range h.Deliveries() {
			for _, d := range ds {
				if d.Status == 200 && strings.HasPrefix(d.Path, prefix) {
					n++
					break
				}
			}
		}
		return n
	}
	testenv.Eventually(t, 60*time.Second, "the fast campaign delivered", func() (bool, string) {
		return delivered("/fast") == 40, fmt.Sprintf("fast %d, slow %d", delivered("/fast"), delivered("/slow"))
	})
	if slow := delivered("/slow"); slow >= 20 {
		t.Fatalf("the slow endpoint had all %d deliveries by the time the fast one finished: the test did not exercise isolation", slow)
	}
	testenv.Eventually(t, 90*time.Second, "the slow campaign delivered too", func() (bool, string) {
		return delivered("/slow") == 20, fmt.Sprintf("slow %d", delivered("/slow"))
	})
}
