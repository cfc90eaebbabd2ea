package ingest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// The seed corpora live in testdata/fuzz/<target>/; scripts/fuzz.sh runs
// the long fuzzing sessions. Seeds too large to keep as files are added in
// code below.

// decoderCodes are the reasons a decoder rejection may carry.
var decoderCodes = map[string]bool{
	ingest.CodeMalformedJSON: true, ingest.CodeMissingField: true, ingest.CodeInvalidField: true,
	ingest.CodeInvalidTime: true, ingest.CodeTooLarge: true, ingest.CodeUnknownType: true,
	ingest.CodeTooDeep: true, ingest.CodeInvalidEncoding: true,
}

// collectorCodes are the codes of refusals that come from the HTTP layer.
var collectorCodes = map[string]bool{
	"method_not_allowed": true, "unauthorized": true, "unsupported_media_type": true,
	"overloaded": true, "rate_limited": true, "unavailable": true, "bad_request": true,
}

func checkDecoderError(t *testing.T, err error) *ingest.FieldError {
	t.Helper()
	var fe *ingest.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("rejection %v (%T) is not a FieldError", err, err)
	}
	if !decoderCodes[fe.Code] {
		t.Fatalf("rejection %q has unknown code %q", fe.Message, fe.Code)
	}
	if fe.Message == "" {
		t.Fatalf("rejection with code %q has no message", fe.Code)
	}
	return fe
}

// sameJSON reports whether a and b hold the same JSON value (numbers
// compared as written, not as floats).
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	va, erra := decodeAny(a)
	vb, errb := decodeAny(b)
	return erra == nil && errb == nil && reflect.DeepEqual(va, vb)
}

func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// checkAccepted holds the invariants of an accepted event: it is complete,
// within the time bounds, and it survives the trip through Kafka: the
// record the collector writes decodes, through the loader's DecodeRecord,
// to the same event.
func checkAccepted(t *testing.T, ev *ingest.Event, typ string, received time.Time) {
	t.Helper()
	switch {
	case ev.MessageID == "" || len(ev.MessageID) > 256:
		t.Fatalf("accepted messageId %q", ev.MessageID)
	case ev.UserID == "" && ev.AnonymousID == "":
		t.Fatalf("accepted an event without ids")
	case !slices.Contains(callTypes, ev.Type):
		t.Fatalf("accepted type %q", ev.Type)
	case ev.Type == ingest.TypeGroup && ev.GroupID == "", ev.Type == ingest.TypeAlias && (ev.PreviousID == "" || ev.UserID == ""):
		t.Fatalf("accepted a %s without its ids: %s", ev.Type, eventString(ev))
	case typ != "" && ev.Type != typ:
		t.Fatalf("type %q accepted on the %s endpoint", ev.Type, typ)
	case ev.Type == ingest.TypeTrack && strings.TrimSpace(ev.Event) == "":
		t.Fatalf("accepted a track without event name")
	case ev.Timestamp.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) || ev.Timestamp.After(received.Add(24*time.Hour)):
		t.Fatalf("accepted timestamp %s", ev.Timestamp)
	case ev.Timestamp.Location() != time.UTC || ev.ReceivedAt.Location() != time.UTC:
		t.Fatalf("times not in UTC: %s", eventString(ev))
	}
	rec, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("accepted event does not encode: %v\n%s", err, eventString(ev))
	}
	back, err := ingest.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("accepted event's record (%d bytes) is rejected by the loader: %v", len(rec), err)
	}
	if !sameJSON(back.Properties, ev.Properties) || !sameJSON(back.Traits, ev.Traits) {
		t.Fatalf("properties/traits changed in the round trip:\n%s\n%s", eventString(ev), eventString(back))
	}
	back.Properties, back.Traits = ev.Properties, ev.Traits
	if got, want := eventString(back), eventString(ev); got != want {
		t.Fatalf("round trip changed the event:\ngot  %s\nwant %s", got, want)
	}
}

// callTypes are the Segment call types the collector stores.
var callTypes = []string{ingest.TypeTrack, ingest.TypeIdentify, ingest.TypePage, ingest.TypeScreen, ingest.TypeGroup, ingest.TypeAlias}

var fuzzTypes = append([]string{""}, callTypes...)

