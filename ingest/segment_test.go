package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestCollectorBatchItems: a batch's valid items are accepted and each
// invalid one is refused alone, dead-lettered with its reason and index,
// and listed in the answer.
func TestCollectorBatchItems(t *testing.T) {
	type refused struct {
		Index int    `json:"index"`
		Field string `json:"field"`
		Code  string `json:"code"`
	}
	screen := `{"type":"screen","messageId":"s-1","userId":"u","name":"Home"}`
	for _, tc := range []struct {
		name     string
		items    []string
		status   int
		accepted int
		refused  []refused
	}{
		{name: "every call type", items: []string{item("a"), screen,
			`{"type":"group","messageId":"g-1","userId":"u","groupId":"acme"}`,
			`{"type":"alias","messageId":"a-1","userId":"u","previousId":"anon-1"}`,
			`{"type":"identify","messageId":"i-1","userId":"u"}`,
			`{"type":"page","messageId":"p-1","anonymousId":"anon-1"}`},
			status: 200, accepted: 6},
		{name: "one unknown type among valid items", items: []string{item("a"), `{"type":"merge","messageId":"x","userId":"u"}`, item("b")},
			status: 200, accepted: 2, refused: []refused{{1, "batch[1].type", ingest.CodeUnknownType}}},
		{name: "several invalid items", items: []string{`{"type":"track","messageId":"x","userId":"u"}`, item("a"), `{"messageId":"y","userId":"u"}`, `{"type":"group","messageId":"z","userId":"u"}`},
			status: 200, accepted: 1, refused: []refused{{0, "batch[0].event", ingest.CodeMissingField}, {2, "batch[2].type", ingest.CodeMissingField}, {3, "batch[3].groupId", ingest.CodeMissingField}}},
		{name: "an item that is not an object", items: []string{item("a"), `"hello"`},
			status: 200, accepted: 1, refused: []refused{{1, "batch[1]", ingest.CodeMalformedJSON}}},
		{name: "an oversize item", items: []string{item("a"), `{"type":"track","messageId":"big","userId":"u","event":"e","properties":{"p":"` + strings.Repeat("b", ingest.MaxEventBytes) + `"}}`},
			status: 200, accepted: 1, refused: []refused{{1, "batch[1]", ingest.CodeTooLarge}}},
		{name: "every item invalid", items: []string{`{"type":"track","messageId":"x"}`, `{"type":"alias","messageId":"y","userId":"u"}`},
			status: 400, refused: []refused{{0, "batch[0].userId", ingest.CodeMissingField}, {1, "batch[1].previousId", ingest.CodeMissingField}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCollectorEnv(t, collectorConfig())
			status, raw := rawPost(t, e.srv.URL+"/v1/batch", webKey, "application/json", "", batchBody(tc.items...))
			var got struct {
				Success  bool      `json:"success"`
				Accepted int       `json:"accepted"`
				Refused  []refused `json:"refused"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%d %s", status, raw)
			}
			if status != tc.status || got.Accepted != tc.accepted || got.Success != (len(tc.refused) == 0) || fmt.Sprint(got.Refused) != fmt.Sprint(tc.refused) {
				t.Fatalf("answer %d %s\nwant %d accepted=%d refused=%v", status, raw, tc.status, tc.accepted, tc.refused)
			}
			if n := len(records(t, e.br.Seeds, e.br.Config.MustTopic("web"))); n != tc.accepted {
				t.Errorf("%d records on the web lane, want %d", n, tc.accepted)
			}
			dlq := records(t, e.br.Seeds, e.br.Config.MustTopic("dlq"))
			if len(dlq) != len(tc.refused) {
				t.Fatalf("%d dead letters, want %d", len(dlq), len(tc.refused))
			}
			for i, d := range dlq {
				r := tc.refused[i]
				if recHeader(d, ingest.HeaderField) != r.Field || recHeader(d, ingest.HeaderCode) != r.Code {
					t.Errorf("dead letter %d: field %q code %q, want %q %q", i, recHeader(d, ingest.HeaderField), recHeader(d, ingest.HeaderCode), r.Field, r.Code)
				}
				if want := tc.items[r.Index]; len(want) <= 64<<10 && string(d.Value) != want {
					t.Errorf("dead letter %d keeps %q, want the item %q", i, d.Value, want)
				}
			}
		})
	}
}

func rawPost(t *testing.T, url, key, contentType, origin string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// TestCollectorBrowser: the browser transport (short paths, text/plain,
// writeKey in the body, gzip) and CORS per source.
func TestCollectorBrowser(t *testing.T) {
	cfg := collectorConfig()
	cfg.Sources[0].AllowedOrigins = []string{"https://shop.example.test", "http://localhost:*"}
	cfg.Sources = append(cfg.Sources, ingest.Source{Name: "public", WriteKey: "wk-public-6a1f0c2b", Lane: "web",
		AllowedOrigins: []string{"https://blog.example.test"}, AllowedTypes: []string{"track", "page"}})
	withKey := func(key, body string) []byte {
		return []byte(strings.TrimSuffix(body, "}") + `,"writeKey":"` + key + `"}`)
	}
	for _, tc := range []struct {
		name, method, path, origin, contentType, acrm, acrh string
		key                                                 string // Basic user name
		body                                                []byte
		gzip                                                bool
		status                                              int
		code                                                string
		allowOrigin                                         string // Access-Control-Allow-Origin expected
		lane                                                int    // records expected on the web lane
	}{
		{name: "preflight from an allowed origin", method: "OPTIONS", path: "/v1/t", origin: "https://shop.example.test", acrm: "POST",
			status: 204, allowOrigin: "https://shop.example.test"},
		{name: "preflight from localhost on any port", method: "OPTIONS", path: "/v1/batch", origin: "http://localhost:5173", acrm: "POST",
			status: 204, allowOrigin: "http://localhost:5173"},
		{name: "preflight asking for an SDK's own header", method: "OPTIONS", path: "/v1/t", origin: "https://shop.example.test", acrm: "POST", acrh: "authorization,content-type,x-retry-count",
			status: 204, allowOrigin: "https://shop.example.test"},
		{name: "preflight from another origin", method: "OPTIONS", path: "/v1/t", origin: "https://evil.example.test", acrm: "POST",
			status: 403, code: ingest.CodeOriginNotAllowed},
		{name: "preflight from https localhost (scheme differs)", method: "OPTIONS", path: "/v1/t", origin: "https://localhost:5173", acrm: "POST",
			status: 403, code: ingest.CodeOriginNotAllowed},
		{name: "text/plain on /v1/t with writeKey in the body", path: "/v1/t", origin: "https://shop.example.test", contentType: "text/plain;charset=UTF-8",
			body: withKey(webKey, `{"messageId":"t-1","anonymousId":"a-1","event":"view"}`), status: 200, allowOrigin: "https://shop.example.test", lane: 1},
		{name: "gzip text/plain on /v1/b with writeKey in the body", path: "/v1/b", origin: "http://localhost:3000", contentType: "text/plain",
			body: withKey(webKey, `{"batch":[`+item("a")+`,`+item("b")+`]}`), gzip: true, status: 200, allowOrigin: "http://localhost:3000", lane: 2},
		{name: "every short path", path: "/v1/g", contentType: "text/plain", body: withKey(webKey, `{"messageId":"g-1","userId":"u","groupId":"acme"}`), status: 200, lane: 1},
		{name: "alias on /v1/a", path: "/v1/a", contentType: "text/plain", body: withKey(webKey, `{"messageId":"a-1","userId":"u","previousId":"p"}`), status: 200, lane: 1},
		{name: "screen on /v1/s", path: "/v1/s", key: webKey, body: []byte(`{"messageId":"s-1","userId":"u","name":"Home"}`), status: 200, lane: 1},
		{name: "a write key the body names wrongly", path: "/v1/t", contentType: "text/plain", body: withKey("nope-nope-nope", `{"messageId":"t-1","userId":"u","event":"e"}`),
			status: 401, code: "unauthorized"},
		{name: "an origin the source does not list", path: "/v1/t", origin: "https://blog.example.test", contentType: "text/plain",
			body: withKey(webKey, `{"messageId":"t-1","userId":"u","event":"e"}`), status: 403, code: ingest.CodeOriginNotAllowed, allowOrigin: "https://blog.example.test"},
		{name: "a server source from a browser", path: "/v1/t", origin: "https://shop.example.test", key: serverKey,
			body: []byte(`{"messageId":"t-1","userId":"u","event":"e"}`), status: 403, code: ingest.CodeOriginNotAllowed, allowOrigin: "https://shop.example.test"},
		{name: "a public key kept to client-side calls", path: "/v1/i", origin: "https://blog.example.test", contentType: "text/plain",
			body: withKey("wk-public-6a1f0c2b", `{"messageId":"i-1","userId":"u","traits":{"plan":"gold"}}`), status: 403, code: ingest.CodeTypeNotAllowed, allowOrigin: "https://blog.example.test"},
		{name: "a public key's allowed call", path: "/v1/p", origin: "https://blog.example.test", contentType: "text/plain",
			body: withKey("wk-public-6a1f0c2b", `{"messageId":"p-1","anonymousId":"a","name":"Post"}`), status: 200, allowOrigin: "https://blog.example.test", lane: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCollectorEnv(t, cfg)
			body := tc.body
			if tc.gzip {
				body = gzipped(body)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, e.srv.URL+tc.path, bytes.NewReader(body))
			for k, v := range map[string]string{"Origin": tc.origin, "Content-Type": tc.contentType, "Access-Control-Request-Method": tc.acrm, "Access-Control-Request-Headers": tc.acrh} {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			if tc.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			if tc.key != "" {
				req.SetBasicAuth(tc.key, "")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var a struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(raw, &a)
			if resp.StatusCode != tc.status || a.Code != tc.code {
				t.Fatalf("answer %d %s, want %d %q", resp.StatusCode, raw, tc.status, tc.code)
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.allowOrigin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.allowOrigin)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("credentials allowed: %v", h)
			}
			if method == http.MethodOptions && tc.status == 204 {
				allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
				if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(allowed, "content-type") ||
					!strings.Contains(allowed, "authorization") || !strings.Contains(allowed, "x-retry-count") || h.Get("Access-Control-Max-Age") == "" {
					t.Errorf("preflight headers %v", h)
				}
			}
			if n := len(records(t, e.br.Seeds, e.br.Config.MustTopic("web"))); n != tc.lane {
				t.Errorf("%d records on the web lane, want %d", n, tc.lane)
			}
		})
	}
}

// TestMissingMessageIDRetried: a message sent without messageId, sent
// twice with the same bytes (a client's retry), is one row; the same
// bytes from another source are another message.
func TestMissingMessageIDRetried(t *testing.T) {
	conn := testenv.ClickHouse(t)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	body := `{"userId":"u-retry","event":"checkout","properties":{"total":12},"timestamp":"2025-12-14T18:58:00Z"}`
	for i, key := range []string{"web-demo-key", "web-demo-key", "server-demo-key"} {
		if status, raw := rawPost(t, p.http.URL+"/v1/track", key, "application/json", "", []byte(body)); status != 200 {
			t.Fatalf("send %d: %d %s", i, status, raw)
		}
	}
	testenv.Eventually(t, 30*time.Second, "three deliveries loaded", func() (bool, string) {
		// Deliveries, counted where a merge cannot collapse the two
		// copies of one message.
		n := queryUint(t, conn, "SELECT count() FROM event_positions WHERE customer_id = 'u-retry'")
		return n == 3, fmt.Sprintf("%d deliveries", n)
	})
	if n := queryUint(t, conn, "SELECT count() FROM events_unique WHERE customer_id = 'u-retry' AND source = 'web'"); n != 1 {
		t.Errorf("web source: %d messages, want 1", n)
	}
	if n := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events WHERE customer_id = 'u-retry'"); n != 2 {
		t.Errorf("%d distinct message ids, want 2 (one per source)", n)
	}
	want := ingest.DerivedMessageID("web-demo-key", []byte(body))
	if n := queryUint(t, conn, "SELECT count() FROM events_unique WHERE message_id = ?", want); n != 1 {
		t.Errorf("no row with the derived message id %s", want)
	}
}

// TestCollectorBrowserRateLimit: a source's rate limit holds for browsers
// too, and the 429 is readable by the page's script: the origin is
// allowed on the answer and Retry-After is exposed, so analytics-next
// waits as long as it says.
func TestCollectorBrowserRateLimit(t *testing.T) {
	cfg := collectorConfig()
	cfg.Sources[0].AllowedOrigins = []string{"http://localhost:*"}
	// A burst of 1000 events refilled at one every 1000 s.
	cfg.Sources[0].RateLimit = 0.001
	e := newCollectorEnv(t, cfg)
	items := make([]string, 1000)
	for i := range items {
		items[i] = item(fmt.Sprint(i))
	}
	post := func(path string, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "http://localhost:3000")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	withKey := func(body string) []byte {
		return []byte(strings.TrimSuffix(body, "}") + `,"writeKey":"` + webKey + `"}`)
	}
	if resp := post("/v1/b", withKey(string(batchBody(items...)))); resp.StatusCode != 200 {
		t.Fatalf("the burst: %d", resp.StatusCode)
	}
	resp := post("/v1/t", withKey(`{"messageId":"over","anonymousId":"a","event":"view"}`))
	h := resp.Header
	if resp.StatusCode != 429 || h.Get("Retry-After") != "1000" || h.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("over the limit from a browser: %d %v", resp.StatusCode, h)
	}
}

// TestBatchContext: a batch's top-level context applies to each of its
// calls, as Segment's API does (analytics-java and analytics-go put their
// library there); a call's own context fields win.
func TestBatchContext(t *testing.T) {
	e := newCollectorEnv(t, collectorConfig())
	body := `{"context":{"library":{"name":"analytics-java","version":"3.5.4"},"locale":"en-US"},"batch":[` +
		`{"type":"track","messageId":"c-1","userId":"u","event":"e"},` +
		`{"type":"track","messageId":"c-2","userId":"u","event":"e","context":{"locale":"de-DE","page":{"path":"/p"}}}]}`
	if status, raw := rawPost(t, e.srv.URL+"/v1/batch", webKey, "application/json", "", []byte(body)); status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	got := map[string]ingest.ContextColumns{}
	for _, r := range records(t, e.br.Seeds, e.br.Config.MustTopic("web")) {
		ev, err := ingest.DecodeRecord(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		got[ev.MessageID] = ev.ContextColumns()
	}
	c1, c2 := got["c-1"], got["c-2"]
	if c1.LibraryName != "analytics-java" || c1.LibraryVersion != "3.5.4" || c1.Locale != "en-US" {
		t.Errorf("a call without context: %+v", c1)
	}
	if c2.LibraryName != "analytics-java" || c2.Locale != "de-DE" || c2.PagePath != "/p" {
		t.Errorf("a call with its own context: %+v", c2)
	}
	if status, raw := rawPost(t, e.srv.URL+"/v1/batch", webKey, "application/json", "", []byte(`{"context":"x","batch":[{"type":"track","messageId":"c-3","userId":"u","event":"e"}]}`)); status != 400 || !strings.Contains(string(raw), `"field":"context"`) {
		t.Errorf("a batch context that is not an object: %d %s", status, raw)
	}
}
