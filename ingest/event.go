package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// Limits from the Segment tracking API.
const (
	MaxEventBytes = 32 << 10
	MaxBatchBytes = 500 << 10
	// maxDepth bounds nesting of properties and traits: deep documents cost
	// the decoder stack and ClickHouse's JSON functions time, and no
	// analytics property needs more.
	maxDepth = 32
	// maxIDLen bounds messageId, userId and anonymousId.
	maxIDLen = 256
	// maxRecordBytes bounds a record DecodeRecord accepts: an event of
	// MaxEventBytes plus the fields the collector adds.
	maxRecordBytes = MaxEventBytes + 4096
)

// Event types accepted by the collector.
const (
	TypeTrack    = "track"
	TypeIdentify = "identify"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeGroup    = "group"
	TypeAlias    = "alias"
)

// knownType reports whether typ is a Segment call type the collector stores.
func knownType(typ string) bool {
	switch typ {
	case TypeTrack, TypeIdentify, TypePage, TypeScreen, TypeGroup, TypeAlias:
		return true
	}
	return false
}

// Event is the normalised form of one accepted event: what the collector
// writes to Kafka (as JSON) and what the loader decodes. Timestamps are UTC.
type Event struct {
	MessageID   string          `json:"messageId"`
	Type        string          `json:"type"`
	UserID      string          `json:"userId,omitempty"`
	AnonymousID string          `json:"anonymousId,omitempty"`
	Event       string          `json:"event,omitempty"`
	Name        string          `json:"name,omitempty"`
	Properties  json.RawMessage `json:"properties,omitempty"`
	Traits      json.RawMessage `json:"traits,omitempty"`
	// PreviousID is an alias call's previousId: the id userId now stands for.
	PreviousID string `json:"previousId,omitempty"`
	// GroupID is a group call's groupId.
	GroupID string `json:"groupId,omitempty"`
	// Context is the message's context object as sent.
	Context json.RawMessage `json:"context,omitempty"`
	// IP is the client address the collector saw, stored as the context's
	// ip when the context carries none (as Segment's API does).
	IP string `json:"ip,omitempty"`
	// Timestamp is the event time, corrected for client clock skew.
	Timestamp time.Time `json:"timestamp"`
	// SentAt is when the client sent the request (zero when not given).
	SentAt time.Time `json:"sentAt,omitzero"`
	// ReceivedAt is when the collector received the request.
	ReceivedAt time.Time `json:"receivedAt"`
	// Source is the write key's source name.
	Source string `json:"source,omitempty"`
}

// CustomerID is the identity events are keyed and grouped by: the userId
// when known, else the anonymousId prefixed with "anon:" so the two spaces
// never collide.
func (e *Event) CustomerID() string {
	if e.UserID != "" {
		return e.UserID
	}
	return "anon:" + e.AnonymousID
}

// EventName is the name stored in the events table: the track event, the page
// or screen name, or "" for the other types.
func (e *Event) EventName() string {
	if e.Type == TypePage || e.Type == TypeScreen {
		return e.Name
	}
	return e.Event
}

