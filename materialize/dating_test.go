package materialize

import (
	"reflect"
	"testing"
	"time"
)

// TestInstants checks the moments dating evaluates, over hand-made inputs.
func TestInstants(t *testing.T) {
	c := &Compiled{
		Attributes: []string{"plan"},
		Features:   []*Feature{{Signal: &Signal{ID: "s1"}, Window: time.Hour}, {Signal: &Signal{ID: "s1"}, Window: 0}},
	}
	in := &customerInputs{
		firstMs: 1000,
		attrs: map[string][]occurrenceTimes{
			"plan":  {{eventMs: 2000, visibleMs: 2000, message: "m1"}, {eventMs: 2500, visibleMs: 5000, message: "m2"}},
			"other": {{eventMs: 6000, visibleMs: 6000, message: "m6"}},
		},
		occs: map[string][]occurrenceTimes{
			"s1": {{eventMs: 3000, visibleMs: 3000, message: "m3"}, {eventMs: 2000, visibleMs: 2000, message: "m9"}},
		},
		links: []instant{{t: 4000, message: "identify"}},
	}
	tests := []struct {
		name  string
		until uint64
		want  []instant
	}{
		{
			name:  "window ends after until are left out",
			until: 10_000,
			want: []instant{
				{10_000, ""},
				{5000, ""}, // visible through a link: the link explains it
				{4000, "identify"},
				{3000, "m3"},
				{2000, "m9"}, // one moment, the greatest message
				{1000, ""},
			},
		},
		{
			name:  "an occurrence leaving its window is an instant",
			until: 4_000_000,
			want: []instant{
				{4_000_000, ""},
				{3_603_000, ""},
				{3_602_000, ""},
				{5000, ""},
				{4000, "identify"},
				{3000, "m3"},
				{2000, "m9"},
				{1000, ""},
			},
		},
		{
			name:  "nothing after until",
			until: 2500,
			want:  []instant{{2500, ""}, {2000, "m9"}, {1000, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.instants(in, tt.until); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("instants:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestBecameAt(t *testing.T) {
	at := []instant{{40, "d"}, {30, "c"}, {20, ""}, {10, "a"}}
	tests := []struct {
		name     string
		at       []instant
		holds    []bool
		complete bool
		want     instant
		ok       bool
	}{
		{name: "no instants, complete", complete: true, ok: true},
		{name: "no instants, more exist", complete: false, ok: false},
		{name: "run broken at the third", at: at[:3], holds: []bool{true, true, false}, want: at[1], ok: true},
		{name: "run broken at once", at: at[:2], holds: []bool{false, true}, want: at[0], ok: true},
		{name: "unbroken to the first instant", at: at, holds: []bool{true, true, true, true}, complete: true, want: at[3], ok: true},
		{name: "unbroken but earlier instants remain", at: at[:2], holds: []bool{true, true}, complete: false, want: at[1], ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := becameAt(tt.at, tt.holds, tt.complete)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("becameAt = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestAttribute checks cause attribution: instants and the values the
// condition had at them in, the cause (or "evaluate more") out.
func TestAttribute(t *testing.T) {
	cands := []instant{{100, ""}, {80, "m8"}, {60, ""}, {40, "m4"}}
	tests := []struct {
		name  string
		ch    change
		holds []bool
		want  cause
		ok    bool
	}{
		{
			name:  "entry caused by a message",
			ch:    change{entered: true, until: 100},
			holds: []bool{true, true, false},
			want:  cause{eventTime: 80, message: "m8", lookup: true},
			ok:    true,
		},
		{
			name:  "exit at a window end has no message",
			ch:    change{entered: false, until: 100},
			holds: []bool{false, false, false, true},
			want:  cause{eventTime: 60},
			ok:    true,
		},
		{
			name:  "value at the decision moment disagrees: the decision time",
			ch:    change{entered: true, until: 100},
			holds: []bool{false},
			want:  cause{eventTime: 100},
			ok:    true,
		},
		{
			name:  "run still unbroken: evaluate more",
			ch:    change{entered: true, until: 100},
			holds: []bool{true, true},
			ok:    false,
		},
		{
			name:  "held since the first instant",
			ch:    change{entered: true, until: 100},
			holds: []bool{true, true, true, true},
			want:  cause{eventTime: 40, message: "m4", lookup: true},
			ok:    true,
		},
		{
			name:  "redate unbroken since the earliest new event keeps its date",
			ch:    change{entered: true, until: 100, redate: true, recorded: dated{t: 30, msg: "m3"}, floor: 70},
			holds: []bool{true, true, true, true},
			want:  cause{eventTime: 30, message: "m3"},
			ok:    true,
		},
		{
			name:  "redate broken after the earliest new event moves",
			ch:    change{entered: true, until: 100, redate: true, recorded: dated{t: 30, msg: "m3"}, floor: 70},
			holds: []bool{true, false},
			want:  cause{eventTime: 100},
			ok:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.ch.attribute(cands, tt.holds)
			if ok != tt.ok || got != tt.want {
				t.Errorf("attribute = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDatingCandidates(t *testing.T) {
	cands := []instant{{100, ""}, {80, "m8"}, {60, ""}, {40, "m4"}}
	tests := []struct {
		name string
		ch   change
		want int
	}{
		{name: "a change looks at every instant", ch: change{floor: 70}, want: 4},
		{name: "a redate looks from its earliest new event on", ch: change{redate: true, recorded: dated{t: 30}, floor: 70}, want: 2},
		{name: "a redate with nothing new since its date looks at the latest", ch: change{redate: true, recorded: dated{t: 30}, floor: 200}, want: 1},
		{name: "a redate whose date is past the new events looks at every instant", ch: change{redate: true, recorded: dated{t: 90}, floor: 70}, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ch.candidates(cands); !reflect.DeepEqual(got, cands[:tt.want]) {
				t.Errorf("candidates = %v, want %v", got, cands[:tt.want])
			}
		})
	}
}
