package materialize

import (
	"context"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestQualificationTime checks, on the real server, that an entry or exit
// is dated by the moment the condition took its value and kept it, with the
// message that made it so — not by the latest event that touched an input
// — whatever order the events arrive in.
func TestQualificationTime(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond).Add(-time.Minute)
	t0 := now.Add(-3 * time.Hour)
	identify := func(id string, at time.Time, plan string) *ingest.Event {
		return &ingest.Event{MessageID: id, Type: ingest.TypeIdentify, UserID: "u1", Timestamp: at, Traits: mustJSON(map[string]any{"plan": plan})}
	}
	purchase := func(id string, at time.Time) *ingest.Event {
		return &ingest.Event{MessageID: id, Type: ingest.TypeTrack, UserID: "u1", Event: "purchase", Timestamp: at, Properties: mustJSON(map[string]any{"amount": 10})}
	}
	type want struct {
		kind string
		at   time.Time
		msg  string
	}
	cases := []struct {
		name string
		// batches arrive in order, each followed by a pass as of asOf.
		batches [][]*ingest.Event
		asOf    []time.Time
		want    want
	}{
		{
			name: "an identical value sent again does not move the entry",
			batches: [][]*ingest.Event{{
				purchase("o1", t0.Add(-time.Hour)), purchase("o2", t0.Add(-30*time.Minute)),
				identify("i1", t0, "gold"), identify("i2", t0.Add(93*time.Minute), "gold"),
			}},
			asOf: []time.Time{now},
			want: want{"entered", t0, "i1"},
		},
		{
			name: "the first identify arriving after its repetition re-dates the entry",
			batches: [][]*ingest.Event{
				{purchase("o1", t0.Add(-time.Hour)), purchase("o2", t0.Add(-30*time.Minute)), identify("i2", t0.Add(93*time.Minute), "gold")},
				{identify("i1", t0, "gold")},
			},
			asOf: []time.Time{now, now},
			want: want{"entered", t0, "i1"},
		},
		{
			name: "a value that changed and came back dates from its return",
			batches: [][]*ingest.Event{{
				purchase("o1", t0.Add(-time.Hour)), purchase("o2", t0.Add(-30*time.Minute)),
				identify("i1", t0, "gold"), identify("i2", t0.Add(10*time.Minute), "silver"), identify("i3", t0.Add(20*time.Minute), "gold"),
				identify("i4", t0.Add(90*time.Minute), "gold"),
			}},
			asOf: []time.Time{now},
			want: want{"entered", t0.Add(20 * time.Minute), "i3"},
		},
		{
			name: "the purchase that completes the condition dates the entry",
			batches: [][]*ingest.Event{{
				identify("i1", t0, "gold"), purchase("o1", t0.Add(5*time.Minute)), purchase("o2", t0.Add(7*time.Minute)), purchase("o3", t0.Add(50*time.Minute)),
			}},
			asOf: []time.Time{now},
			want: want{"entered", t0.Add(7 * time.Minute), "o2"},
		},
		{
			name: "an exit by a window ending is dated by the end, with no message",
			batches: [][]*ingest.Event{
				{identify("i1", now.Add(-10*24*time.Hour), "gold"), purchase("o1", now.Add(-9*24*time.Hour)), purchase("o2", now.Add(-8*24*time.Hour))},
				{},
			},
			asOf: []time.Time{now.Add(-8*24*time.Hour + time.Hour), now},
			want: want{"exited", now.Add(-2 * 24 * time.Hour), ""},
		},
	}
	a, err := ParseAudience("gold.yaml", []byte("id: gold_buyers\nwhen:\n  all:\n    - {attribute: plan, equals: gold}\n    - {performed: purchase, at_least: 2, within: 7d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile([]*Audience{a}, AttributeSettings{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			if _, err := Apply(context.Background(), conn, plan, 0, testenv.Logger(t)); err != nil {
				t.Fatal(err)
			}
			ev := testEvaluator(t, conn)
			for i, b := range tc.batches {
				if len(b) > 0 {
					insertDirect(t, conn, "server", b...)
				}
				setWatermark(t, conn, ms(tc.asOf[i]))
				evaluate(t, ev)
			}
			rows := transitions(t, conn)
			if len(rows) == 0 {
				t.Fatal("no transition")
			}
			last := rows[len(rows)-1]
			got := want{last.Kind, time.UnixMilli(int64(last.EventTime)), last.Message}
			if got.kind != tc.want.kind || !got.at.Equal(tc.want.at) || got.msg != tc.want.msg {
				t.Errorf("latest transition %s at %s by %q, want %s at %s by %q (all: %+v)",
					got.kind, got.at.UTC(), got.msg, tc.want.kind, tc.want.at.UTC(), tc.want.msg, rows)
			}
		})
	}
}