// FuzzParseMessage feeds arbitrary bytes to the collector's decoder: it
// must never panic, every rejection carries a code, and every accepted
// event survives the record round trip.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"messageId":"m","userId":"u","event":"e"}`), uint8(1), "")
	f.Add([]byte(`{"messageId":"m","userId":"u","event":"e","properties":{"s":"`+strings.Repeat("<", 6000)+`"}}`), uint8(1), "")
	f.Add([]byte(`{"messageId":"m","userId":"u","event":"e","properties":{"a":`+strings.Repeat("[", 200)+`}}`), uint8(1), "")
	f.Fuzz(func(t *testing.T, raw []byte, typSel uint8, batchSentAt string) {
		typ := fuzzTypes[int(typSel)%len(fuzzTypes)]
		var bs time.Time
		if typ == "" {
			// The collector parses a batch's sentAt the same way, and
			// refuses the batch when its UTC year is outside 0000-9999
			// before any item is parsed.
			bs, _ = time.Parse(time.RFC3339Nano, batchSentAt)
			if y := bs.UTC().Year(); y < 0 || y > 9999 {
				bs = time.Time{}
			}
		}
		ev, err := ingest.ParseMessage(raw, typ, bs, rx, "web")
		if err != nil {
			if ev != nil {
				t.Fatalf("rejected (%v) but returned an event", err)
			}
			checkDecoderError(t, err)
			return
		}
		checkAccepted(t, ev, typ, rx)
	})
}

