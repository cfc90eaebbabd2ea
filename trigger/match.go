package trigger

// Occurrence is a row a campaign can qualify on: an audience transition
// (AudienceID, Kind and Episode set) or an event (Event, Properties and
// Context set).
type Occurrence struct {
	// AudienceID, Kind ("entered" or "exited") and Episode: transitions only.
	AudienceID, Kind string
	Episode          uint32
	// Event, Properties and Context (JSON), and ContextIP (the events
	// table's context_ip): events only.
	Event, Properties, Context, ContextIP string

	CustomerID, MessageID, Lane            string
	EventTimeMs, IngestTimeMs, DerivedAtMs uint64
}

// transition reports whether the occurrence is an audience transition.
func (o *Occurrence) transition() bool { return o.AudienceID != "" }

// Match returns the qualifications of the campaigns the occurrence
// qualifies for, in the campaigns' order. The poller and the backfill both
// qualify with it, so a row qualifies the same campaigns, under the same
// ledger key, whichever of them reads it first.
func Match(campaigns []*Campaign, o Occurrence) []Qualification {
	var out []Qualification
	for _, c := range campaigns {
		switch {
		case o.transition() && c.Trigger.Audience == o.AudienceID &&
			((c.Trigger.Kind == TriggerAudienceEntered && o.Kind == "entered") || (c.Trigger.Kind == TriggerAudienceExited && o.Kind == "exited")):
			out = append(out, Qualification{
				CampaignID: c.ID, CustomerID: o.CustomerID, AudienceID: o.AudienceID, Episode: episodeOf(o.Episode),
				MessageID: o.MessageID, Lane: o.Lane, EventTimeMs: o.EventTimeMs, IngestTimeMs: o.IngestTimeMs, DerivedAtMs: o.DerivedAtMs,
			})
		case !o.transition() && c.Trigger.Kind == TriggerEvent && c.Trigger.Event.Matches(o.Event, Fields{Properties: o.Properties, Context: o.Context, ContextIP: o.ContextIP}):
			out = append(out, Qualification{
				CampaignID: c.ID, CustomerID: o.CustomerID, Episode: o.MessageID, MessageID: o.MessageID, Lane: o.Lane,
				Event: o.Event, Properties: o.Properties, Context: sentContext(o.Context), EventTimeMs: o.EventTimeMs, IngestTimeMs: o.IngestTimeMs, DerivedAtMs: o.DerivedAtMs,
			})
		}
	}
	return out
}

// sentContext is a context the SDK sent, "" for none: the events table
// stores an absent context as '{}' (or ” before it had the column).
func sentContext(ctx string) string {
	if ctx == "{}" {
		return ""
	}
	return ctx
}