// incoming is one message as a Segment-compatible client sends it.
type incoming struct {
	MessageID   *string         `json:"messageId"`
	Type        *string         `json:"type"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	Event       *string         `json:"event"`
	Name        *string         `json:"name"`
	Properties  json.RawMessage `json:"properties"`
	Traits      json.RawMessage `json:"traits"`
	PreviousID  json.RawMessage `json:"previousId"`
	GroupID     json.RawMessage `json:"groupId"`
	Context     json.RawMessage `json:"context"`
	Timestamp   *string         `json:"timestamp"`
	SentAt      *string         `json:"sentAt"`
}

// Message is what the collector knows of a message besides its bytes.
type Message struct {
	// Type is the endpoint's call type ("" for batch items, which carry their own).
	Type string
	// BatchSentAt is the batch's sentAt, used when the message has none.
	BatchSentAt time.Time
	// BatchContext is the batch's context object, which Segment's API
	// applies to every call of the batch (analytics-java and analytics-go
	// send their library there): its fields are added to each message's
	// context, the message's own fields winning.
	BatchContext json.RawMessage
	ReceivedAt   time.Time
	// Source is the write key's source name.
	Source string
	// WriteKey derives the messageId of a message that has none; "" uses Source.
	WriteKey string
	// IP is the client address, kept when the context has no ip.
	IP string
}

// Clock bounds for accepted event times: older than minEventTime is a
// client bug (epoch-zero clocks), and more than maxFuture ahead of the
// server is never a real event.
var minEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const maxFuture = 24 * time.Hour

// ParseMessage validates one Segment message and returns it normalised.
// typ is the endpoint's type ("" for batch items, which carry their own);
// batchSentAt is the batch's sentAt, used when the message has none.
func ParseMessage(raw []byte, typ string, batchSentAt time.Time, receivedAt time.Time, source string) (*Event, error) {
	return Parse(raw, Message{Type: typ, BatchSentAt: batchSentAt, ReceivedAt: receivedAt, Source: source})
}

// DerivedMessageID is the messageId given to a message sent without one: a
// digest of the write key and the message's bytes, so a client that retries
// the same bytes gets the same id and the retry is deduplicated, while two
// sources sending equal bytes do not collide. The key cannot be read back
// from the digest.
func DerivedMessageID(writeKey string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(writeKey))
	h.Write([]byte{0})
	h.Write(bytes.TrimSpace(raw))
	return "tl-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Parse validates one Segment message and returns it normalised.
func Parse(raw []byte, m Message) (*Event, error) {
	typ, batchSentAt, receivedAt := m.Type, m.BatchSentAt, m.ReceivedAt
	if len(raw) > MaxEventBytes {
		return nil, fieldErr("", CodeTooLarge, "event is %d bytes; the limit is %d bytes (32 KB)", len(raw), MaxEventBytes)
	}
	if !utf8.Valid(raw) {
		return nil, fieldErr("", CodeInvalidEncoding, "body is not valid UTF-8")
	}
	if err := checkDepth(raw); err != nil {
		return nil, err
	}
	var in incoming
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&in); err != nil {
		return nil, jsonError(err)
	}
	if dec.More() {
		return nil, fieldErr("", CodeMalformedJSON, "unexpected data after the JSON object")
	}
	ev := &Event{ReceivedAt: receivedAt.UTC(), Source: m.Source}
	switch {
	case typ != "":
		ev.Type = typ
		if in.Type != nil && *in.Type != typ {
			return nil, fieldErr("type", CodeInvalidField, "type %q sent to the %s endpoint", *in.Type, typ)
		}
	case in.Type == nil:
		return nil, fieldErr("type", CodeMissingField, "type is required in a batch item: track, identify, page, screen, group or alias")
	default:
		ev.Type = *in.Type
	}
	if !knownType(ev.Type) {
		return nil, fieldErr("type", CodeUnknownType, "type %q is not supported: use track, identify, page, screen, group or alias", ev.Type)
	}
	switch {
	case in.MessageID == nil || strings.TrimSpace(*in.MessageID) == "":
		key := m.WriteKey
		if key == "" {
			key = m.Source
		}
		ev.MessageID = DerivedMessageID(key, raw)
	case len(*in.MessageID) > maxIDLen:
		return nil, fieldErr("messageId", CodeInvalidField, "messageId is longer than %d characters", maxIDLen)
	default:
		ev.MessageID = *in.MessageID
	}
	var err error
	if ev.UserID, err = idString("userId", in.UserID); err != nil {
		return nil, err
	}
	if ev.AnonymousID, err = idString("anonymousId", in.AnonymousID); err != nil {
		return nil, err
	}
	if ev.UserID == "" && ev.AnonymousID == "" {
		return nil, fieldErr("userId", CodeMissingField, "userId or anonymousId is required")
	}
	if ev.PreviousID, err = idString("previousId", in.PreviousID); err != nil {
		return nil, err
	}
	if ev.GroupID, err = idString("groupId", in.GroupID); err != nil {
		return nil, err
	}
	switch ev.Type {
	case TypeTrack:
		if in.Event == nil || strings.TrimSpace(*in.Event) == "" {
			return nil, fieldErr("event", CodeMissingField, "event (the event name) is required for track")
		}
		ev.Event = *in.Event
	case TypeGroup:
		if ev.GroupID == "" {
			return nil, fieldErr("groupId", CodeMissingField, "groupId is required for group")
		}
	case TypeAlias:
		if ev.PreviousID == "" {
			return nil, fieldErr("previousId", CodeMissingField, "previousId is required for alias: the id userId now stands for")
		}
		if ev.UserID == "" {
			return nil, fieldErr("userId", CodeMissingField, "userId is required for alias")
		}
	}
	if in.Name != nil {
		ev.Name = *in.Name
	}
	if ev.Properties, err = object("properties", in.Properties); err != nil {
		return nil, err
	}
	if ev.Context, err = object("context", in.Context); err != nil {
		return nil, err
	}
	if len(m.BatchContext) > 0 {
		if ev.Context, err = mergeContext(m.BatchContext, ev.Context); err != nil {
			return nil, err
		}
	}
	traits, err := object("traits", in.Traits)
	if err != nil {
		return nil, err
	}
	if ev.Traits, ev.Properties, err = eventTraits(ev, traits); err != nil {
		return nil, err
	}
	if m.IP != "" && !contextHas(ev.Context, "ip") {
		ev.IP = m.IP
	}
	sentAt := batchSentAt
	if in.SentAt != nil {
		if sentAt, err = parseTime("sentAt", *in.SentAt); err != nil {
			return nil, err
		}
	}
	ev.SentAt = sentAt.UTC()
	ts := receivedAt
	if in.Timestamp != nil {
		if ts, err = parseTime("timestamp", *in.Timestamp); err != nil {
			return nil, err
		}
		// Segment's clock-skew correction: the client's clock may be off, but
		// the time between the event and sending it is measured on that same
		// clock, so it carries over to the server's clock.
		if !sentAt.IsZero() {
			ts = receivedAt.Add(-sentAt.Sub(ts))
		}
	}
	if ts.Before(minEventTime) {
		return nil, fieldErr("timestamp", CodeInvalidTime, "timestamp %s is before 2000-01-01 after clock-skew correction; check the client's clock", ts.UTC().Format(time.RFC3339))
	}
	if ts.After(receivedAt.Add(maxFuture)) {
		return nil, fieldErr("timestamp", CodeInvalidTime, "timestamp %s is more than 24h in the future after clock-skew correction", ts.UTC().Format(time.RFC3339))
	}
	ev.Timestamp = ts.UTC()
	if err := fitsRecord(ev, len(raw)); err != nil {
		return nil, err
	}
	return ev, nil
}

// fitsRecord refuses an event whose Kafka record the loader would refuse for
// its size, while the client can still be told. The record can be larger
// than what the client sent: json.Marshal writes <, > and & as \u003c (six
// bytes for one) and adds the collector's fields, and context.traits is
// kept twice (in the context and as the traits). Input below a sixteenth
// of the limit cannot grow past it (at most 2 × 6 times), so only larger
// events are encoded here.
func fitsRecord(ev *Event, rawLen int) error {
	if rawLen <= maxRecordBytes/16 && len(ev.Source) <= maxIDLen {
		return nil
	}
	rec, err := json.Marshal(ev)
	if err != nil {
		return fieldErr("", CodeInvalidField, "event cannot be encoded: %s", err)
	}
	if len(rec) > maxRecordBytes {
		return fieldErr("", CodeTooLarge, "event is %d bytes once encoded (<, > and & take six bytes each); the limit is %d bytes", len(rec), maxRecordBytes)
	}
	return nil
}

// DecodeRecord decodes and re-validates a normalised event from Kafka. The
// loader cannot trust producers other than the collector, so every invariant
// the collector enforces is checked again here.
func DecodeRecord(value []byte) (*Event, error) {
	if len(value) > maxRecordBytes {
		return nil, fieldErr("", CodeTooLarge, "record is %d bytes; events are limited to 32 KB", len(value))
	}
	if !utf8.Valid(value) {
		return nil, fieldErr("", CodeInvalidEncoding, "record is not valid UTF-8")
	}
	if err := checkDepth(value); err != nil {
		return nil, err
	}
	var ev Event
	// goccy/go-json decodes records about 4× faster than encoding/json,
	// with the same results (BENCHMARKS.md has the measurement and the
	// differential test); the loader is bound by this decode.
	if err := gojson.Unmarshal(value, &ev); err != nil {
		return nil, jsonError(err)
	}
	if err := ev.validate(); err != nil {
		return nil, err
	}
	return &ev, nil
}

func (e *Event) validate() error {
	switch {
	case knownType(e.Type):
	case e.Type == "":
		return fieldErr("type", CodeMissingField, "type is required")
	default:
		return fieldErr("type", CodeUnknownType, "type %q is not supported", e.Type)
	}
	switch {
	case e.MessageID == "":
		return fieldErr("messageId", CodeMissingField, "messageId is required")
	case len(e.MessageID) > maxIDLen:
		return fieldErr("messageId", CodeInvalidField, "messageId is longer than %d characters", maxIDLen)
	case e.UserID == "" && e.AnonymousID == "":
		return fieldErr("userId", CodeMissingField, "userId or anonymousId is required")
	case len(e.UserID) > maxIDLen:
		return fieldErr("userId", CodeInvalidField, "userId is longer than %d characters", maxIDLen)
	case len(e.AnonymousID) > maxIDLen:
		return fieldErr("anonymousId", CodeInvalidField, "anonymousId is longer than %d characters", maxIDLen)
	case e.Type == TypeTrack && e.Event == "":
		return fieldErr("event", CodeMissingField, "event is required for track")
	// A group without groupId or an alias without previousId is kept: the
	// collector refuses them, but a backfill archive (which has no such
	// columns) re-ingests them without, and the row is still the event.
	case len(e.PreviousID) > maxIDLen || len(e.GroupID) > maxIDLen:
		return fieldErr("groupId", CodeInvalidField, "previousId and groupId are at most %d characters", maxIDLen)
	case e.Timestamp.IsZero():
		return fieldErr("timestamp", CodeMissingField, "timestamp is required")
	case e.Timestamp.Before(minEventTime):
		return fieldErr("timestamp", CodeInvalidTime, "timestamp %s is before 2000-01-01", e.Timestamp.Format(time.RFC3339))
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = e.Timestamp
	}
	if _, err := object("properties", e.Properties); err != nil {
		return err
	}
	if _, err := object("traits", e.Traits); err != nil {
		return err
	}
	if _, err := object("context", e.Context); err != nil {
		return err
	}
	return nil
}

// groupTraitPrefix starts the attribute name a group trait is stored under
// for the customer who joined the group: {"plan": "enterprise"} sent with
// group becomes the customer's attribute group_plan, beside group_id.
const groupTraitPrefix = "group_"

// eventTraits returns the traits and properties stored for ev: identify
// traits, else the context's traits. A group's traits describe the group,
// not the customer, so they are stored as sent in properties and, renamed
// with groupTraitPrefix beside group_id, as the customer's traits: the
// attribute views then keep the customer's latest group and its traits
// without overwriting the customer's own attributes of the same name.
func eventTraits(ev *Event, traits json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	if ev.Type != TypeGroup {
		if len(traits) == 0 {
			var err error
			if traits, err = object("context.traits", contextTraits(ev.Context)); err != nil {
				return nil, nil, err
			}
		}
		return traits, ev.Properties, nil
	}
	fields := map[string]json.RawMessage{}
	if len(traits) > 0 {
		if err := json.Unmarshal(traits, &fields); err != nil {
			return nil, nil, fieldErr("traits", CodeInvalidField, "traits must be a JSON object: %s", err)
		}
	}
	renamed := make(map[string]json.RawMessage, len(fields)+1)
	for k, v := range fields {
		renamed[groupTraitPrefix+k] = v
	}
	id, err := json.Marshal(ev.GroupID)
	if err != nil {
		return nil, nil, fieldErr("groupId", CodeInvalidField, "groupId cannot be encoded: %s", err)
	}
	renamed[groupTraitPrefix+"id"] = id
	out, err := json.Marshal(renamed)
	if err != nil {
		return nil, nil, fieldErr("traits", CodeInvalidField, "traits cannot be encoded: %s", err)
	}
	props := ev.Properties
	if len(props) == 0 {
		props = traits
	}
	return out, props, nil
}

// contextTraits is the context's traits object (nil when absent).
func contextTraits(ctx json.RawMessage) json.RawMessage {
	if len(ctx) == 0 {
		return nil
	}
	var c struct {
		Traits json.RawMessage `json:"traits"`
	}
	if json.Unmarshal(ctx, &c) != nil {
		return nil
	}
	return c.Traits
}

// contextHas reports whether the context object has key with a value other than null.
func contextHas(ctx json.RawMessage, key string) bool {
	if len(ctx) == 0 {
		return false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(ctx, &fields) != nil {
		return false
	}
	v, ok := fields[key]
	return ok && string(bytes.TrimSpace(v)) != "null"
}

func idString(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if len(s) > maxIDLen {
			return "", fieldErr(field, CodeInvalidField, "%s is longer than %d characters", field, maxIDLen)
		}
		return s, nil
	}
	// Segment libraries accept numeric ids and send them as numbers. The
	// number's text is the id, so it is bounded like a string id.
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if len(n) > maxIDLen {
			return "", fieldErr(field, CodeInvalidField, "%s is longer than %d characters", field, maxIDLen)
		}
		return n.String(), nil
	}
	return "", fieldErr(field, CodeInvalidField, "%s must be a string or a number", field)
}

func object(field string, raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fieldErr(field, CodeInvalidField, "%s must be a JSON object", field)
	}
	return raw, nil
}

// mergeContext adds the batch context's top-level fields to a message's
// context; a field the message has keeps the message's value.
func mergeContext(batch, own json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if len(own) > 0 {
		if err := json.Unmarshal(own, &fields); err != nil {
			return nil, fieldErr("context", CodeInvalidField, "context must be a JSON object: %s", err)
		}
	}
	var shared map[string]json.RawMessage
	if err := json.Unmarshal(batch, &shared); err != nil {
		return nil, fieldErr("context", CodeInvalidField, "the batch's context must be a JSON object: %s", err)
	}
	if fields == nil {
		fields = make(map[string]json.RawMessage, len(shared))
	}
	added := false
	for k, v := range shared {
		if _, ok := fields[k]; !ok {
			fields[k], added = v, true
		}
	}
	if !added {
		return own, nil
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fieldErr("context", CodeInvalidField, "context cannot be encoded: %s", err)
	}
	return out, nil
}

func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fieldErr(field, CodeInvalidTime, "%s %q is not an ISO-8601 time such as 2025-12-14T18:58:00.000Z", field, truncate(s, 64))
	}
	// Events carry their times in UTC, and JSON cannot encode a UTC year
	// outside 0000-9999 (9999-12-31T23:00:00-05:00 is in the year 10000):
	// such a time would pass here and fail when the event is written.
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, fieldErr(field, CodeInvalidTime, "%s %q is outside the years 0000-9999 in UTC", field, truncate(s, 64))
	}
	return t, nil
}

func jsonError(err error) error {
	// A value of the wrong type is the client's most common mistake (an
	// epoch-millisecond timestamp, a numeric messageId): name the field.
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fieldErr(te.Field, CodeInvalidField, "%s must be %s, not a JSON %s", te.Field, jsonKind(te.Type), te.Value)
	}
	var gte *gojson.UnmarshalTypeError
	if errors.As(err, &gte) && gte.Field != "" {
		return fieldErr(gte.Field, CodeInvalidField, "%s must be %s, not a JSON %s", gte.Field, jsonKind(gte.Type), gte.Value)
	}
	return fieldErr("", CodeMalformedJSON, "body is not a valid JSON object: %s", err)
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "true or false"
	default:
		return "a number"
	}
}

// checkDepth rejects documents nested deeper than maxDepth without decoding them.
func checkDepth(b []byte) error { return checkDepthOf(b, maxDepth) }

// checkDepthOf rejects documents nested deeper than limit.
func checkDepthOf(b []byte, limit int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > limit {
				return fieldErr("", CodeTooDeep, "JSON is nested deeper than %d levels", maxDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ContextColumns are the context values stored in typed columns of events:
// what audiences and analysts filter on. The whole context stays in the
// context column as JSON.
type ContextColumns struct {
	CampaignSource, CampaignMedium, CampaignName, CampaignTerm, CampaignContent string
	PageURL, PagePath, PageReferrer, PageTitle                                  string
	IP, UserAgent, Locale, Timezone, LibraryName, LibraryVersion                string
}

// text decodes any JSON value as text: a string as itself, another scalar
// as its JSON text, so a number sent where a string is usual is kept.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*t = ""
	case b[0] == '"':
		var s string
		if err := gojson.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
	case b[0] == '{' || b[0] == '[':
		*t = ""
	default:
		*t = text(b)
	}
	return nil
}

// contextStrings is the context's typed columns as a browser or server SDK
// sends them: all strings, decoded in one pass.
type contextStrings struct {
	Campaign struct {
		Source, Medium, Name, Term, Content string
	} `json:"campaign"`
	Page struct {
		URL      string `json:"url"`
		Path     string `json:"path"`
		Referrer string `json:"referrer"`
		Title    string `json:"title"`
	} `json:"page"`
	IP        string `json:"ip"`
	UserAgent string `json:"userAgent"`
	Locale    string `json:"locale"`
	Timezone  string `json:"timezone"`
	Library   struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"library"`
}