// FuzzDecodeRecord feeds arbitrary records to the loader's decoder: it must
// never panic, every rejection carries a code, and an accepted record is a
// complete event the loader can turn into a row.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"messageId":"m","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z"}`))
	f.Add([]byte(`{"messageId":"m","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z","properties":{"p":"` + strings.Repeat("x", 40<<10) + `"}}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		ev, err := ingest.DecodeRecord(rec)
		if err != nil {
			if ev != nil {
				t.Fatalf("rejected (%v) but returned an event", err)
			}
			checkDecoderError(t, err)
			return
		}
		switch {
		case ev.MessageID == "" || len(ev.MessageID) > 256 || len(ev.UserID) > 256 || len(ev.AnonymousID) > 256:
			t.Fatalf("accepted ids %q %q %q", ev.MessageID, ev.UserID, ev.AnonymousID)
		case ev.UserID == "" && ev.AnonymousID == "":
			t.Fatalf("accepted an event without ids")
		case !slices.Contains(callTypes, ev.Type):
			t.Fatalf("accepted type %q", ev.Type)
		case ev.Type == ingest.TypeTrack && ev.Event == "":
			t.Fatalf("accepted a track without event name")
		case ev.Timestamp.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) || ev.ReceivedAt.IsZero():
			t.Fatalf("accepted times %s / %s", ev.Timestamp, ev.ReceivedAt)
		case len(ev.Properties) > 0 && ev.Properties[0] != '{', len(ev.Traits) > 0 && ev.Traits[0] != '{':
			t.Fatalf("accepted non-object properties/traits %q %q", ev.Properties, ev.Traits)
		}
		var rows ingest.EventRows
		rows.Add(ev, "web", "events.web", 0, 0)
		if rows.Len() != 1 || rows.CustomerID[0] == "" || rows.CustomerID[0] == "anon:" {
			t.Fatalf("row of %s: customer %q", eventString(ev), rows.CustomerID)
		}
	})
}

var (
	fuzzPaths        = []string{"/v1/track", "/v1/identify", "/v1/page", "/v1/batch", "/v1/import", "/v1/screen", "/v1/group", "/v1/alias"}
	fuzzContentTypes = []string{"", "application/json", "application/json; charset=utf-8", "text/plain", "text/html", "application/x-www-form-urlencoded", "application/json;;"}
	// unsupported are the content types the collector must refuse with 415;
	// analytics.js beacons send text/plain, and no header is taken as JSON.
	unsupported = map[string]bool{"text/html": true, "application/x-www-form-urlencoded": true, "application/json;;": true}
)

// FuzzCollectorHandler sends arbitrary bodies through the collector's HTTP
// handler, producing to an in-memory broker. It must never panic; every
// answer is JSON with a known code; a single-event endpoint answers exactly
// what ParseMessage decides; an accepted batch accounts for every item.
func FuzzCollectorHandler(f *testing.F) {
	br := testenv.Embedded(f)
	prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.RecordDeliveryTimeout(30*time.Second))...)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(prod.Close)
	cfg := ingest.DefaultCollectorConfig()
	cfg.ProduceTimeout = 30 * time.Second
	col, err := ingest.NewCollector(cfg, component.Env{Kafka: br.Config, Log: testenv.Logger(f)}, prod)
	if err != nil {
		f.Fatal(err)
	}
	h := col.Handler()
	var execs atomic.Int64

	f.Add(uint8(3), uint8(1), false, []byte(`{"batch":[{"type":"track","messageId":"m","userId":"u","event":"e"}]}`))
	var huge bytes.Buffer
	huge.WriteString(`{"batch":[`)
	for i := 0; huge.Len() < ingest.MaxBatchBytes+1024; i++ {
		if i > 0 {
			huge.WriteByte(',')
		}
		huge.WriteString(`{"type":"track","messageId":"m-` + strings.Repeat("x", 200) + `","userId":"u","event":"e"}`)
	}
	huge.WriteString(`]}`)
	f.Add(uint8(3), uint8(1), false, huge.Bytes())
	f.Add(uint8(3), uint8(1), true, huge.Bytes())

	f.Fuzz(func(t *testing.T, pathSel, ctSel uint8, gz bool, body []byte) {
		// The broker keeps every record in memory: empty it now and then
		// so a long run stays bounded.
		if execs.Add(1)%2000 == 0 {
			for _, topic := range br.Config.AllTopics() {
				for p := range br.Config.Partitions {
					_ = br.Embedded.Cluster().DeleteRecords(topic, p, -1)
				}
			}
		}
		path := fuzzPaths[int(pathSel)%len(fuzzPaths)]
		ct := fuzzContentTypes[int(ctSel)%len(fuzzContentTypes)]
		sent := body
		if gz {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(body)
			_ = zw.Close()
			sent = b.Bytes()
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(sent))
		req.SetBasicAuth("web-demo-key", "")
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		typ := strings.TrimPrefix(path, "/v1/")
		if typ == "batch" || typ == "import" {
			typ = ""
		}
		var before error
		if typ != "" {
			_, before = ingest.ParseMessage(body, typ, time.Time{}, time.Now(), "web")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var after error
		if typ != "" {
			_, after = ingest.ParseMessage(body, typ, time.Time{}, time.Now(), "web")
		}

		if got := w.Header().Get("Content-Type"); got != "application/json" {
			t.Fatalf("Content-Type %q", got)
		}
		var resp struct {
			Success    bool              `json:"success"`
			Accepted   int               `json:"accepted"`
			Duplicates int               `json:"duplicates"`
			Error      string            `json:"error"`
			Field      string            `json:"field"`
			Code       string            `json:"code"`
			Refused    []json.RawMessage `json:"refused"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d: body is not JSON: %v: %q", w.Code, err, w.Body.String())
		}
		if unsupported[ct] {
			if w.Code != http.StatusUnsupportedMediaType || resp.Code != "unsupported_media_type" {
				t.Fatalf("content type %q answered %d %+v", ct, w.Code, resp)
			}
			return
		}
		switch w.Code {
		case http.StatusOK:
			if resp.Success != (len(resp.Refused) == 0) || resp.Accepted < 1 || resp.Code != "" {
				t.Fatalf("200 with %+v", resp)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if resp.Success || resp.Error == "" || !decoderCodes[resp.Code] && !collectorCodes[resp.Code] {
				t.Fatalf("%d with %+v", w.Code, resp)
			}
			// A batch whose every item was refused is a 400 whatever the
			// items' reasons; a request refused whole says why by its status.
			if len(resp.Refused) == 0 && (w.Code == http.StatusRequestEntityTooLarge) != (resp.Code == ingest.CodeTooLarge) {
				t.Fatalf("status %d for code %q", w.Code, resp.Code)
			}
		default:
			t.Fatalf("unexpected status %d: %+v", w.Code, resp)
		}

		if typ != "" && (before == nil) == (after == nil) {
			// Not near a time bound that moved while the request ran:
			// the handler decides exactly what the decoder decides.
			if before == nil {
				if w.Code != http.StatusOK || resp.Accepted != 1 {
					t.Fatalf("ParseMessage accepts, handler answered %d %+v", w.Code, resp)
				}
				return
			}
			fe := checkDecoderError(t, before)
			if w.Code == http.StatusOK || resp.Code != fe.Code || resp.Field != fe.Field {
				t.Fatalf("ParseMessage rejects with %s %q, handler answered %d %+v", fe.Code, fe.Field, w.Code, resp)
			}
			return
		}
		if typ == "" && w.Code == http.StatusOK {
			var b struct {
				Batch []json.RawMessage `json:"batch"`
			}
			if err := json.Unmarshal(body, &b); err != nil {
				t.Fatalf("batch accepted but does not decode: %v", err)
			}
			if resp.Accepted+resp.Duplicates+len(resp.Refused) != len(b.Batch) {
				t.Fatalf("batch of %d answered %+v", len(b.Batch), resp)
			}
		}
	})
}
