package backfill

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/golden"
)

// incidentPlan is the plan of the status page's incident as the summary
// golden shows it.
func incidentPlan() *Plan {
	at := func(h, m int) time.Time { return time.Date(2025, 12, 14, h, m, 0, 0, time.UTC) }
	p := &Plan{
		Format: planFormat, CreatedAt: at(22, 30), CreatedBy: "ops@tideline-1",
		Database: "tideline", Window: Window{From: at(18, 0), To: at(22, 15)}, Lanes: []string{"web", "server"},
		Source: "kafka", LateAfterMs: 60_000,
		LaneFindings: []LaneFinding{
			{Lane: "web", Topic: "events.web", InWindow: 1_204_331, Loaded: 1_204_331, Late: 212_004, Duplicates: 1_830, Redelivered: 4_096,
				Lag:        LagStats{P50: 420, P90: 95_000, P99: 1_380_000, Max: 2_050_000, Histogram: []LagBucket{{1000, 800_000}, {10_000, 150_000}, {60_000, 42_327}, {600_000, 130_000}, {3_600_000, 82_004}, {0, 0}}},
				Partitions: []PartitionFinding{{Partition: 0, Window: Range{0, 602_000}, Committed: 610_000, Missing: Ranges{}}, {Partition: 1, Window: Range{0, 602_331}, Committed: 611_000, Missing: Ranges{}}}},
			{Lane: "server", Topic: "events.server", InWindow: 843_120, Loaded: 842_870, Missing: 250, Late: 801_993,
				Lag: LagStats{P50: 7_260_000, P90: 11_700_000, P99: 12_900_000, Max: 13_380_000, Histogram: []LagBucket{{1000, 20_000}, {10_000, 10_000}, {60_000, 10_877}, {3_600_000, 120_000}, {6 * 3_600_000, 681_993}}},
				Partitions: []PartitionFinding{
					{Partition: 0, Window: Range{1_000_000, 1_421_000}, Committed: 1_430_000, Missing: Ranges{{1_210_000, 1_210_200}}},
					{Partition: 1, Window: Range{990_000, 1_412_120}, Committed: 1_420_000, Missing: Ranges{{1_000_007, 1_000_008}, {1_000_014, 1_000_015}, {1_300_000, 1_300_048}}},
				}},
		},
		Stale: StaleFindings{
			LateCustomers: 48_211, StaleFor: LagStats{P50: 5_400_000, P90: 11_000_000, Max: 13_380_000},
			MissingCustomers: 171, OldestMissing: at(19, 40),
			Examples: []StaleCustomer{{CustomerID: "user-004211", Lane: "server", StaleForMs: 10_200_000, Missing: true}, {CustomerID: "user-000017", Lane: "server", StaleForMs: 13_380_000}},
			Derived: &StateFindings{Checked: 52_000, Customers: []string{"user-000017", "user-004211", "user-020001"}, Attributes: 2,
				Audiences: []AudienceDiff{{AudienceID: "gold_repeat_buyers", ShouldEnter: 1}},
				Examples:  []StateDiff{{CustomerID: "user-004211", Kind: "attribute", Name: "plan", Materialized: `"silver" (first "free")`, Replayed: `"gold" (first "free")`}}},
		},
		Qualifications: QualificationFindings{Checked: true,
			Campaigns: []CampaignFinding{
				{CampaignID: "big_purchase_thanks", Qualified: 9_120, Ledgered: 8_900, Decisions: map[string]int64{"fire_late": 210, "skip": 10},
					Reasons:  map[string]int64{"fire_late:late": 210, "skip:capped": 4, "skip:capped_global": 3, "skip:suppressed": 2, "skip:quiet_hours": 1},
					Deferred: 40, Throttle: &ThrottleEstimate{Rate: 2, Burst: 10, Fires: 170, ReleaseSeconds: 80}},
				{CampaignID: "welcome_gold", AudienceID: "gold_repeat_buyers", Qualified: 412, Ledgered: 400, Decisions: map[string]int64{"skip": 11}, Reasons: map[string]int64{"skip:stale": 11}, LeftToPoller: 1},
			},
			Pending: []Qualification{{CampaignID: "welcome_gold", CustomerID: "user-004211", Episode: "3", Decision: "skip", Reason: "stale", Owner: OwnerPoller}},
		},
		Notes: []string{"events.server partition 1: Kafka's retention starts at offset 990000, inside the window; older records of the window can only come from an archive (--source)"},
	}
	for i := 0; i < 230; i++ {
		p.Qualifications.Pending = append(p.Qualifications.Pending, Qualification{CampaignID: "big_purchase_thanks", Decision: "fire_late", Reason: "late", Owner: OwnerBackfill})
	}
	p.ID = p.computeID()
	return p
}

func TestSummaryGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummary(&b, incidentPlan(), "backfill-plan.json"); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "summary.golden", b.Bytes())
}

func TestSummaryNothingToDo(t *testing.T) {
	p := &Plan{Format: planFormat, CreatedAt: time.Date(2025, 12, 15, 9, 0, 0, 0, time.UTC), CreatedBy: "ops@tideline-1", Database: "tideline",
		Window: Window{From: time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC), To: time.Date(2025, 12, 14, 22, 15, 0, 0, time.UTC)}, Lanes: []string{"server"}, Source: "kafka", LateAfterMs: 60_000,
		LaneFindings: []LaneFinding{{Lane: "server", Topic: "events.server", InWindow: 10, Loaded: 10}}}
	var b bytes.Buffer
	if err := WriteSummary(&b, p, "x.json"); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "summary_nothing.golden", b.Bytes())
}

func TestStatusGolden(t *testing.T) {
	now := time.Date(2025, 12, 15, 9, 0, 0, 0, time.UTC)
	ms := func(t time.Time) uint64 { return uint64(t.UnixMilli()) }
	w := Window{From: time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC), To: time.Date(2025, 12, 14, 22, 15, 0, 0, time.UTC)}
	base := Run{PlanID: "3f2a9c1d0e4b5a67", Who: "ops@tideline-1", Host: "another-host", WindowFromMs: ms(w.From), WindowToMs: ms(w.To), EventsMissing: 250}
	live := base
	live.RunID, live.Kind, live.State, live.Phase = "20251215T085900Z-aaaa0001", KindApply, StateRunning, PhaseLoad
	live.StartedAtMs, live.UpdatedAtMs, live.EventsReingested = ms(now.Add(-time.Minute)), ms(now.Add(-2*time.Second)), 200
	dead := base
	dead.RunID, dead.Kind, dead.State, dead.Phase = "20251215T080000Z-aaaa0002", KindApply, StateRunning, PhaseQualify
	dead.StartedAtMs, dead.UpdatedAtMs, dead.EventsReingested, dead.Fired = ms(now.Add(-time.Hour)), ms(now.Add(-50*time.Minute)), 250, 3
	done := base
	done.RunID, done.Kind, done.State, done.Phase = "20251215T070000Z-aaaa0003", KindApply, StateFailed, PhaseLoad
	done.StartedAtMs, done.FinishedAtMs, done.Error = ms(now.Add(-2*time.Hour)), ms(now.Add(-2*time.Hour+10*time.Minute)), "re-ingested records were not loaded: consumer group tideline-loader.backfill made no progress"
	plan := base
	plan.RunID, plan.Kind, plan.State, plan.Phase = "20251215T065900Z-aaaa0004", KindPlan, StatePlanned, PhaseDone
	plan.StartedAtMs, plan.FinishedAtMs = ms(now.Add(-2*time.Hour-time.Minute)), ms(now.Add(-2*time.Hour-time.Minute+12*time.Second))
	var b bytes.Buffer
	if err := WriteStatus(&b, []Run{live, dead, done, plan}, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "status.golden", b.Bytes())
}

func TestPlanFileRoundTrip(t *testing.T) {
	p := incidentPlan()
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != p.ID || got.MissingRanges()["events.server"][1].String() != "1000007, 1000014, 1300000-1300047" {
		t.Fatalf("round trip: %s %v", got.ID, got.MissingRanges())
	}
	// An edited plan is refused.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte(`"from": 1210000`), []byte(`"from": 1200000`), 1), 0o644)
	if _, err := LoadPlan(path); err == nil {
		t.Fatal("an edited plan was accepted")
	}
}

func TestDur(t *testing.T) {
	for ms, want := range map[int64]string{0: "0", 420: "420ms", 9_460: "9.5s", 95_000: "1m35s", 1_380_000: "23m", 2_050_000: "34m10s", 7_260_000: "2h1m", 10_800_000: "3h", 3_600_000: "1h"} {
		if got := dur(ms); got != want {
			t.Errorf("dur(%d) = %q, want %q", ms, got, want)
		}
	}
}
