package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EventType is the Standard Webhooks "type" of every fire.
const EventType = "campaign.fired"

// Body is the JSON a fire sends (webhook body and Kafka record value), in
// the Standard Webhooks envelope: type, timestamp, data.
type Body struct {
	Type      string   `json:"type"`
	Timestamp string   `json:"timestamp"`
	Data      BodyData `json:"data"`
}

// BodyData is a fire's content.
type BodyData struct {
	// WebhookID repeats the webhook-id header: the ledger key, stable
	// across retries and redeliveries.
	WebhookID  string       `json:"webhook_id"`
	Campaign   BodyCampaign `json:"campaign"`
	CustomerID string       `json:"customer_id"`
	Trigger    BodyTrigger  `json:"trigger"`
	// QualifiedAt is the qualification's event time; IngestedAt when its
	// event was loaded; DerivedAt when it became a qualification;
	// DetectedAt when the poller (or backfill) decided.
	QualifiedAt string `json:"qualified_at"`
	IngestedAt  string `json:"ingested_at"`
	DerivedAt   string `json:"derived_at"`
	DetectedAt  string `json:"detected_at"`
	// Late is true for a fire beyond the staleness budget (policy fire_late).
	Late bool `json:"late"`
	// LagMs is how long after its due time the qualification was detected.
	LagMs uint64 `json:"lag_ms"`
	// Attributes is the customer's attributes when the fire was decided.
	Attributes map[string]any `json:"attributes"`
}

// BodyCampaign identifies the campaign and its definition's version.
type BodyCampaign struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// BodyTrigger says what qualified the customer.
type BodyTrigger struct {
	Kind       TriggerKind     `json:"kind"`
	AudienceID string          `json:"audience_id,omitempty"`
	Episode    string          `json:"episode"`
	Event      string          `json:"event,omitempty"`
	MessageID  string          `json:"message_id,omitempty"`
	Lane       string          `json:"lane,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
	// Context is the triggering event's context as its SDK sent it
	// (campaign, page, locale, ...), when it had one.
	Context json.RawMessage `json:"context,omitempty"`
}

// buildBody builds the body of a fire. It is built once, when the fire is
// decided, and stored: every attempt and redelivery sends the same bytes.
func buildBody(c *Campaign, q Qualification, e *Entry, d Decision, attrs map[string]any) ([]byte, error) {
	if attrs == nil {
		attrs = map[string]any{}
	}
	b := Body{
		Type:      EventType,
		Timestamp: msTime(e.DetectedAtMs),
		Data: BodyData{
			WebhookID:  e.Key,
			Campaign:   BodyCampaign{ID: c.ID, Name: c.Name, Version: c.Version},
			CustomerID: q.CustomerID,
			Trigger: BodyTrigger{
				Kind: c.Trigger.Kind, AudienceID: q.AudienceID, Episode: q.Episode,
				Event: q.Event, MessageID: q.MessageID, Lane: q.Lane,
			},
			QualifiedAt: msTime(q.EventTimeMs),
			IngestedAt:  msTime(q.IngestTimeMs),
			DerivedAt:   msTime(q.DerivedAtMs),
			DetectedAt:  msTime(e.DetectedAtMs),
			Late:        d.Action == FireLate,
			LagMs:       d.LagMs,
			Attributes:  attrs,
		},
	}
	if q.Properties != "" && json.Valid([]byte(q.Properties)) {
		b.Data.Trigger.Properties = json.RawMessage(q.Properties)
	}
	if q.Context != "" && json.Valid([]byte(q.Context)) {
		b.Data.Trigger.Context = json.RawMessage(q.Context)
	}
	if c.Template != nil {
		return renderTemplate(c.Template, b.Data, q)
	}
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode payload of %s: %w", e.Key, err)
	}
	return out, nil
}

func msTime(ms uint64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z")
}

// ErrTemplate marks a body template that failed for one fire (its output
// is not JSON, or a function failed on the customer's values).
var ErrTemplate = errors.New("body template")

func renderTemplate(bt *BodyTemplate, d BodyData, q Qualification) ([]byte, error) {
	td := TemplateData{
		WebhookID: d.WebhookID, CustomerID: d.CustomerID, Campaign: d.Campaign, Attributes: d.Attributes,
		Late: d.Late, LagMs: d.LagMs, DetectedAt: d.DetectedAt,
		Qualification: TemplateQualification{
			Kind: string(d.Trigger.Kind), AudienceID: q.AudienceID, Episode: q.Episode, Event: q.Event,
			MessageID: q.MessageID, Lane: q.Lane, EventTime: d.QualifiedAt, Properties: map[string]any{}, Context: map[string]any{},
		},
	}
	if len(d.Trigger.Properties) > 0 {
		_ = json.Unmarshal(d.Trigger.Properties, &td.Qualification.Properties)
	}
	if len(d.Trigger.Context) > 0 {
		_ = json.Unmarshal(d.Trigger.Context, &td.Qualification.Context)
	}
	out, err := bt.Render(td)
	if err != nil {
		return nil, fmt.Errorf("%w of %s: %w", ErrTemplate, d.WebhookID, err)
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("%w of %s: the rendered body is not JSON", ErrTemplate, d.WebhookID)
	}
	return out, nil
}
