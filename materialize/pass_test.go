package materialize

import "testing"

// TestNewPassTimes: each audience is evaluated as of the smallest watermark
// of its own lanes, never back from a time saved for the same lanes, and a
// set of lanes seen for the first time starts from its lanes' watermark,
// not from another set's time.
func TestNewPassTimes(t *testing.T) {
	parse := func(src string) *Audience {
		a, err := ParseAudience("t.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	plan, err := Compile([]*Audience{
		parse("id: browsers\nwhen: {performed: page_view, at_least: 3, within: 1h}\n"),
		parse("id: buyers\nwhen: {performed: purchase, at_least: 2, within: 7d}\n"),
	}, AttributeSettings{})
	if err != nil {
		t.Fatal(err)
	}
	carried := map[inputKey][]string{{"track", "page_view"}: {"web"}, {"track", "purchase"}: {"server"}}
	wms := map[string]uint64{"web": 5000, "server": 2000}
	for _, tc := range []struct {
		name  string
		saved map[string]uint64
		want  map[string]uint64
		held  map[string]string
	}{
		{"first pass", map[string]uint64{}, map[string]uint64{"browsers": 5000, "buyers": 2000}, map[string]string{"buyers": "server"}},
		{"a new set of lanes starts from its own watermark", map[string]uint64{eagerKey: 4000, "lanes:web": 4000},
			map[string]uint64{"browsers": 5000, "buyers": 2000}, map[string]string{"buyers": "server"}},
		{"a saved time never goes back", map[string]uint64{eagerKey: 4000, "lanes:web": 4000, "lanes:server": 3000},
			map[string]uint64{"browsers": 5000, "buyers": 3000}, map[string]string{"buyers": "server"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPass(plan, &evalState{times: tc.saved}, wms, 5000, carried, []string{"web", "server"})
			for i, c := range plan.Audiences {
				id := c.Audience.ID
				if pc.complete[i] != tc.want[id] || pc.heldBy[i] != tc.held[id] {
					t.Errorf("%s: complete %d held by %q, want %d held by %q", id, pc.complete[i], pc.heldBy[i], tc.want[id], tc.held[id])
				}
			}
			if pc.eager != 5000 {
				t.Errorf("eager time %d, want 5000", pc.eager)
			}
		})
	}
}
