package trigger

import (
	"fmt"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestShardedPollers runs two pollers in one consumer group on each
// broker: they split the customer shards, each customer is decided by one
// of them only, and when one leaves the other takes its shards over and
// decides what comes next; every qualification ends with one ledger entry
// and one delivery.
func TestShardedPollers(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			h := newHook(t)
			t.Setenv("SHARD_SECRET", h.Secret.String())
			c := campaign(t, fmt.Sprintf(`
id: sharded
trigger: {audience_entered: everyone}
staleness: {budget: 1h}
reeligible_after: 0
deliver:
  webhook: {url: %s/sharded, secret_env: SHARD_SECRET}`, h.URL))
			cfg := testConfig()
			cfg.Sharding, cfg.Shards, cfg.SessionTimeout = "group", 8, 6*time.Second
			cfg.Group = "shards-" + testenv.Name(t)
			p1 := startPoller(t, cfg, []*Campaign{c}, conn, br.Config, br.Seeds)
			p2 := startPoller(t, cfg, []*Campaign{c}, conn, br.Config, br.Seeds)
			owned := func(r *running) int {
				s := r.p.own.Snapshot()
				n := 0
				for _, mine := range s {
					if mine {
						n++
					}
				}
				return n
			}
			testenv.Eventually(t, 60*time.Second, "the two pollers split the shards", func() (bool, string) {
				a, b := owned(p1), owned(p2)
				return a > 0 && b > 0 && a+b == 8, fmt.Sprintf("%d + %d shards", a, b)
			})
			insert := func(from, to int) {
				var trs []transition
				for i := from; i < to; i++ {
					trs = append(trs, transition{audience: "everyone", customer: fmt.Sprintf("s%05d", i), episode: 1, eventMs: chdb.NowMs()})
				}
				insertTransitions(t, conn, trs)
			}
			settled := func(n int) {
				testenv.Eventually(t, 60*time.Second, fmt.Sprintf("%d qualifications delivered", n), func() (bool, string) {
					es := ledgerState(t, conn)
					delivered := 0
					for _, e := range es {
						if e.DeliveryState == StateDelivered {
							delivered++
						}
					}
					return len(es) == n && delivered == n && len(h.Accepted()) == n, fmt.Sprintf("%d entries, %d delivered, %d accepted", len(es), delivered, len(h.Accepted()))
				})
			}
			insert(0, 2000)
			settled(2000)
			f1, f2 := p1.p.Stats().Fired, p2.p.Stats().Fired
			if f1 == 0 || f2 == 0 || f1+f2 != 2000 {
				t.Errorf("fired %d + %d, want 2000 split between both pollers", f1, f2)
			}
			p1.stop(t)
			testenv.Eventually(t, 60*time.Second, "the remaining poller owns every shard", func() (bool, string) {
				return owned(p2) == 8, fmt.Sprintf("%d shards", owned(p2))
			})
			insert(2000, 3000)
			settled(3000)
			if got := p2.p.Stats().Fired - f2; got != 1000 {
				t.Errorf("after the takeover the remaining poller fired %d, want 1000", got)
			}
			if c := h.Counts(); c.Duplicates != 0 || c.Invalid != 0 {
				t.Errorf("receiver: %+v", c)
			}
		})
	}
}
