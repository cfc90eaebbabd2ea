package materialize

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestPreviewMatchesApply previews the oracle audiences on the oracle's
// randomized data while only the built-in audiences are applied (so their
// new attributes and signals are read from events), applies them, runs the
// evaluator once, and checks that every audience has exactly the size,
// members and transitions (kind, episode, date, message, lane) the preview
// announced.
func TestPreviewMatchesApply(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runPreviewMatchesApply(t, seed) })
	}
}

func runPreviewMatchesApply(t *testing.T, seed uint64) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	applyDirs(t, conn, oracleSettings, "audiences")
	g := newGenerator(seed, 150, time.Now())
	byLane := map[string][]*ingest.Event{}
	var maxEvent uint64
	for range 3000 {
		r := g.next()
		byLane[r.lane] = append(byLane[r.lane], r.ev)
		maxEvent = max(maxEvent, evTime(r.ev))
	}
	for _, lane := range slices.Sorted(maps.Keys(byLane)) {
		insertDirect(t, conn, lane, byLane[lane]...)
	}
	setWatermark(t, conn, maxEvent+1)
	ev := testEvaluator(t, conn)
	evaluate(t, ev)

	cfg := testConfig()
	cfg.Attributes, cfg.SetOnce = oracleSettings.Declared, oracleSettings.SetOnce
	auds, err := LoadDefinitions("testdata/oracle")
	if err != nil {
		t.Fatal(err)
	}
	previews := map[string]*AudiencePreview{}
	fromEvents := 0
	for _, a := range auds {
		start := time.Now()
		p, err := Preview(ctx, conn, cfg, a, 5, testenv.Logger(t))
		if err != nil {
			t.Fatalf("preview %s: %v", a.ID, err)
		}
		t.Logf("preview %s: %d customers evaluated, %d members, %d from events, in %s", a.ID, p.Evaluated, p.Size, len(p.FromEvents), time.Since(start).Round(time.Millisecond))
		previews[a.ID] = p
		fromEvents += len(p.FromEvents)
		if p.Applied || p.Entered != p.Size || p.Exited != 0 {
			t.Errorf("%s: a new audience's preview says applied=%v, %d entered, %d exited, size %d", a.ID, p.Applied, p.Entered, p.Exited, p.Size)
		}
		if want := min(5, p.Entered); len(p.Sample) != want {
			t.Errorf("%s: %d sample members, want %d", a.ID, len(p.Sample), want)
		}
		for _, s := range p.Sample {
			if s.MessageID != "" && s.Event == "" {
				t.Errorf("%s: sample member %s: no event named for message %s", a.ID, s.CustomerID, s.MessageID)
			}
		}
		lanes := 0
		for _, n := range p.ByLane {
			lanes += n
		}
		if lanes != p.Entered {
			t.Errorf("%s: the lanes count %d entries, the preview %d", a.ID, lanes, p.Entered)
		}
	}
	if fromEvents == 0 {
		t.Error("no attribute or signal of the oracle audiences was read from events: the test does not cover apply's backfill")
	}

	applyDirs(t, conn, oracleSettings, "audiences", "testdata/oracle")
	evaluate(t, ev)
	got := members(t, conn)
	trs := transitions(t, conn)
	nonEmpty := 0
	for _, a := range auds {
		p := previews[a.ID]
		var want []string
		for _, ch := range p.Changes {
			if ch.Kind == "entered" {
				want = append(want, ch.CustomerID)
			}
		}
		sort.Strings(want)
		have := append([]string(nil), got[a.ID]...)
		sort.Strings(have)
		if len(have) != p.Size || fmt.Sprint(have) != fmt.Sprint(want) {
			t.Errorf("%s: the preview said %d members %v; apply made %d: %v", a.ID, p.Size, want, len(have), have)
		}
		if p.Size > 0 {
			nonEmpty++
		}
		var wrote []PreviewChange
		for _, r := range trs {
			if r.Audience == a.ID {
				wrote = append(wrote, PreviewChange{CustomerID: r.Customer, Kind: r.Kind, Episode: r.Episode, EventTimeMs: r.EventTime, MessageID: r.Message, Lane: r.Lane})
			}
		}
		sort.Slice(wrote, func(i, j int) bool { return wrote[i].CustomerID < wrote[j].CustomerID })
		announced := make([]PreviewChange, len(p.Changes))
		for i, ch := range p.Changes {
			ch.IngestTimeMs = 0
			announced[i] = ch
		}
		if fmt.Sprint(wrote) != fmt.Sprint(announced) {
			t.Errorf("%s: transitions written differ from the preview:\n wrote   %v\n preview %v", a.ID, wrote, announced)
		}
	}
	if nonEmpty < 2 {
		t.Errorf("only %d oracle audiences have members: the comparison proves little", nonEmpty)
	}
}
