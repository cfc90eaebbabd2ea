package ingest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
)

// rx is the collector's receive time in the decoder tests.
var rx = time.Date(2025, 12, 14, 19, 0, 0, 0, time.UTC)

// eventString prints every field of an event, so two events compare
// field by field in one string and a mismatch shows all of them.
func eventString(e *ingest.Event) string {
	if e == nil {
		return "<nil>"
	}
	tf := func(t time.Time) string {
		if t.IsZero() {
			return "zero"
		}
		return t.Format(time.RFC3339Nano) + "@" + t.Location().String()
	}
	return fmt.Sprintf("messageId=%q type=%q userId=%q anonymousId=%q event=%q name=%q properties=%q traits=%q timestamp=%s sentAt=%s receivedAt=%s source=%q",
		e.MessageID, e.Type, e.UserID, e.AnonymousID, e.Event, e.Name, e.Properties, e.Traits,
		tf(e.Timestamp), tf(e.SentAt), tf(e.ReceivedAt), e.Source)
}

// fieldError unwraps err as the FieldError every rejection must be.
func fieldError(t *testing.T, err error) *ingest.FieldError {
	t.Helper()
	var fe *ingest.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *ingest.FieldError", err, err)
	}
	return fe
}

// nested returns a JSON object whose properties nest depth levels in all.
func nested(depth int) string {
	inner := strings.Repeat(`{"a":`, depth-1) + `1` + strings.Repeat(`}`, depth-1)
	return `{"messageId":"m","userId":"u","event":"e","properties":` + inner + `}`
}

// rejection is an expected FieldError. A message ending in "*" is a prefix:
// the rest comes from encoding/json and is not ours to pin.
type rejection struct {
	field, code, msg string
}

func checkRejection(t *testing.T, err error, want rejection) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %s %s", want.field, want.code)
	}
	fe := fieldError(t, err)
	if fe.Field != want.field || fe.Code != want.code {
		t.Errorf("field=%q code=%q, want field=%q code=%q (message %q)", fe.Field, fe.Code, want.field, want.code, fe.Message)
	}
	if p, ok := strings.CutSuffix(want.msg, "*"); ok {
		if !strings.HasPrefix(fe.Message, p) {
			t.Errorf("message %q, want prefix %q", fe.Message, p)
		}
	} else if fe.Message != want.msg {
		t.Errorf("message %q\n          want %q", fe.Message, want.msg)
	}
}

