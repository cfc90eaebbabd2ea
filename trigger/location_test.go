package trigger

import "testing"

// TestCustomerLocation: the configured attribute wins when it names a zone,
// then the zone the customer's device reported through Segment's
// context.timezone, then the policy's default.
func TestCustomerLocation(t *testing.T) {
	c := &Campaign{ID: "c"}
	paris := &Campaign{ID: "p", Policy: &Policy{TimeZone: TimeZone{Default: "Europe/Paris"}}}
	tests := []struct {
		name  string
		c     *Campaign
		attrs map[string]any
		want  string
	}{
		{"attribute", c, map[string]any{"timezone": "America/New_York", "context_timezone": "Asia/Tokyo"}, "America/New_York"},
		{"device zone when no attribute", c, map[string]any{"context_timezone": "Asia/Tokyo"}, "Asia/Tokyo"},
		{"device zone when the attribute is not a zone", c, map[string]any{"timezone": "Mars/Olympus", "context_timezone": "Asia/Tokyo"}, "Asia/Tokyo"},
		{"default when neither is a zone", paris, map[string]any{"context_timezone": "nowhere"}, "Europe/Paris"},
		{"UTC by default", c, map[string]any{}, "UTC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := customerLocation(tc.c, tc.attrs).String(); got != tc.want {
				t.Errorf("CustomerLocation = %s, want %s", got, tc.want)
			}
		})
	}
}
