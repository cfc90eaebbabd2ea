package drill

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// TestDrillKeepsWebOnlyCampaignsFiring runs a small drill and checks what
// the stall must not stop: the campaign on the audience the web lane alone
// feeds fires while the server lane is stopped, and the audiences the
// server lane feeds (and only those) wait for it.
func TestDrillKeepsWebOnlyCampaignsFiring(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ClickHouse = testenv.ClickHouseConfig(t)
			cfg.Kafka = br.Config
			cfg.Loader = ingest.DefaultLoaderConfig()
			cfg.Loader.Group = "drill-" + testenv.Name(t)
			cfg.Loader.FlushInterval = 50 * time.Millisecond
			cfg.Loader.WatermarkInterval = 200 * time.Millisecond
			cfg.Materialize = materialize.DefaultConfig()
			cfg.Materialize.AudiencesDir = "../../materialize/audiences"
			cfg.Materialize.TouchSettle = time.Second
			cfg.Trigger = trigger.DefaultConfig()
			cfg.Trigger.CampaignsDir = "../../trigger/campaigns"
			cfg.Events, cfg.Customers, cfg.Outage, cfg.Lost, cfg.DeleteEvery = 4000, 300, time.Second, 5, 0
			cfg.Log = testenv.Logger(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var rep *Report
			err := Run(ctx, cfg, func(r *Report) {
				rep = r
				cancel()
			})
			if rep == nil {
				t.Fatalf("the drill did not get to its report: %v", err)
			}
			if rep.WebOnlyFires == 0 {
				t.Error("the web-only campaign fired nothing while the server lane was stalled")
			}
			if _, held := rep.Held["drill_browsers"]; held {
				t.Errorf("the web-only audience was held back: %v", rep.Held)
			}
			for _, id := range []string{"gold_repeat_buyers", "big_spenders", "cart_abandoners"} {
				if _, held := rep.Held[id]; !held {
					t.Errorf("%s, which reads purchases, was not held back by the stalled server lane: %v", id, rep.Held)
				}
			}
			t.Logf("%s: %d web-only fires during the stall; held: %v", br.Name, rep.WebOnlyFires, rep.Held)
		})
	}
}
