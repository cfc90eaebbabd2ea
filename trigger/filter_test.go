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
			if got := f.Matches("purchase", Fields{Properties: tc.props}); got != tc.want {
				t.Errorf("Matches(%s) = %v, want %v (conditions %v)", tc.props, got, tc.want, f.Where)
			}
			if f.Matches("refund", Fields{Properties: tc.props}) {
				t.Error("another event name matched")
			}
		})
	}
}

// Paths starting "context." read the message's context; the others read
// the properties, so a property named like a context field is not confused
// with it.
func TestFilterMatchesContext(t *testing.T) {
	browser := `{"campaign": {"source": "newsletter", "name": "black_friday"}, "page": {"path": "/pricing", "url": "https://shop.example/pricing"}, "locale": "fr-FR", "library": {"name": "analytics.js", "version": "next-1.81.0"}}`
	tests := []struct {
		name  string
		where map[string]any
		in    Fields
		want  bool
	}{
		{"campaign source", map[string]any{"context.campaign.source": "newsletter"}, Fields{Properties: `{}`, Context: browser}, true},
		{"campaign name in", map[string]any{"context.campaign.name": map[string]any{"in": []any{"black_friday", "cyber_monday"}}}, Fields{Properties: `{}`, Context: browser}, true},
		{"page path", map[string]any{"context.page.path": "/pricing"}, Fields{Properties: `{}`, Context: browser}, true},
		{"other page", map[string]any{"context.page.path": "/cart"}, Fields{Properties: `{}`, Context: browser}, false},
		{"locale", map[string]any{"context.locale": map[string]any{"ne": "en-US"}}, Fields{Properties: `{}`, Context: browser}, true},
		{"library", map[string]any{"context.library.name": "analytics.js"}, Fields{Properties: `{}`, Context: browser}, true},
		{"property of the same name is not context", map[string]any{"context.locale": "fr-FR"}, Fields{Properties: `{"locale": "fr-FR"}`, Context: `{}`}, false},
		{"context field is not a property", map[string]any{"locale": "fr-FR"}, Fields{Properties: `{}`, Context: browser}, false},
		{"both", map[string]any{"amount": map[string]any{"gt": uint64(10)}, "context.campaign.source": "newsletter"}, Fields{Properties: `{"amount": 12}`, Context: browser}, true},
		{"both, property fails", map[string]any{"amount": map[string]any{"gt": uint64(10)}, "context.campaign.source": "newsletter"}, Fields{Properties: `{"amount": 2}`, Context: browser}, false},
		{"absent context", map[string]any{"context.campaign.source": map[string]any{"exists": false}}, Fields{Properties: `{}`}, true},
		{"absent context, equality", map[string]any{"context.campaign.source": "newsletter"}, Fields{Properties: `{}`}, false},
		{"ip the collector saw", map[string]any{"context.ip": "203.0.113.9"}, Fields{Properties: `{}`, Context: browser, ContextIP: "203.0.113.9"}, true},
		{"ip as sent wins", map[string]any{"context.ip": "198.51.100.1"}, Fields{Properties: `{}`, Context: `{"ip": "198.51.100.1"}`, ContextIP: "198.51.100.1"}, true},
		{"malformed context", map[string]any{"context.locale": map[string]any{"exists": false}}, Fields{Properties: `{}`, Context: `{not json`}, false},
		{"malformed properties do not stop a context filter", map[string]any{"context.locale": "fr-FR"}, Fields{Properties: `{not json`, Context: browser}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var where []Condition
			for p, x := range tc.where {
				cs, err := parseConditions(p, x)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				where = append(where, cs...)
			}
			f := EventFilter{Name: "Order Completed", Where: where}
			if got := f.Matches("Order Completed", tc.in); got != tc.want {
				t.Errorf("Matches(%+v) = %v, want %v (conditions %v)", tc.in, got, tc.want, f.Where)
			}
		})
	}
}

// BenchmarkFilterMatches: what a context condition adds to matching one
// event (the poller matches every feed row of a filtered campaign's name).
func BenchmarkFilterMatches(b *testing.B) {
	props := `{"total": 80, "currency": "EUR", "items": [{"sku": "A-1", "qty": 2}], "coupon": "BF25"}`
	ctx := `{"campaign": {"source": "newsletter", "medium": "email", "name": "black_friday", "term": "shoes", "content": "hero"},` +
		`"page": {"path": "/checkout", "url": "https://shop.example/checkout?utm_source=newsletter", "referrer": "https://mail.example/", "title": "Checkout"},` +
		`"userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",` +
		`"locale": "de-DE", "timezone": "Europe/Berlin", "library": {"name": "analytics.js", "version": "next-1.81.0"}}`
	for _, bc := range []struct {
		name  string
		where map[string]any
	}{
		{"properties", map[string]any{"total": map[string]any{"gt": uint64(50)}}},
		{"properties_and_context", map[string]any{"total": map[string]any{"gt": uint64(50)}, "context.campaign.source": "newsletter"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var where []Condition
			for p, x := range bc.where {
				cs, err := parseConditions(p, x)
				if err != nil {
					b.Fatal(err)
				}
				where = append(where, cs...)
			}
			f := EventFilter{Name: "Order Completed", Where: where}
			in := Fields{Properties: props, Context: ctx, ContextIP: "203.0.113.9"}
			b.ReportAllocs()
			for b.Loop() {
				if !f.Matches("Order Completed", in) {
					b.Fatal("no match")
				}
			}
		})
	}
}
