package trigger

import (
	"reflect"
	"testing"
)

func TestMatch(t *testing.T) {
	entered := &Campaign{ID: "welcome", Trigger: Trigger{Kind: TriggerAudienceEntered, Audience: "vip"}}
	exited := &Campaign{ID: "winback", Trigger: Trigger{Kind: TriggerAudienceExited, Audience: "vip"}}
	signup := &Campaign{ID: "onboard", Trigger: Trigger{Kind: TriggerEvent, Event: EventFilter{Name: "Signed Up"}}}
	all := []*Campaign{entered, exited, signup}
	tests := []struct {
		name string
		o    Occurrence
		want []Qualification
	}{
		{
			name: "entered transition qualifies the entered campaign only",
			o: Occurrence{AudienceID: "vip", Kind: "entered", Episode: 3, CustomerID: "c1", MessageID: "m1", Lane: "web",
				EventTimeMs: 10, IngestTimeMs: 20, DerivedAtMs: 30},
			want: []Qualification{{CampaignID: "welcome", CustomerID: "c1", AudienceID: "vip", Episode: "3", MessageID: "m1",
				Lane: "web", EventTimeMs: 10, IngestTimeMs: 20, DerivedAtMs: 30}},
		},
		{
			name: "exited transition qualifies the exited campaign only",
			o:    Occurrence{AudienceID: "vip", Kind: "exited", Episode: 1, CustomerID: "c1"},
			want: []Qualification{{CampaignID: "winback", CustomerID: "c1", AudienceID: "vip", Episode: "1"}},
		},
		{
			name: "another audience qualifies nothing",
			o:    Occurrence{AudienceID: "churned", Kind: "entered", CustomerID: "c1"},
		},
		{
			name: "matching event keys its episode by message",
			o: Occurrence{Event: "Signed Up", Properties: `{}`, CustomerID: "c2", MessageID: "m2", Lane: "server",
				EventTimeMs: 5, IngestTimeMs: 6, DerivedAtMs: 6},
			want: []Qualification{{CampaignID: "onboard", CustomerID: "c2", Episode: "m2", MessageID: "m2", Lane: "server",
				Event: "Signed Up", Properties: `{}`, EventTimeMs: 5, IngestTimeMs: 6, DerivedAtMs: 6}},
		},
		{
			name: "an event's context comes with it",
			o:    Occurrence{Event: "Signed Up", Properties: `{}`, Context: `{"locale":"de-DE"}`, CustomerID: "c2", MessageID: "m4"},
			want: []Qualification{{CampaignID: "onboard", CustomerID: "c2", Episode: "m4", MessageID: "m4",
				Event: "Signed Up", Properties: `{}`, Context: `{"locale":"de-DE"}`}},
		},
		{
			name: "an empty context is none",
			o:    Occurrence{Event: "Signed Up", Properties: `{}`, Context: `{}`, CustomerID: "c2", MessageID: "m5"},
			want: []Qualification{{CampaignID: "onboard", CustomerID: "c2", Episode: "m5", MessageID: "m5",
				Event: "Signed Up", Properties: `{}`}},
		},
		{
			name: "other event qualifies nothing",
			o:    Occurrence{Event: "Logged In", CustomerID: "c2", MessageID: "m3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(all, tt.o); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Match:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
