package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// Write keys of the collector tests: distinctive, so finding one in the
// logs cannot be a coincidence.
const (
	webKey    = "wk-web-5f0c1e7a9b"
	serverKey = "wk-server-8d2b6a41c3"
	wrongKey  = "wk-wrong-3e9f0d7c25"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// collectorEnv is a collector on an embedded broker of its own, served over
// HTTP, with its logs and metrics captured.
type collectorEnv struct {
	br   testenv.Broker
	prod *kgo.Client
	srv  *httptest.Server
	reg  *prometheus.Registry
	logs *lockedBuffer
	// hold, when set, makes a request carrying the X-Test-Hold header stop
	// at its first body read (after it took its in-flight slot) until
	// release is closed; entered is closed when it got there.
	entered, release chan struct{}
	releaseOnce      sync.Once
}

// releaseHeld lets a held request go on.
func (e *collectorEnv) releaseHeld() { e.releaseOnce.Do(func() { close(e.release) }) }

func collectorConfig() ingest.CollectorConfig {
	cfg := ingest.DefaultCollectorConfig()
	cfg.Sources = []ingest.Source{
		{Name: "web", WriteKey: webKey, Lane: "web"},
		{Name: "server", WriteKey: serverKey, Lane: "server"},
	}
	cfg.ProduceTimeout = 2 * time.Second
	cfg.MetricsAddr = ""
	return cfg
}

func newCollectorEnv(t *testing.T, cfg ingest.CollectorConfig) *collectorEnv {
	t.Helper()
	e := &collectorEnv{br: testenv.Embedded(t), reg: prometheus.NewRegistry(), logs: &lockedBuffer{},
		entered: make(chan struct{}), release: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The producer the collect command builds: acks=all and idempotent
	// (franz-go's defaults), records failed after the produce timeout.
	prod, err := kgo.NewClient(append(broker.ClientOpts(e.br.Seeds, log),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	e.prod = prod
	col, err := ingest.NewCollector(cfg, component.Env{Kafka: e.br.Config, Registry: e.reg, Log: log}, prod)
	if err != nil {
		t.Fatal(err)
	}
	h := col.Handler()
	var once sync.Once
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Hold") != "" {
			r.Body = &holdBody{ReadCloser: r.Body, first: func() {
				once.Do(func() { close(e.entered) })
				<-e.release
			}}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	// Before the server closes, which waits for a held request.
	t.Cleanup(e.releaseHeld)
	t.Cleanup(func() {
		for _, k := range []string{webKey, serverKey, wrongKey} {
			if strings.Contains(e.logs.String(), k) {
				t.Errorf("a write key is in the logs:\n%s", e.logs.String())
			}
		}
	})
	return e
}

type holdBody struct {
	io.ReadCloser
	first func()
	done  bool
}

func (h *holdBody) Read(p []byte) (int, error) {
	if !h.done {
		h.done = true
		h.first()
	}
	return h.ReadCloser.Read(p)
}

// request is one HTTP request to the collector.
type request struct {
	method, path string
	key          string // HTTP Basic user name
	password     string // HTTP Basic password; with key "", no credentials are sent
	contentType  string
	gzip         bool   // compress the body and say so
	encoding     string // Content-Encoding without compressing
	hold         bool
	body         []byte
}

// answer is the collector's response.
type answer struct {
	status  int
	header  http.Header
	Success bool   `json:"success"`
	Accept  int    `json:"accepted"`
	Dups    int    `json:"duplicates"`
	Error   string `json:"error"`
	Field   string `json:"field"`
	Code    string `json:"code"`
}

func (e *collectorEnv) do(t *testing.T, r request) answer {
	t.Helper()
	a, err := e.try(r)
	if err != nil {
		t.Fatal(err)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", r.method, r.path, ct)
	}
	return a
}

// try is do for goroutines other than the test's.
func (e *collectorEnv) try(r request) (answer, error) {
	body := r.body
	if r.gzip {
		body = gzipped(body)
	}
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, e.srv.URL+r.path, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if r.key != "" || r.password != "" {
		req.SetBasicAuth(r.key, r.password)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	if r.hold {
		req.Header.Set("X-Test-Hold", "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("%s %s: status %d with a body that is not JSON: %q", r.method, r.path, resp.StatusCode, raw)
	}
	return a, nil
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

// records reads everything in topic from the start.
func records(t *testing.T, seeds []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(broker.ClientOpts(seeds, nil), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d of %d records", topic, len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func recHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// metric is the value of the counter or gauge name with the given label
// pairs in reg (0 when absent).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func trackBody(id string) []byte {
	return []byte(`{"messageId":"` + id + `","userId":"u-1","event":"purchase","properties":{"amount":42.5}}`)
}

func batchBody(items ...string) []byte {
	return []byte(`{"batch":[` + strings.Join(items, ",") + `]}`)
}

func item(id string) string {
	return `{"type":"track","messageId":"` + id + `","userId":"u-` + id + `","event":"view"}`
}

// TestCollectorResponses sends good and bad requests and checks the exact
// answer, what reached the lane topic, what was kept in the dead-letter
// topic and the rejection counter.
func TestCollectorResponses(t *testing.T) {
	bigEvent := []byte(`{"messageId":"m","userId":"u","event":"e","properties":{"p":"` + strings.Repeat("a", ingest.MaxEventBytes) + `"}}`)
	var bigBatchItems []string
	for size := 0; size <= ingest.MaxBatchBytes; {
		it := `{"type":"track","messageId":"big-` + fmt.Sprint(len(bigBatchItems)) + `","userId":"u","event":"e","properties":{"p":"` + strings.Repeat("b", 120) + `"}}`
		bigBatchItems = append(bigBatchItems, it)
		size += len(it) + 1
	}
	bigBatch := batchBody(bigBatchItems...)
	// 600 KB of spaces around a valid batch compress to a few hundred bytes.
	// 32 levels: accepted on /v1/track, and so in a batch; 33 are not.
	deepItem := `{"type":"track","messageId":"deep","userId":"u","event":"e","properties":` + strings.Repeat(`{"a":`, 31) + `1` + strings.Repeat(`}`, 31) + `}`
	tooDeepItem := `{"type":"track","messageId":"deep","userId":"u","event":"e","properties":` + strings.Repeat(`{"a":`, 32) + `1` + strings.Repeat(`}`, 32) + `}`
	bomb := append(append([]byte(`{"batch":[`+item("z")+`]`), bytes.Repeat([]byte(" "), 600<<10)...), '}')

	for _, tc := range []struct {
		name string
		req  request
		// the answer
		status     int
		code       string
		field      string
		msg        string // exact error message, when stable
		retryAfter string
		accepted   int
		duplicates int
		// what reached Kafka
		lane     string // topic the accepted events went to
		produced int
		kept     bool // the request body is in events.dlq with the reason
	}{
		{name: "track accepted", req: request{path: "/v1/track", key: webKey, contentType: "application/json", body: trackBody("m-1")},
			status: 200, accepted: 1, lane: "web", produced: 1},
		{name: "identify on the server lane", req: request{path: "/v1/identify", key: serverKey, contentType: "application/json; charset=utf-8", body: []byte(`{"messageId":"m-2","userId":"u-1","traits":{"plan":"gold"}}`)},
			status: 200, accepted: 1, lane: "server", produced: 1},
		{name: "page as text/plain (beacons)", req: request{path: "/v1/page", key: webKey, contentType: "text/plain", body: []byte(`{"messageId":"m-3","anonymousId":"a-1","name":"Home"}`)},
			status: 200, accepted: 1, lane: "web", produced: 1},
		{name: "no content type", req: request{path: "/v1/track", key: webKey, body: trackBody("m-4")},
			status: 200, accepted: 1, lane: "web", produced: 1},
		{name: "gzip track", req: request{path: "/v1/track", key: webKey, contentType: "application/json", gzip: true, body: trackBody("m-5")},
			status: 200, accepted: 1, lane: "web", produced: 1},
		{name: "gzip batch on /v1/import", req: request{path: "/v1/import", key: webKey, gzip: true, body: batchBody(item("a"), item("b"), item("c"))},
			status: 200, accepted: 3, lane: "web", produced: 3},
		{name: "duplicate message ids in a batch", req: request{path: "/v1/batch", key: webKey, body: batchBody(item("a"), item("b"), item("a"), item("a"))},
			status: 200, accepted: 2, duplicates: 2, lane: "web", produced: 2},
		{name: "GET", req: request{method: http.MethodGet, path: "/v1/track", key: webKey},
			status: 405, code: "method_not_allowed", msg: "use POST"},
		{name: "no write key", req: request{path: "/v1/track", contentType: "application/json", body: trackBody("m")},
			status: 401, code: "unauthorized", msg: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body"},
		{name: "wrong write key", req: request{path: "/v1/batch", key: wrongKey, body: batchBody(item("a"))},
			status: 401, code: "unauthorized", msg: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body"},
		{name: "write key with a different case", req: request{path: "/v1/track", key: strings.ToUpper(webKey), body: trackBody("m")},
			status: 401, code: "unauthorized", msg: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body"},
		{name: "prefix of a write key", req: request{path: "/v1/track", key: webKey[:len(webKey)-1], body: trackBody("m")},
			status: 401, code: "unauthorized", msg: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body"},
		{name: "write key with a suffix", req: request{path: "/v1/track", key: webKey + "0", body: trackBody("m")},
			status: 401, code: "unauthorized", msg: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body"},
		{name: "write key as the password", req: request{path: "/v1/track", password: webKey, body: trackBody("m")},
			status: 401, code: "unauthorized", msg: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body"},
		{name: "wrong content type", req: request{path: "/v1/track", key: webKey, contentType: "application/x-www-form-urlencoded", body: []byte("messageId=m")},
			status: 415, code: "unsupported_media_type", msg: `content type "application/x-www-form-urlencoded": send application/json or text/plain`},
		{name: "malformed JSON", req: request{path: "/v1/track", key: webKey, body: []byte(`{"messageId":"m",`)},
			status: 400, code: ingest.CodeMalformedJSON, msg: "body is not a valid JSON object: unexpected EOF", kept: true},
		{name: "malformed batch", req: request{path: "/v1/batch", key: webKey, body: []byte(`{"batch":[{]}`)},
			status: 400, code: ingest.CodeMalformedJSON, kept: true},
		{name: "empty batch", req: request{path: "/v1/batch", key: webKey, body: []byte(`{"batch":[]}`)},
			status: 400, code: ingest.CodeMissingField, field: "batch", msg: "batch must be a non-empty array of messages", kept: true},
		{name: "batch is not an array", req: request{path: "/v1/batch", key: webKey, body: []byte(`{"batch":{"type":"track"}}`)},
			status: 400, code: ingest.CodeInvalidField, field: "batch", msg: "batch must be an array, not a JSON object", kept: true},
		{name: "oversize event", req: request{path: "/v1/track", key: webKey, body: bigEvent},
			status: 413, code: ingest.CodeTooLarge, msg: "body is larger than 32768 bytes (32 KB)", kept: true},
		{name: "oversize batch", req: request{path: "/v1/batch", key: webKey, body: bigBatch},
			status: 413, code: ingest.CodeTooLarge, msg: "body is larger than 512000 bytes (500 KB)", kept: true},
		{name: "gzip bomb", req: request{path: "/v1/batch", key: webKey, gzip: true, body: bomb},
			status: 413, code: ingest.CodeTooLarge, msg: "body is larger than 512000 bytes (500 KB)", kept: true},
		{name: "not gzip", req: request{path: "/v1/track", key: webKey, encoding: "gzip", body: trackBody("m")},
			status: 400, code: ingest.CodeMalformedJSON, msg: "Content-Encoding is gzip but the body is not: gzip: invalid header", kept: true},
		{name: "truncated gzip", req: request{path: "/v1/track", key: webKey, encoding: "gzip", body: gzipped(trackBody("m"))[:30]},
			status: 400, code: ingest.CodeMalformedJSON, msg: "gzip body is corrupt: unexpected EOF", kept: true},
		{name: "deep nesting", req: request{path: "/v1/track", key: webKey, body: []byte(`{"messageId":"m","userId":"u","event":"e","properties":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`)},
			status: 400, code: ingest.CodeTooDeep, msg: "JSON is nested deeper than 32 levels", kept: true},
		{name: "deep nesting in a batch", req: request{path: "/v1/batch", key: webKey, body: batchBody(strings.Repeat("[", 100) + strings.Repeat("]", 100))},
			status: 400, code: ingest.CodeTooDeep, msg: "JSON is nested deeper than 32 levels", kept: true},
		// Regression: the batch envelope's two levels counted against its
		// items, so an event accepted on /v1/track was refused in a batch.
		{name: "batch item nested to the limit", req: request{path: "/v1/batch", key: webKey, body: batchBody(deepItem)},
			status: 200, accepted: 1, lane: "web", produced: 1},
		{name: "batch item nested past the limit", req: request{path: "/v1/batch", key: webKey, body: batchBody(tooDeepItem)},
			status: 400, code: ingest.CodeTooDeep, msg: "JSON is nested deeper than 32 levels", kept: true},
		{name: "invalid UTF-8", req: request{path: "/v1/identify", key: webKey, body: []byte("{\"messageId\":\"m\",\"userId\":\"\xc3\x28\"}")},
			status: 400, code: ingest.CodeInvalidEncoding, msg: "body is not valid UTF-8", kept: true},
		{name: "missing messageId", req: request{path: "/v1/track", key: webKey, body: []byte(`{"userId":"u","event":"e"}`)},
			status: 200, accepted: 1, lane: "web", produced: 1},
		{name: "missing user and anonymous id", req: request{path: "/v1/track", key: webKey, body: []byte(`{"messageId":"m","event":"e"}`)},
			status: 400, code: ingest.CodeMissingField, field: "userId", msg: "userId or anonymousId is required", kept: true},
		{name: "year-9999 timestamp", req: request{path: "/v1/track", key: webKey, body: []byte(`{"messageId":"m","userId":"u","event":"e","timestamp":"9999-12-31T23:59:59Z"}`)},
			status: 400, code: ingest.CodeInvalidTime, field: "timestamp", msg: "timestamp 9999-12-31T23:59:59Z is more than 24h in the future after clock-skew correction", kept: true},
		{name: "epoch-zero timestamp", req: request{path: "/v1/track", key: webKey, body: []byte(`{"messageId":"m","userId":"u","event":"e","timestamp":"1970-01-01T00:00:00Z"}`)},
			status: 400, code: ingest.CodeInvalidTime, field: "timestamp", msg: "timestamp 1970-01-01T00:00:00Z is before 2000-01-01 after clock-skew correction; check the client's clock", kept: true},
		{name: "epoch-ms timestamp", req: request{path: "/v1/track", key: webKey, body: []byte(`{"messageId":"m","userId":"u","event":"e","timestamp":1734202680000}`)},
			status: 400, code: ingest.CodeInvalidField, field: "timestamp", msg: "timestamp must be a string, not a JSON number", kept: true},
		{name: "batch sentAt beyond the year 9999", req: request{path: "/v1/batch", key: webKey, body: []byte(`{"batch":[` + item("a") + `],"sentAt":"9999-12-31T23:00:00-05:00"}`)},
			status: 400, code: ingest.CodeInvalidTime, field: "sentAt", msg: `sentAt "9999-12-31T23:00:00-05:00" is outside the years 0000-9999 in UTC`, kept: true},
		{name: "type for another endpoint", req: request{path: "/v1/page", key: webKey, body: []byte(`{"type":"track","messageId":"m","userId":"u","event":"e"}`)},
			status: 400, code: ingest.CodeInvalidField, field: "type", msg: `type "track" sent to the page endpoint`, kept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCollectorEnv(t, collectorConfig())
			a := e.do(t, tc.req)
			if a.status != tc.status || a.Code != tc.code || a.Field != tc.field {
				t.Fatalf("answer %d code=%q field=%q (%q), want %d code=%q field=%q", a.status, a.Code, a.Field, a.Error, tc.status, tc.code, tc.field)
			}
			if tc.msg != "" && a.Error != tc.msg {
				t.Errorf("error %q\n want %q", a.Error, tc.msg)
			}
			if a.Success != (tc.status == 200) || a.Accept != tc.accepted || a.Dups != tc.duplicates {
				t.Errorf("success=%v accepted=%d duplicates=%d, want accepted=%d duplicates=%d", a.Success, a.Accept, a.Dups, tc.accepted, tc.duplicates)
			}
			if got := a.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if got, want := a.header.Get("WWW-Authenticate"), map[bool]string{true: `Basic realm="tideline"`}[tc.status == 401]; got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if tc.status == 405 && a.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow %q", a.header.Get("Allow"))
			}

			for _, lane := range []string{"web", "server"} {
				recs := records(t, e.br.Seeds, e.br.Config.MustTopic(lane))
				want := 0
				if lane == tc.lane {
					want = tc.produced
				}
				if len(recs) != want {
					t.Errorf("%s lane has %d records, want %d", lane, len(recs), want)
				}
				for _, r := range recs {
					ev, err := ingest.DecodeRecord(r.Value)
					if err != nil {
						t.Errorf("produced record does not decode: %v", err)
						continue
					}
					if string(r.Key) != ev.CustomerID() || ev.Source != lane {
						t.Errorf("record key %q source %q for %s", r.Key, ev.Source, eventString(ev))
					}
				}
			}

			dlq := records(t, e.br.Seeds, e.br.Config.MustTopic("dlq"))
			if !tc.kept {
				if len(dlq) != 0 {
					t.Errorf("%d dead letters for a request that must not be kept", len(dlq))
				}
				return
			}
			if len(dlq) != 1 {
				t.Fatalf("%d dead letters, want the request kept once", len(dlq))
			}
			d := dlq[0]
			if recHeader(d, ingest.HeaderOrigin) != "collector:web" || recHeader(d, ingest.HeaderCode) != tc.code ||
				recHeader(d, ingest.HeaderField) != tc.field || recHeader(d, ingest.HeaderError) != a.Error {
				t.Errorf("dead-letter headers %v", d.Headers)
			}
			body := tc.req.body
			switch {
			case tc.code == ingest.CodeTooLarge && tc.field == "":
				// Reading stops one byte past the limit, and at most 64 KB is kept.
				if !bytes.HasPrefix(body, d.Value) || len(d.Value) == 0 || len(d.Value) > 64<<10 {
					t.Errorf("kept %d bytes, not a prefix of the %d-byte body", len(d.Value), len(body))
				}
			case !bytes.Equal(d.Value, body):
				t.Errorf("kept %q\nwant %q", d.Value, body)
			}
			if got := metric(t, e.reg, "tideline_collector_events_total", "lane", "web", "outcome", "rejected"); got != 1 {
				t.Errorf("rejected counter %g, want 1", got)
			}
		})
	}
}

// TestCollectorRateLimit: a source over its rate limit is refused with 429
// and Retry-After, nothing of the refused request is produced or kept (the
// client retries it), and other sources are not affected.
func TestCollectorRateLimit(t *testing.T) {
	cfg := collectorConfig()
	// A burst of 1000 events that refills at one event every 1000 s: the
	// second request cannot be accepted however slow the machine is.
	cfg.Sources[0].RateLimit = 0.001
	e := newCollectorEnv(t, cfg)
	var items []string
	for i := range 1000 {
		items = append(items, item(fmt.Sprint(i)))
	}
	if a := e.do(t, request{path: "/v1/batch", key: webKey, body: batchBody(items...)}); a.status != 200 || a.Accept != 1000 {
		t.Fatalf("burst: %d %+v", a.status, a)
	}
	// Regression: Retry-After was always 1, whatever the wait; one token
	// at 0.001 events/s is 1000 s away.
	a := e.do(t, request{path: "/v1/track", key: webKey, body: trackBody("over")})
	if a.status != 429 || a.Code != "rate_limited" || a.header.Get("Retry-After") != "1000" || a.Error != "source web is over its rate limit of 0.001 events/s" {
		t.Fatalf("over the limit: %d Retry-After=%q %+v", a.status, a.header.Get("Retry-After"), a)
	}
	// Regression: a batch larger than the burst was answered 429, which
	// the client retried for ever; it can never pass, so it is refused
	// for good.
	a = e.do(t, request{path: "/v1/batch", key: webKey, body: batchBody(append(items, item("one-more"))...)})
	if a.status != 413 || a.Code != ingest.CodeTooLarge || a.Field != "batch" || a.header.Get("Retry-After") != "" ||
		a.Error != "source web accepts at most 1000 events per request (the burst of its rate limit); split the batch" {
		t.Fatalf("batch over the burst: %d Retry-After=%q %+v", a.status, a.header.Get("Retry-After"), a)
	}
	if a := e.do(t, request{path: "/v1/track", key: serverKey, body: trackBody("other")}); a.status != 200 {
		t.Fatalf("another source: %d %+v", a.status, a)
	}
	if n := len(records(t, e.br.Seeds, e.br.Config.MustTopic("web"))); n != 1000 {
		t.Errorf("web lane has %d records, want the 1000 accepted", n)
	}
	if n := len(records(t, e.br.Seeds, e.br.Config.MustTopic("dlq"))); n != 0 {
		t.Errorf("%d dead letters for a rate-limited request", n)
	}
	if got := metric(t, e.reg, "tideline_collector_refused_requests_total", "source", "web", "reason", "rate_limited"); got != 2 {
		t.Errorf("rate_limited counter %g, want 2", got)
	}
}

// TestCollectorOverload: with every in-flight slot taken, a request is
// refused at once with 503 and Retry-After, and the held request still
// completes.
func TestCollectorOverload(t *testing.T) {
	cfg := collectorConfig()
	cfg.MaxInFlight = 1
	e := newCollectorEnv(t, cfg)
	type result struct {
		a   answer
		err error
	}
	held := make(chan result, 1)
	go func() {
		a, err := e.try(request{path: "/v1/track", key: webKey, hold: true, body: trackBody("held")})
		held <- result{a, err}
	}()
	select {
	case <-e.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the held request never reached its body")
	}
	a := e.do(t, request{path: "/v1/track", key: webKey, body: trackBody("refused")})
	if a.status != 503 || a.Code != "overloaded" || a.header.Get("Retry-After") != "1" || a.Error != "collector is at capacity; retry after the Retry-After delay" {
		t.Errorf("while full: %d Retry-After=%q %+v", a.status, a.header.Get("Retry-After"), a)
	}
	e.releaseHeld()
	if r := <-held; r.err != nil || r.a.status != 200 || r.a.Accept != 1 {
		t.Errorf("held request: %d %+v %v", r.a.status, r.a, r.err)
	}
	if a := e.do(t, request{path: "/v1/track", key: webKey, body: trackBody("after")}); a.status != 200 {
		t.Errorf("after the slot freed: %d %+v", a.status, a)
	}
	recs := records(t, e.br.Seeds, e.br.Config.MustTopic("web"))
	var ids []string
	for _, r := range recs {
		ev, _ := ingest.DecodeRecord(r.Value)
		ids = append(ids, ev.MessageID)
	}
	if strings.Join(ids, ",") != "held,after" {
		t.Errorf("produced %v, want held and after", ids)
	}
	if got := metric(t, e.reg, "tideline_collector_refused_requests_total", "source", "web", "reason", "overloaded"); got != 1 {
		t.Errorf("overloaded counter %g, want 1", got)
	}
}

// TestCollectorBrokerDown: when the broker does not acknowledge, the client
// gets 503 with Retry-After and no 2xx, and a retry succeeds once the broker
// is back.
func TestCollectorBrokerDown(t *testing.T) {
	t.Run("produce refused", func(t *testing.T) {
		e := newCollectorEnv(t, collectorConfig())
		// The lane's partitions answer every produce with an error until
		// the fault is removed; the dead-letter topic keeps working.
		f := e.br.Embedded.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: e.br.Config.MustTopic("web"), Err: kerr.InvalidRecord, Count: -1})
		a := e.do(t, request{path: "/v1/batch", key: webKey, body: batchBody(item("a"), item("b"))})
		if a.status != 503 || a.Code != "unavailable" || a.header.Get("Retry-After") != "5" || a.Success {
			t.Fatalf("broker refusing: %d Retry-After=%q %+v", a.status, a.header.Get("Retry-After"), a)
		}
		if n := len(records(t, e.br.Seeds, e.br.Config.MustTopic("dlq"))); n != 0 {
			t.Errorf("%d dead letters: a refused produce is the client's to retry, not bad input", n)
		}
		f.Remove()
		if a := e.do(t, request{path: "/v1/batch", key: webKey, body: batchBody(item("a"), item("b"))}); a.status != 200 || a.Accept != 2 {
			t.Fatalf("retry after the broker recovered: %d %+v", a.status, a)
		}
		if n := len(records(t, e.br.Seeds, e.br.Config.MustTopic("web"))); n != 2 {
			t.Errorf("web lane has %d records, want 2", n)
		}
		if got := metric(t, e.reg, "tideline_collector_refused_requests_total", "source", "web", "reason", "broker_unavailable"); got != 1 {
			t.Errorf("broker_unavailable counter %g, want 1", got)
		}
	})
	t.Run("broker gone", func(t *testing.T) {
		e := newCollectorEnv(t, collectorConfig())
		if a := e.do(t, request{path: "/v1/track", key: webKey, body: trackBody("before")}); a.status != 200 {
			t.Fatalf("before: %d %+v", a.status, a)
		}
		e.br.Embedded.Close()
		a := e.do(t, request{path: "/v1/track", key: webKey, body: trackBody("during")})
		if a.status != 503 || a.Code != "unavailable" || a.header.Get("Retry-After") != "5" || a.Success {
			t.Fatalf("broker gone: %d Retry-After=%q %+v", a.status, a.header.Get("Retry-After"), a)
		}
		if !strings.Contains(e.logs.String(), "produce failed") {
			t.Errorf("the failed produce is not logged:\n%s", e.logs.String())
		}
	})
}
