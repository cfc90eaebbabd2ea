package trigger

import "testing"

func TestFilterMatches(t *testing.T) {
	conds := func(where map[string]any) []Condition {
		var out []Condition
		for p, x := range where {
			cs, err := parseConditions(p, x)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out = append(out, cs...)
		}
		return out
	}
	tests := []struct {
		name  string
		where map[string]any
		props string
		want  bool
	}{
		{"no conditions", nil, `{}`, true},
		{"gt number", map[string]any{"amount": map[string]any{"gt": uint64(100)}}, `{"amount": 100.5}`, true},
		{"gt boundary", map[string]any{"amount": map[string]any{"gt": uint64(100)}}, `{"amount": 100}`, false},
		{"gte boundary", map[string]any{"amount": map[string]any{"gte": uint64(100)}}, `{"amount": 100}`, true},
		{"numeric string", map[string]any{"amount": map[string]any{"lt": 10.5}}, `{"amount": "9.99"}`, true},
		{"missing property fails a comparison", map[string]any{"amount": map[string]any{"gt": uint64(1)}}, `{}`, false},
		{"range", map[string]any{"amount": map[string]any{"gte": uint64(10), "lt": uint64(20)}}, `{"amount": 20}`, false},
		{"equality shorthand", map[string]any{"plan": "gold"}, `{"plan": "gold"}`, true},
		{"equality type matters", map[string]any{"plan": "gold"}, `{"plan": true}`, false},
		{"number equals numeric string", map[string]any{"qty": uint64(2)}, `{"qty": "2"}`, true},
		{"in", map[string]any{"currency": map[string]any{"in": []any{"EUR", "USD"}}}, `{"currency": "USD"}`, true},
		{"not in", map[string]any{"currency": map[string]any{"not_in": []any{"EUR", "USD"}}}, `{"currency": "GBP"}`, true},
		{"not in, absent", map[string]any{"currency": map[string]any{"not_in": []any{"EUR"}}}, `{}`, true},
		{"ne absent", map[string]any{"country": map[string]any{"ne": "FR"}}, `{}`, true},
		{"exists", map[string]any{"coupon": map[string]any{"exists": true}}, `{"coupon": "X"}`, true},
		{"exists null", map[string]any{"coupon": map[string]any{"exists": true}}, `{"coupon": null}`, false},
		{"not exists", map[string]any{"coupon": map[string]any{"exists": false}}, `{}`, true},
		{"nested path", map[string]any{"address.country": "FR"}, `{"address": {"country": "FR"}}`, true},
		{"bool", map[string]any{"gift": true}, `{"gift": true}`, true},
		{"malformed properties", map[string]any{"plan": "gold"}, `{not json`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := EventFilter{Name: "purchase", Where: conds(tc.where)}
			if got := f.Matches("purchase", tc.props); got != tc.want {
				t.Errorf("Matches(%s) = %v, want %v (conditions %v)", tc.props, got, tc.want, f.Where)
			}
			if f.Matches("refund", tc.props) {
				t.Error("another event name matched")
			}
		})
	}
}