func TestParseMessageRejections(t *testing.T) {
	long := strings.Repeat("x", 257)
	tooBig := `{"messageId":"m","userId":"u","event":"e","properties":{"p":"` + strings.Repeat("a", ingest.MaxEventBytes) + `"}}`
	for _, tc := range []struct {
		name string
		typ  string // endpoint type; "" is a batch item
		body string
		want rejection
	}{
		{"oversize event", "track", tooBig, rejection{"", ingest.CodeTooLarge, fmt.Sprintf("event is %d bytes; the limit is 32768 bytes (32 KB)", len(tooBig))}},
		{"invalid UTF-8", "track", "{\"messageId\":\"m\xff\",\"userId\":\"u\",\"event\":\"e\"}", rejection{"", ingest.CodeInvalidEncoding, "body is not valid UTF-8"}},
		{"nested 33 deep", "track", nested(33), rejection{"", ingest.CodeTooDeep, "JSON is nested deeper than 32 levels"}},
		{"deep array", "track", `{"properties":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, rejection{"", ingest.CodeTooDeep, "JSON is nested deeper than 32 levels"}},
		{"broken JSON", "track", `{"messageId":"m",`, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"empty body", "track", ``, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"array body", "track", `[{"messageId":"m"}]`, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"string body", "track", `"hello"`, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"trailing data", "track", `{"messageId":"m","userId":"u","event":"e"} {}`, rejection{"", ingest.CodeMalformedJSON, "unexpected data after the JSON object"}},
		{"batch item without type", "", `{"messageId":"m","userId":"u","event":"e"}`, rejection{"type", ingest.CodeMissingField, "type is required in a batch item: track, identify, page, screen, group or alias"}},
		{"batch item of unknown type", "", `{"type":"merge","messageId":"m","userId":"u"}`, rejection{"type", ingest.CodeUnknownType, `type "merge" is not supported: use track, identify, page, screen, group or alias`}},
		{"group without groupId", "group", `{"messageId":"m","userId":"u","traits":{"name":"Acme"}}`, rejection{"groupId", ingest.CodeMissingField, "groupId is required for group"}},
		{"alias without previousId", "alias", `{"messageId":"m","userId":"u"}`, rejection{"previousId", ingest.CodeMissingField, "previousId is required for alias: the id userId now stands for"}},
		{"alias without userId", "alias", `{"messageId":"m","previousId":"a-1","anonymousId":"a-1"}`, rejection{"userId", ingest.CodeMissingField, "userId is required for alias"}},
		{"groupId is an object", "group", `{"messageId":"m","userId":"u","groupId":{"id":1}}`, rejection{"groupId", ingest.CodeInvalidField, "groupId must be a string or a number"}},
		{"context is an array", "track", `{"messageId":"m","userId":"u","event":"e","context":[1]}`, rejection{"context", ingest.CodeInvalidField, "context must be a JSON object"}},
		{"type disagrees with endpoint", "track", `{"type":"identify","messageId":"m","userId":"u"}`, rejection{"type", ingest.CodeInvalidField, `type "identify" sent to the track endpoint`}},
		{"messageId too long", "track", `{"messageId":"` + long + `","userId":"u","event":"e"}`, rejection{"messageId", ingest.CodeInvalidField, "messageId is longer than 256 characters"}},
		{"userId too long", "track", `{"messageId":"m","userId":"` + long + `","event":"e"}`, rejection{"userId", ingest.CodeInvalidField, "userId is longer than 256 characters"}},
		{"anonymousId too long", "track", `{"messageId":"m","anonymousId":"` + long + `","event":"e"}`, rejection{"anonymousId", ingest.CodeInvalidField, "anonymousId is longer than 256 characters"}},
		{"userId is a bool", "track", `{"messageId":"m","userId":true,"event":"e"}`, rejection{"userId", ingest.CodeInvalidField, "userId must be a string or a number"}},
		{"anonymousId is an object", "track", `{"messageId":"m","anonymousId":{"id":1},"event":"e"}`, rejection{"anonymousId", ingest.CodeInvalidField, "anonymousId must be a string or a number"}},
		{"no ids", "track", `{"messageId":"m","event":"e"}`, rejection{"userId", ingest.CodeMissingField, "userId or anonymousId is required"}},
		{"null and empty ids", "identify", `{"messageId":"m","userId":null,"anonymousId":""}`, rejection{"userId", ingest.CodeMissingField, "userId or anonymousId is required"}},
		{"track without event", "track", `{"messageId":"m","userId":"u"}`, rejection{"event", ingest.CodeMissingField, "event (the event name) is required for track"}},
		{"track with blank event", "", `{"type":"track","messageId":"m","userId":"u","event":"  "}`, rejection{"event", ingest.CodeMissingField, "event (the event name) is required for track"}},
		{"properties is an array", "track", `{"messageId":"m","userId":"u","event":"e","properties":[1,2]}`, rejection{"properties", ingest.CodeInvalidField, "properties must be a JSON object"}},
		{"properties is a string", "track", `{"messageId":"m","userId":"u","event":"e","properties":"{}"}`, rejection{"properties", ingest.CodeInvalidField, "properties must be a JSON object"}},
		{"traits is a number", "identify", `{"messageId":"m","userId":"u","traits":7}`, rejection{"traits", ingest.CodeInvalidField, "traits must be a JSON object"}},
		{"context.traits is a string", "identify", `{"messageId":"m","userId":"u","context":{"traits":"gold"}}`, rejection{"context.traits", ingest.CodeInvalidField, "context.traits must be a JSON object"}},
		{"timestamp not ISO-8601", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"yesterday"}`, rejection{"timestamp", ingest.CodeInvalidTime, `timestamp "yesterday" is not an ISO-8601 time such as 2025-12-14T18:58:00.000Z`}},
		{"timestamp without zone", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00"}`, rejection{"timestamp", ingest.CodeInvalidTime, `timestamp "2025-12-14T18:58:00" is not an ISO-8601 time such as 2025-12-14T18:58:00.000Z`}},
		{"timestamp month 13", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"2025-13-01T00:00:00Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, `timestamp "2025-13-01T00:00:00Z" is not an ISO-8601 time such as 2025-12-14T18:58:00.000Z`}},
		{"long bad timestamp is truncated", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"` + strings.Repeat("9", 100) + `"}`, rejection{"timestamp", ingest.CodeInvalidTime, `timestamp "` + strings.Repeat("9", 64) + `…" is not an ISO-8601 time such as 2025-12-14T18:58:00.000Z`}},
		{"sentAt not ISO-8601", "track", `{"messageId":"m","userId":"u","event":"e","sentAt":"now"}`, rejection{"sentAt", ingest.CodeInvalidTime, `sentAt "now" is not an ISO-8601 time such as 2025-12-14T18:58:00.000Z`}},
		{"timestamp before 2000", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"1999-12-31T23:59:59Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 1999-12-31T23:59:59Z is before 2000-01-01 after clock-skew correction; check the client's clock"}},
		{"epoch-zero timestamp", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"1970-01-01T00:00:00Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 1970-01-01T00:00:00Z is before 2000-01-01 after clock-skew correction; check the client's clock"}},
		{"year-1 timestamp", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"0001-01-01T00:00:00Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 0001-01-01T00:00:00Z is before 2000-01-01 after clock-skew correction; check the client's clock"}},
		{"timestamp a second past 24h ahead", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"2025-12-15T19:00:01Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 2025-12-15T19:00:01Z is more than 24h in the future after clock-skew correction"}},
		{"year-9999 timestamp", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"9999-12-31T23:59:59Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 9999-12-31T23:59:59Z is more than 24h in the future after clock-skew correction"}},
		// sentAt 30 years after the event: corrected, it happened in 1995.
		{"skew correction lands before 2000", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"2020-01-01T00:00:00Z","sentAt":"2050-01-01T00:00:00Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 1995-12-14T19:00:00Z is before 2000-01-01 after clock-skew correction; check the client's clock"}},
		// An event sent 10 days before it happened is 10 days in the future.
		{"skew correction lands in the future", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":"2025-01-11T00:00:00Z","sentAt":"2025-01-01T00:00:00Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 2025-12-24T19:00:00Z is more than 24h in the future after clock-skew correction"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ingest.ParseMessage([]byte(tc.body), tc.typ, time.Time{}, rx, "web")
			if err == nil {
				t.Fatalf("accepted: %s", eventString(ev))
			}
			checkRejection(t, err, tc.want)
		})
	}
}

func TestParseMessageAccepts(t *testing.T) {
	evTime := time.Date(2025, 12, 14, 18, 58, 0, 123e6, time.UTC)
	for _, tc := range []struct {
		name        string
		typ         string
		batchSentAt time.Time
		body        string
		want        ingest.Event
	}{
		{
			name: "track with every field",
			typ:  "track",
			body: `{"messageId":"m-1","userId":"u-1","anonymousId":"a-1","event":"purchase","properties":{"amount": 42.5, "sku":"A-1"},"timestamp":"2025-12-14T18:58:00.123Z"}`,
			want: ingest.Event{MessageID: "m-1", Type: "track", UserID: "u-1", AnonymousID: "a-1", Event: "purchase",
				Properties: []byte(`{"amount": 42.5, "sku":"A-1"}`), Timestamp: evTime, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "identify with traits",
			typ:  "identify",
			body: `{"type":"identify","messageId":"m-2","userId":"u-1","traits":{"plan":"gold"},"timestamp":"2025-12-14T18:58:00.123Z"}`,
			want: ingest.Event{MessageID: "m-2", Type: "identify", UserID: "u-1", Traits: []byte(`{"plan":"gold"}`), Timestamp: evTime, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "identify ignores an event name",
			typ:  "identify",
			body: `{"messageId":"m-2","anonymousId":"a-9","event":"ignored"}`,
			want: ingest.Event{MessageID: "m-2", Type: "identify", AnonymousID: "a-9", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "page with a name",
			typ:  "page",
			body: `{"messageId":"m-3","anonymousId":"a-1","name":"Pricing","properties":{"path":"/pricing"}}`,
			want: ingest.Event{MessageID: "m-3", Type: "page", AnonymousID: "a-1", Name: "Pricing", Properties: []byte(`{"path":"/pricing"}`), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "batch item carries its type",
			body: `{"type":"page","messageId":"m-4","userId":"u"}`,
			want: ingest.Event{MessageID: "m-4", Type: "page", UserID: "u", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "numeric ids",
			typ:  "track",
			body: `{"messageId":"m-5","userId":42,"anonymousId":-1.5e3,"event":"e"}`,
			want: ingest.Event{MessageID: "m-5", Type: "track", UserID: "42", AnonymousID: "-1.5e3", Event: "e", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "context.traits when there are no traits",
			typ:  "track",
			body: `{"messageId":"m-6","userId":"u","event":"e","context":{"ip":"1.2.3.4","traits":{"email":"a@b.c"}}}`,
			want: ingest.Event{MessageID: "m-6", Type: "track", UserID: "u", Event: "e", Traits: []byte(`{"email":"a@b.c"}`),
				Context: []byte(`{"ip":"1.2.3.4","traits":{"email":"a@b.c"}}`), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "traits win over context.traits",
			typ:  "identify",
			body: `{"messageId":"m-7","userId":"u","traits":{"plan":"gold"},"context":{"traits":{"plan":"silver"}}}`,
			want: ingest.Event{MessageID: "m-7", Type: "identify", UserID: "u", Traits: []byte(`{"plan":"gold"}`),
				Context: []byte(`{"traits":{"plan":"silver"}}`), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "screen with a name",
			body: `{"type":"screen","messageId":"m-s","userId":"u","name":"Checkout","properties":{"step":2}}`,
			want: ingest.Event{MessageID: "m-s", Type: "screen", UserID: "u", Name: "Checkout", Properties: []byte(`{"step":2}`), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "group traits become group_ attributes, kept as sent in properties",
			typ:  "group",
			body: `{"messageId":"m-g","userId":"u","groupId":"acme","traits":{"name":"Acme","plan":"enterprise"}}`,
			want: ingest.Event{MessageID: "m-g", Type: "group", UserID: "u", GroupID: "acme",
				Traits:     []byte(`{"group_id":"acme","group_name":"Acme","group_plan":"enterprise"}`),
				Properties: []byte(`{"name":"Acme","plan":"enterprise"}`), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "alias",
			body: `{"type":"alias","messageId":"m-a","userId":"u","previousId":"anon-7"}`,
			want: ingest.Event{MessageID: "m-a", Type: "alias", UserID: "u", PreviousID: "anon-7", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "missing messageId is derived from the source and the bytes",
			typ:  "track",
			body: `{"userId":"u","event":"e"}`,
			want: ingest.Event{MessageID: ingest.DerivedMessageID("web", []byte(`{"userId":"u","event":"e"}`)), Type: "track", UserID: "u", Event: "e", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "null properties and traits",
			typ:  "identify",
			body: `{"messageId":"m-8","userId":"u","properties":null,"traits":null}`,
			want: ingest.Event{MessageID: "m-8", Type: "identify", UserID: "u", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			// The client's clock is an hour fast: it stamped the event at
			// 20:00:00 and sent it at 20:00:05 by that clock; the server
			// received it at 19:00:00, so the event happened at 18:59:55.
			name: "clock skew corrected with sentAt",
			typ:  "track",
			body: `{"messageId":"m-9","userId":"u","event":"e","timestamp":"2025-12-14T20:00:00.000Z","sentAt":"2025-12-14T20:00:05.000Z"}`,
			want: ingest.Event{MessageID: "m-9", Type: "track", UserID: "u", Event: "e",
				Timestamp: time.Date(2025, 12, 14, 18, 59, 55, 0, time.UTC), SentAt: time.Date(2025, 12, 14, 20, 0, 5, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			// A clock far in the past is corrected just the same: only
			// the 90 s between event and send carry over.
			name: "epoch clock corrected with sentAt",
			typ:  "track",
			body: `{"messageId":"m-10","userId":"u","event":"e","timestamp":"1970-01-01T00:00:00Z","sentAt":"1970-01-01T00:01:30Z"}`,
			want: ingest.Event{MessageID: "m-10", Type: "track", UserID: "u", Event: "e",
				Timestamp: rx.Add(-90 * time.Second), SentAt: time.Date(1970, 1, 1, 0, 1, 30, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			name:        "batch-level sentAt corrects an item without its own",
			batchSentAt: time.Date(2025, 12, 14, 12, 0, 10, 0, time.UTC),
			body:        `{"type":"track","messageId":"m-11","userId":"u","event":"e","timestamp":"2025-12-14T12:00:00Z"}`,
			want: ingest.Event{MessageID: "m-11", Type: "track", UserID: "u", Event: "e",
				Timestamp: rx.Add(-10 * time.Second), SentAt: time.Date(2025, 12, 14, 12, 0, 10, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			name:        "the item's sentAt wins over the batch's",
			batchSentAt: time.Date(2025, 12, 14, 12, 0, 10, 0, time.UTC),
			body:        `{"type":"track","messageId":"m-12","userId":"u","event":"e","timestamp":"2025-12-14T12:00:00Z","sentAt":"2025-12-14T12:00:01Z"}`,
			want: ingest.Event{MessageID: "m-12", Type: "track", UserID: "u", Event: "e",
				Timestamp: rx.Add(-time.Second), SentAt: time.Date(2025, 12, 14, 12, 0, 1, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			name: "timestamp without sentAt is taken as sent, in UTC",
			typ:  "track",
			body: `{"messageId":"m-13","userId":"u","event":"e","timestamp":"2025-12-14T20:58:00.123+02:00"}`,
			want: ingest.Event{MessageID: "m-13", Type: "track", UserID: "u", Event: "e", Timestamp: evTime, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "sentAt without timestamp: received time",
			typ:  "track",
			body: `{"messageId":"m-14","userId":"u","event":"e","sentAt":"2025-12-14T08:00:00Z"}`,
			want: ingest.Event{MessageID: "m-14", Type: "track", UserID: "u", Event: "e", Timestamp: rx, SentAt: time.Date(2025, 12, 14, 8, 0, 0, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			name: "timestamp exactly 24h ahead",
			typ:  "track",
			body: `{"messageId":"m-15","userId":"u","event":"e","timestamp":"2025-12-15T19:00:00Z"}`,
			want: ingest.Event{MessageID: "m-15", Type: "track", UserID: "u", Event: "e", Timestamp: rx.Add(24 * time.Hour), ReceivedAt: rx, Source: "web"},
		},
		{
			name: "timestamp exactly 2000-01-01",
			typ:  "track",
			body: `{"messageId":"m-16","userId":"u","event":"e","timestamp":"2000-01-01T00:00:00Z"}`,
			want: ingest.Event{MessageID: "m-16", Type: "track", UserID: "u", Event: "e", Timestamp: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			name: "ids of 256 characters",
			typ:  "track",
			body: `{"messageId":"` + strings.Repeat("m", 256) + `","userId":"` + strings.Repeat("u", 256) + `","event":"e"}`,
			want: ingest.Event{MessageID: strings.Repeat("m", 256), Type: "track", UserID: strings.Repeat("u", 256), Event: "e", Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "nested 32 deep",
			typ:  "track",
			body: nested(32),
			want: ingest.Event{MessageID: "m", Type: "track", UserID: "u", Event: "e", Properties: []byte(nested(32)[len(`{"messageId":"m","userId":"u","event":"e","properties":`) : len(nested(32))-1]), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
		{
			name: "brackets inside strings do not count as depth",
			typ:  "track",
			body: `{"messageId":"m","userId":"u","event":"e","properties":{"s":"` + strings.Repeat(`[{\"`, 40) + `"}}`,
			want: ingest.Event{MessageID: "m", Type: "track", UserID: "u", Event: "e", Properties: []byte(`{"s":"` + strings.Repeat(`[{\"`, 40) + `"}`), Timestamp: rx, ReceivedAt: rx, Source: "web"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ingest.ParseMessage([]byte(tc.body), tc.typ, tc.batchSentAt, rx, "web")
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if got, want := eventString(ev), eventString(&tc.want); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestDecodeRecordRejections(t *testing.T) {
	const ok = `"messageId":"m","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z","receivedAt":"2025-12-14T19:00:00Z"`
	tooBig := `{` + ok + `,"properties":{"p":"` + strings.Repeat("a", ingest.MaxEventBytes+4096) + `"}}`
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name   string
		record string
		want   rejection
	}{
		{"oversize record", tooBig, rejection{"", ingest.CodeTooLarge, fmt.Sprintf("record is %d bytes; events are limited to 32 KB", len(tooBig))}},
		{"invalid UTF-8", "{" + ok + ",\"properties\":{\"a\":\"\xc3\x28\"}}", rejection{"", ingest.CodeInvalidEncoding, "record is not valid UTF-8"}},
		{"nested 33 deep", `{` + ok + `,"properties":` + strings.Repeat(`{"a":`, 32) + `1` + strings.Repeat(`}`, 32) + `}`, rejection{"", ingest.CodeTooDeep, "JSON is nested deeper than 32 levels"}},
		{"not JSON", `{not json`, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"empty", ``, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"timestamp not a time", `{"messageId":"m","type":"track","userId":"u","event":"e","timestamp":"soon"}`, rejection{"", ingest.CodeMalformedJSON, "body is not a valid JSON object: *"}},
		{"missing type", `{"messageId":"m","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"type", ingest.CodeMissingField, "type is required"}},
		{"unknown type", `{"messageId":"m","type":"merge","userId":"u","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"type", ingest.CodeUnknownType, `type "merge" is not supported`}},
		{"missing messageId", `{"type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"messageId", ingest.CodeMissingField, "messageId is required"}},
		{"messageId too long", `{"messageId":"` + long + `","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"messageId", ingest.CodeInvalidField, "messageId is longer than 256 characters"}},
		{"no ids", `{"messageId":"m","type":"track","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"userId", ingest.CodeMissingField, "userId or anonymousId is required"}},
		{"userId too long", `{"messageId":"m","type":"track","userId":"` + long + `","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"userId", ingest.CodeInvalidField, "userId is longer than 256 characters"}},
		// Regression: an overlong anonymousId was reported as userId's.
		{"anonymousId too long", `{"messageId":"m","type":"track","userId":"u","anonymousId":"` + long + `","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"anonymousId", ingest.CodeInvalidField, "anonymousId is longer than 256 characters"}},
		{"track without event", `{"messageId":"m","type":"track","userId":"u","timestamp":"2025-12-14T18:58:00Z"}`, rejection{"event", ingest.CodeMissingField, "event is required for track"}},
		{"missing timestamp", `{"messageId":"m","type":"track","userId":"u","event":"e"}`, rejection{"timestamp", ingest.CodeMissingField, "timestamp is required"}},
		{"timestamp before 2000", `{"messageId":"m","type":"track","userId":"u","event":"e","timestamp":"1999-12-31T23:59:59Z"}`, rejection{"timestamp", ingest.CodeInvalidTime, "timestamp 1999-12-31T23:59:59Z is before 2000-01-01"}},
		{"properties not an object", `{` + ok + `,"properties":[1]}`, rejection{"properties", ingest.CodeInvalidField, "properties must be a JSON object"}},
		{"traits not an object", `{` + ok + `,"traits":"gold"}`, rejection{"traits", ingest.CodeInvalidField, "traits must be a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ingest.DecodeRecord([]byte(tc.record))
			if err == nil {
				t.Fatalf("accepted: %s", eventString(ev))
			}
			checkRejection(t, err, tc.want)
		})
	}
}

func TestDecodeRecordAccepts(t *testing.T) {
	ts := time.Date(2025, 12, 14, 18, 58, 0, 123e6, time.UTC)
	for _, tc := range []struct {
		name   string
		record string
		want   ingest.Event
	}{
		{
			name:   "collector record",
			record: `{"messageId":"m","type":"track","userId":"u","anonymousId":"a","event":"buy","properties":{"n": 1},"traits":{"t":2},"timestamp":"2025-12-14T18:58:00.123Z","sentAt":"2025-12-14T18:58:01Z","receivedAt":"2025-12-14T19:00:00Z","source":"web"}`,
			want: ingest.Event{MessageID: "m", Type: "track", UserID: "u", AnonymousID: "a", Event: "buy", Properties: []byte(`{"n": 1}`), Traits: []byte(`{"t":2}`),
				Timestamp: ts, SentAt: time.Date(2025, 12, 14, 18, 58, 1, 0, time.UTC), ReceivedAt: rx, Source: "web"},
		},
		{
			// Producers other than the collector may leave receivedAt out.
			name:   "receivedAt defaults to the event time",
			record: `{"messageId":"m","type":"identify","anonymousId":"a","timestamp":"2025-12-14T18:58:00.123Z"}`,
			want:   ingest.Event{MessageID: "m", Type: "identify", AnonymousID: "a", Timestamp: ts, ReceivedAt: ts},
		},
		{
			name:   "page without a name",
			record: `{"messageId":"m","type":"page","userId":"u","timestamp":"2025-12-14T18:58:00.123Z","receivedAt":"2025-12-14T19:00:00Z"}`,
			want:   ingest.Event{MessageID: "m", Type: "page", UserID: "u", Timestamp: ts, ReceivedAt: rx},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ingest.DecodeRecord([]byte(tc.record))
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if got, want := eventString(ev), eventString(&tc.want); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestEventIdentity pins the two names the events table derives.
func TestEventIdentity(t *testing.T) {
	for _, tc := range []struct {
		ev             ingest.Event
		customer, name string
	}{
		{ingest.Event{Type: "track", UserID: "u", AnonymousID: "a", Event: "buy", Name: "ignored"}, "u", "buy"},
		{ingest.Event{Type: "page", AnonymousID: "a", Event: "ignored", Name: "Home"}, "anon:a", "Home"},
		{ingest.Event{Type: "identify", AnonymousID: "u"}, "anon:u", ""},
	} {
		if got := tc.ev.CustomerID(); got != tc.customer {
			t.Errorf("%+v: CustomerID %q, want %q", tc.ev, got, tc.customer)
		}
		if got := tc.ev.EventName(); got != tc.name {
			t.Errorf("%+v: EventName %q, want %q", tc.ev, got, tc.name)
		}
	}
}

// TestParseMessageRecordFitsLoader is the regression test for events the
// collector accepted and the loader then dead-lettered as too large: the
// record escapes <, > and & as six bytes each, so a 7 KB event of them grew
// past the loader's limit (found by FuzzParseMessage).
func TestParseMessageRecordFitsLoader(t *testing.T) {
	body := func(n int) []byte {
		return []byte(`{"messageId":"m","userId":"u","event":"e","properties":{"s":"` + strings.Repeat("<", n) + `"}}`)
	}
	ev, err := ingest.ParseMessage(body(6000), "track", time.Time{}, rx, "web")
	if err != nil {
		t.Fatalf("6000 escaped characters: %v", err)
	}
	checkAccepted(t, ev, "track", rx)
	_, err = ingest.ParseMessage(body(7000), "track", time.Time{}, rx, "web")
	checkRejection(t, err, rejection{"", ingest.CodeTooLarge, "event is 42165 bytes once encoded (<, > and & take six bytes each); the limit is 36864 bytes"})
}

// TestParseMessageNumericIDLength is the regression test for numeric ids,
// which escaped the 256-character bound: the collector accepted a 301-digit
// userId and the loader dead-lettered the event (found by FuzzParseMessage's
// numeric_id_long seed).
func TestParseMessageNumericIDLength(t *testing.T) {
	for _, field := range []string{"userId", "anonymousId"} {
		ok := `{"messageId":"m","event":"e","` + field + `":` + strings.Repeat("9", 256) + `}`
		ev, err := ingest.ParseMessage([]byte(ok), "track", time.Time{}, rx, "web")
		if err != nil {
			t.Fatalf("256-digit %s: %v", field, err)
		}
		checkAccepted(t, ev, "track", rx)
		long := `{"messageId":"m","event":"e","` + field + `":1` + strings.Repeat("0", 300) + `}`
		_, err = ingest.ParseMessage([]byte(long), "track", time.Time{}, rx, "web")
		checkRejection(t, err, rejection{field, ingest.CodeInvalidField, field + " is longer than 256 characters"})
	}
}

// TestParseMessageTimeRange is the regression test for times whose UTC year
// JSON cannot encode: an item whose sentAt (its own or the batch's) was
// 9999-12-31 with a negative offset was accepted, its record then failed to
// encode, and the collector answered 503 "retry later" for ever (found by
// FuzzParseMessage's sentat_far_future seed).
func TestParseMessageTimeRange(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       rejection
	}{
		{"sentAt in the year 10000", `{"messageId":"m","userId":"u","event":"e","timestamp":"9999-12-31T23:59:59Z","sentAt":"9999-12-31T23:59:59-23:59"}`,
			rejection{"sentAt", ingest.CodeInvalidTime, `sentAt "9999-12-31T23:59:59-23:59" is outside the years 0000-9999 in UTC`}},
		{"sentAt in the year -1", `{"messageId":"m","userId":"u","event":"e","sentAt":"0000-01-01T00:00:00+01:00"}`,
			rejection{"sentAt", ingest.CodeInvalidTime, `sentAt "0000-01-01T00:00:00+01:00" is outside the years 0000-9999 in UTC`}},
		{"timestamp in the year 10000", `{"messageId":"m","userId":"u","event":"e","timestamp":"9999-12-31T23:00:00-05:00"}`,
			rejection{"timestamp", ingest.CodeInvalidTime, `timestamp "9999-12-31T23:00:00-05:00" is outside the years 0000-9999 in UTC`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.ParseMessage([]byte(tc.body), "track", time.Time{}, rx, "web")
			checkRejection(t, err, tc.want)
		})
	}
	// Both ends of the range still work.
	ev, err := ingest.ParseMessage([]byte(`{"messageId":"m","userId":"u","event":"e","timestamp":"9999-12-31T23:59:59Z","sentAt":"9999-12-31T23:59:59+23:59"}`), "track", time.Time{}, rx, "web")
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, ev, "track", rx)
}

// TestWrongTypesNameTheField is the regression test for values of the wrong
// JSON type, which were answered as malformed JSON without naming the
// field, though the tracking API promises the field of every rejection.
func TestWrongTypesNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, typ, body string
		want            rejection
	}{
		{"epoch-ms timestamp", "track", `{"messageId":"m","userId":"u","event":"e","timestamp":1734202680000}`, rejection{"timestamp", ingest.CodeInvalidField, "timestamp must be a string, not a JSON number"}},
		{"numeric sentAt", "track", `{"messageId":"m","userId":"u","event":"e","sentAt":1}`, rejection{"sentAt", ingest.CodeInvalidField, "sentAt must be a string, not a JSON number"}},
		{"numeric messageId", "identify", `{"messageId":42,"userId":"u"}`, rejection{"messageId", ingest.CodeInvalidField, "messageId must be a string, not a JSON number"}},
		{"event is an array", "track", `{"messageId":"m","userId":"u","event":["e"]}`, rejection{"event", ingest.CodeInvalidField, "event must be a string, not a JSON array"}},
		{"type is a bool", "", `{"type":true,"messageId":"m","userId":"u"}`, rejection{"type", ingest.CodeInvalidField, "type must be a string, not a JSON bool"}},
		{"name is an object", "page", `{"messageId":"m","userId":"u","name":{}}`, rejection{"name", ingest.CodeInvalidField, "name must be a string, not a JSON object"}},
		{"context is a string", "track", `{"messageId":"m","userId":"u","event":"e","context":"web"}`, rejection{"context", ingest.CodeInvalidField, "context must be a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.ParseMessage([]byte(tc.body), tc.typ, time.Time{}, rx, "web")
			checkRejection(t, err, tc.want)
		})
	}
	_, err := ingest.DecodeRecord([]byte(`{"messageId":"m","type":"track","userId":["u"],"event":"e","timestamp":"2025-12-14T18:58:00Z"}`))
	checkRejection(t, err, rejection{"userId", ingest.CodeInvalidField, "userId must be a string, not a JSON array"})
}

// Regression: context.traits is stored twice (in the context and as the
// traits), so a message under the size shortcut of fitsRecord could make a
// record the loader refuses.
func TestContextTraitsFitTheRecord(t *testing.T) {
	// 4 000 bytes: under an eighth of the record limit, over it once
	// escaped (six bytes each) and stored twice.
	raw := []byte(`{"messageId":"m","userId":"u","event":"e","context":{"traits":{"t":"` + strings.Repeat("<", 4000) + `"}}}`)
	ev, err := ingest.ParseMessage(raw, "track", time.Time{}, rx, "web")
	if err != nil {
		checkRejection(t, err, rejection{"", ingest.CodeTooLarge, "*"})
		return
	}
	rec, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.DecodeRecord(rec); err != nil {
		t.Fatalf("a %d-byte message the collector accepted makes a %d-byte record the loader refuses: %v", len(raw), len(rec), err)
	}
}

func TestContextColumns(t *testing.T) {
	for _, tc := range []struct {
		name, ctx, ip string
		want          ingest.ContextColumns
	}{
		{name: "every typed value", ctx: `{"campaign":{"source":"s","medium":"m","name":"n","term":"t","content":"c"},"page":{"url":"u","path":"/p","referrer":"r","title":"T"},` +
			`"ip":"1.2.3.4","userAgent":"ua","locale":"de-DE","timezone":"Europe/Berlin","library":{"name":"lib","version":"1.0"},"other":{"x":1}}`,
			want: ingest.ContextColumns{CampaignSource: "s", CampaignMedium: "m", CampaignName: "n", CampaignTerm: "t", CampaignContent: "c",
				PageURL: "u", PagePath: "/p", PageReferrer: "r", PageTitle: "T", IP: "1.2.3.4", UserAgent: "ua", Locale: "de-DE", Timezone: "Europe/Berlin",
				LibraryName: "lib", LibraryVersion: "1.0"}},
		{name: "odd shapes cost only themselves", ctx: `{"campaign":{"name":"n","term":42},"page":{"url":{"href":"u"},"path":"/p"},"locale":null,"library":"lib","timezone":"UTC"}`,
			want: ingest.ContextColumns{CampaignName: "n", CampaignTerm: "42", PagePath: "/p", Timezone: "UTC"}},
		{name: "the request's address when the context has no ip", ctx: `{"locale":"fr"}`, ip: "10.1.2.3",
			want: ingest.ContextColumns{Locale: "fr", IP: "10.1.2.3"}},
		{name: "no context", ip: "10.1.2.3", want: ingest.ContextColumns{IP: "10.1.2.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &ingest.Event{IP: tc.ip}
			if tc.ctx != "" {
				ev.Context = []byte(tc.ctx)
			}
			if got := ev.ContextColumns(); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