// ContextColumns extracts the typed context columns of e. A context whose
// values have unexpected shapes leaves those columns empty; the JSON keeps
// them.
func (e *Event) ContextColumns() ContextColumns {
	var c contextStrings
	if len(e.Context) > 0 && gojson.Unmarshal(e.Context, &c) != nil {
		c = contextLenient(e.Context)
	}
	out := ContextColumns{
		CampaignSource: c.Campaign.Source, CampaignMedium: c.Campaign.Medium,
		CampaignName: c.Campaign.Name, CampaignTerm: c.Campaign.Term, CampaignContent: c.Campaign.Content,
		PageURL: c.Page.URL, PagePath: c.Page.Path, PageReferrer: c.Page.Referrer, PageTitle: c.Page.Title,
		IP: c.IP, UserAgent: c.UserAgent, Locale: c.Locale, Timezone: c.Timezone,
		LibraryName: c.Library.Name, LibraryVersion: c.Library.Version,
	}
	if out.IP == "" {
		out.IP = e.IP
	}
	return out
}

// contextLenient decodes a context some of whose values are not strings
// (a number as the campaign term, an object as the page): field by field,
// a scalar kept as its JSON text, so one odd value costs no other.
func contextLenient(ctx json.RawMessage) contextStrings {
	var c struct {
		Campaign struct {
			Source, Medium, Name, Term, Content text
		} `json:"campaign"`
		Page struct {
			URL      text `json:"url"`
			Path     text `json:"path"`
			Referrer text `json:"referrer"`
			Title    text `json:"title"`
		} `json:"page"`
		IP, UserAgent, Locale, Timezone text
		Library                         struct {
			Name    text `json:"name"`
			Version text `json:"version"`
		} `json:"library"`
	}
	var fields map[string]json.RawMessage
	if gojson.Unmarshal(ctx, &fields) == nil {
		for key, into := range map[string]any{"campaign": &c.Campaign, "page": &c.Page, "ip": &c.IP,
			"userAgent": &c.UserAgent, "locale": &c.Locale, "timezone": &c.Timezone, "library": &c.Library} {
			if v, ok := fields[key]; ok {
				_ = gojson.Unmarshal(v, into)
			}
		}
	}
	var out contextStrings
	out.Campaign.Source, out.Campaign.Medium, out.Campaign.Name = string(c.Campaign.Source), string(c.Campaign.Medium), string(c.Campaign.Name)
	out.Campaign.Term, out.Campaign.Content = string(c.Campaign.Term), string(c.Campaign.Content)
	out.Page.URL, out.Page.Path, out.Page.Referrer, out.Page.Title = string(c.Page.URL), string(c.Page.Path), string(c.Page.Referrer), string(c.Page.Title)
	out.IP, out.UserAgent, out.Locale, out.Timezone = string(c.IP), string(c.UserAgent), string(c.Locale), string(c.Timezone)
	out.Library.Name, out.Library.Version = string(c.Library.Name), string(c.Library.Version)
	return out
}
