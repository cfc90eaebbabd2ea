package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
)

// Source is a client of the collector: a write key and the lane its events go to.
type Source struct {
	// Name identifies the source in events and metrics (never the key).
	Name string `koanf:"name"`
	// WriteKey authenticates requests (HTTP Basic user name, as Segment SDKs send it).
	WriteKey string `koanf:"write_key"`
	// Lane is "web" or "server".
	Lane string `koanf:"lane"`
	// RateLimit is events per second accepted from this source (0: no limit).
	RateLimit float64 `koanf:"rate_limit"`
	// AllowedOrigins are the web origins browsers may send this source's
	// events from (CORS), e.g. "https://shop.example.com",
	// "http://localhost:*" (any port) or "*". Empty: none, so a request
	// carrying an Origin header is refused. A browser's write key is
	// public: list only the sites that embed it.
	AllowedOrigins []string `koanf:"allowed_origins"`
	// AllowedTypes are the call types the source may send (track,
	// identify, page, screen, group, alias). Empty: all. A public browser
	// key can be kept to the client-side calls, e.g. [track, page].
	AllowedTypes []string `koanf:"allowed_types"`
}

// CollectorConfig configures the HTTP collector.
type CollectorConfig struct {
	// Addr to listen on (default 127.0.0.1:8088).
	Addr string `koanf:"addr"`
	// Sources are the accepted write keys (default: a "web" and a "server"
	// demo source, keys "web-demo-key" and "server-demo-key").
	Sources []Source `koanf:"sources"`
	// MaxInFlight bounds requests being processed at once; more get 503 with
	// Retry-After so memory stays bounded under overload (default 256).
	MaxInFlight int `koanf:"max_in_flight"`
	// ProduceTimeout bounds the wait for Kafka's acknowledgement before the
	// request fails with 503 (default 10s).
	ProduceTimeout time.Duration `koanf:"produce_timeout"`
	// MetricsAddr serves /metrics and /healthz (default 127.0.0.1:9101; "" turns it off).
	MetricsAddr string `koanf:"metrics_addr"`
	// TLSCert and TLSKey serve HTTPS, for the tracking API and the metrics
	// endpoint alike, when both are set.
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
}

// DefaultCollectorConfig returns the local defaults. The demo web source
// accepts pages served from this machine on any port, so a local page
// works with `tideline dev` as it is.
func DefaultCollectorConfig() CollectorConfig {
	return CollectorConfig{
		Addr: "127.0.0.1:8088",
		Sources: []Source{
			{Name: "web", WriteKey: "web-demo-key", Lane: "web", AllowedOrigins: []string{"http://localhost:*", "http://127.0.0.1:*"}},
			{Name: "server", WriteKey: "server-demo-key", Lane: "server"},
		},
		MaxInFlight:    256,
		ProduceTimeout: 10 * time.Second,
		MetricsAddr:    "127.0.0.1:9101",
	}
}

// Validate says what to fix in c.
func (c CollectorConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("collector.addr is empty: give host:port to listen on"))
	}
	if len(c.Sources) == 0 {
		errs = append(errs, errors.New("collector.sources is empty: configure at least one write key"))
	}
	names, keys := map[string]bool{}, map[string]bool{}
	for i, s := range c.Sources {
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("collector.sources[%d].name is empty", i))
		case names[s.Name]:
			errs = append(errs, fmt.Errorf("collector.sources[%d].name %q is used twice", i, s.Name))
		}
		names[s.Name] = true
		switch {
		case len(s.WriteKey) < 8:
			errs = append(errs, fmt.Errorf("collector.sources[%d] (%s): write_key must be at least 8 characters", i, s.Name))
		case keys[s.WriteKey]:
			errs = append(errs, fmt.Errorf("collector.sources[%d] (%s): write_key is shared with another source", i, s.Name))
		}
		keys[s.WriteKey] = true
		if s.Lane != "web" && s.Lane != "server" {
			errs = append(errs, fmt.Errorf("collector.sources[%d] (%s): lane %q must be web or server", i, s.Name, s.Lane))
		}
		if s.RateLimit < 0 {
			errs = append(errs, fmt.Errorf("collector.sources[%d] (%s): rate_limit must not be negative", i, s.Name))
		}
		for _, o := range s.AllowedOrigins {
			if _, err := parseOriginPattern(o); err != nil {
				errs = append(errs, fmt.Errorf("collector.sources[%d] (%s): allowed_origins: %w", i, s.Name, err))
			}
		}
		for _, t := range s.AllowedTypes {
			if !knownType(t) {
				errs = append(errs, fmt.Errorf("collector.sources[%d] (%s): allowed_types: %q is not a call type (track, identify, page, screen, group, alias)", i, s.Name, t))
			}
		}
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("collector.max_in_flight must be at least 1, got %d", c.MaxInFlight))
	}
	if c.ProduceTimeout <= 0 {
		errs = append(errs, errors.New("collector.produce_timeout must be positive"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("collector.tls_cert and collector.tls_key go together: set both or neither"))
	}
	return errors.Join(errs...)
}

type source struct {
	Source
	topic   string
	origins []originPattern
	types   map[string]bool // nil: every type
	limiter *rate.Limiter
	// keyHash is the SHA-256 of WriteKey, what requests are compared with.
	keyHash [sha256.Size]byte
}

// Collector is the HTTP handler of the tracking API.
type Collector struct {
	cfg      CollectorConfig
	client   *kgo.Client
	log      *slog.Logger
	sources  []*source
	inFlight chan struct{}
	metrics  *collectorMetrics
	now      func() time.Time
	dlqTopic string
}

// NewCollector builds a collector producing through client, which must be
// configured with acks=all (the franz-go default) and idempotent writes.
func NewCollector(cfg CollectorConfig, env component.Env, client *kgo.Client) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bc := env.Kafka
	c := &Collector{
		cfg:      cfg,
		client:   client,
		log:      env.Logger(),
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		metrics:  newCollectorMetrics(env.Registry),
		now:      time.Now,
		dlqTopic: bc.MustTopic("dlq"),
	}
	for _, s := range cfg.Sources {
		topic, err := bc.Topic(s.Lane)
		if err != nil {
			return nil, err
		}
		src := &source{Source: s, topic: topic, keyHash: sha256.Sum256([]byte(s.WriteKey))}
		for _, o := range s.AllowedOrigins {
			p, _ := parseOriginPattern(o) // Validate checked it
			src.origins = append(src.origins, p)
		}
		if len(s.AllowedTypes) > 0 {
			src.types = map[string]bool{}
			for _, t := range s.AllowedTypes {
				src.types[t] = true
			}
		}
		if s.RateLimit > 0 {
			src.limiter = rate.NewLimiter(rate.Limit(s.RateLimit), int(max(s.RateLimit, 1000)))
		}
		c.sources = append(c.sources, src)
	}
	return c, nil
}

// Handler routes the tracking API: the server SDKs' paths and the browser
// SDKs' short ones (/v1/t, /v1/p, ... and /v1/b for batches), each also
// with a trailing slash, as analytics-java posts to /v1/import/.
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(p string, h http.Handler) {
		mux.Handle(p, h)
		mux.Handle(p+"/{$}", h)
	}
	for _, typ := range []string{TypeTrack, TypeIdentify, TypePage, TypeScreen, TypeGroup, TypeAlias} {
		h := c.endpoint(typ, typ, MaxEventBytes)
		route("/v1/"+typ, h)
		route("/v1/"+typ[:1], h)
	}
	for _, p := range []string{"/v1/batch", "/v1/import", "/v1/b"} {
		route(p, c.endpoint("batch", "", MaxBatchBytes))
	}
	return mux
}

type response struct {
	Success    bool   `json:"success"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates,omitempty"`
	Error      string `json:"error,omitempty"`
	Field      string `json:"field,omitempty"`
	Code       string `json:"code,omitempty"`
	// Refused lists the batch items that were not accepted; each was
	// dead-lettered with its reason.
	Refused []RefusedItem `json:"refused,omitempty"`
}

// RefusedItem is a batch item the collector did not accept.
type RefusedItem struct {
	// Index is the item's position in the batch array.
	Index   int    `json:"index"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (c *Collector) endpoint(name, typ string, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := c.now()
		code := c.serve(w, r, typ, limit)
		c.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		c.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request, typ string, limit int64) int {
	origin := r.Header.Get("Origin")
	if r.Method == http.MethodOptions {
		return c.preflight(w, r, origin)
	}
	// A browser reads no answer without this header: set it whenever some
	// source allows the origin, so a refusal's reason reaches the page too.
	// Whether the request's own source allows it is checked below.
	if origin != "" && c.anyAllows(origin) {
		allowOrigin(w.Header(), origin)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		return reply(w, http.StatusMethodNotAllowed, response{Error: "use POST", Code: "method_not_allowed"})
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/plain") {
			return reply(w, http.StatusUnsupportedMediaType, response{Error: fmt.Sprintf("content type %q: send application/json or text/plain", ct), Code: "unsupported_media_type"})
		}
	}
	select {
	case c.inFlight <- struct{}{}:
		defer func() { <-c.inFlight }()
	default:
		name := ""
		if key, _, ok := r.BasicAuth(); ok {
			if s := c.lookup(key); s != nil {
				name = s.Name
			}
		}
		c.metrics.refused.WithLabelValues(name, "overloaded").Inc()
		w.Header().Set("Retry-After", "1")
		return reply(w, http.StatusServiceUnavailable, response{Error: "collector is at capacity; retry after the Retry-After delay", Code: "overloaded"})
	}
	body, bodyErr := readBody(r, limit)
	// The browser SDKs send the write key in the body: the body is read
	// (bounded by limit and max_in_flight) before the key is known.
	src := c.authenticate(r, body, bodyErr)
	if src == nil {
		if origin == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="tideline"`)
		}
		return reply(w, http.StatusUnauthorized, response{Error: "unknown or missing write key: send it as the HTTP Basic user name or as writeKey in the body", Code: "unauthorized"})
	}
	if bodyErr != nil {
		var fe *FieldError
		if errors.As(bodyErr, &fe) {
			status := http.StatusBadRequest
			if fe.Code == CodeTooLarge {
				status = http.StatusRequestEntityTooLarge
			}
			c.reject(r.Context(), src, body, fe)
			return reply(w, status, response{Error: fe.Message, Field: fe.Field, Code: fe.Code})
		}
		return reply(w, http.StatusBadRequest, response{Error: bodyErr.Error(), Code: "bad_request"})
	}
	if origin != "" && !src.allowsOrigin(origin) {
		fe := fieldErr("", CodeOriginNotAllowed, "origin %s is not in the allowed_origins of source %s", truncate(origin, 256), src.Name)
		c.metrics.refused.WithLabelValues(src.Name, "origin_not_allowed").Inc()
		c.reject(r.Context(), src, body, fe)
		return reply(w, http.StatusForbidden, response{Error: fe.Message, Code: fe.Code})
	}
	received := c.now()
	msg := Message{Type: typ, ReceivedAt: received, Source: src.Name, WriteKey: src.WriteKey, IP: clientIP(r)}
	events, dups, refused, err := c.parse(body, msg, src)
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			fe = &FieldError{Code: CodeMalformedJSON, Message: err.Error()}
		}
		status := http.StatusBadRequest
		switch fe.Code {
		case CodeTooLarge:
			status = http.StatusRequestEntityTooLarge
		case CodeTypeNotAllowed:
			status = http.StatusForbidden
		}
		c.reject(r.Context(), src, body, fe)
		return reply(w, status, response{Error: fe.Message, Field: fe.Field, Code: fe.Code})
	}
	if len(refused) > 0 {
		c.rejectItems(r.Context(), src, refused)
	}
	answer := response{Refused: make([]RefusedItem, len(refused))}
	for i, it := range refused {
		answer.Refused[i] = RefusedItem{Index: it.index, Field: it.err.Field, Code: it.err.Code, Message: it.err.Message}
	}
	if len(events) == 0 {
		// Every item was refused: nothing to retry, so not a 5xx.
		first := refused[0].err
		answer.Error, answer.Field, answer.Code = fmt.Sprintf("all %d items were refused; the first: %s", len(refused), first.Message), first.Field, first.Code
		return reply(w, http.StatusBadRequest, answer)
	}
	if src.limiter != nil {
		// A batch larger than the limiter's burst could never be
		// admitted: answering 429 would have the client retry it for ever.
		if burst := src.limiter.Burst(); len(events) > burst {
			c.metrics.refused.WithLabelValues(src.Name, "rate_limited").Inc()
			return reply(w, http.StatusRequestEntityTooLarge, response{Error: fmt.Sprintf("source %s accepts at most %d events per request (the burst of its rate limit); split the batch", src.Name, burst), Field: "batch", Code: CodeTooLarge})
		}
		// Retry-After says when the tokens will be there, so a client
		// honouring it does not come back to another 429.
		if res := src.limiter.ReserveN(received, len(events)); res.DelayFrom(received) > 0 {
			wait := res.DelayFrom(received)
			res.CancelAt(received)
			c.metrics.refused.WithLabelValues(src.Name, "rate_limited").Inc()
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
			return reply(w, http.StatusTooManyRequests, response{Error: fmt.Sprintf("source %s is over its rate limit of %g events/s", src.Name, src.RateLimit), Code: "rate_limited"})
		}
	}
	if err := c.produce(r.Context(), src, events); err != nil {
		c.log.Warn("produce failed", "source", src.Name, "events", len(events), "err", err)
		c.metrics.refused.WithLabelValues(src.Name, "broker_unavailable").Inc()
		w.Header().Set("Retry-After", "5")
		return reply(w, http.StatusServiceUnavailable, response{Error: "the broker did not acknowledge the events in time; retry after the Retry-After delay with the same messageIds (duplicates are dropped)", Code: "unavailable"})
	}
	c.metrics.events.WithLabelValues(src.Lane, "accepted").Add(float64(len(events)))
	answer.Success, answer.Accepted, answer.Duplicates = len(refused) == 0, len(events), dups
	if len(refused) > 0 {
		answer.Error = fmt.Sprintf("%d of %d items were refused and dead-lettered; see refused", len(refused), len(refused)+len(events)+dups)
	}
	return reply(w, http.StatusOK, answer)
}

// preflight answers a CORS preflight: POST from an origin some source
// allows, with no credentials (a write key is not a cookie).
func (c *Collector) preflight(w http.ResponseWriter, r *http.Request, origin string) int {
	h := w.Header()
	h.Set("Allow", "POST, OPTIONS")
	if origin == "" {
		return replyEmpty(w, http.StatusNoContent)
	}
	if !c.anyAllows(origin) {
		c.metrics.refused.WithLabelValues("", "origin_not_allowed").Inc()
		return reply(w, http.StatusForbidden, response{Error: fmt.Sprintf("origin %s is not allowed by any source", truncate(origin, 256)), Code: CodeOriginNotAllowed})
	}
	allowOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	// The SDKs add headers of their own (analytics-next sends X-Retry-Count
	// on a retry); none of them is a credential the browser would attach
	// by itself, so whatever the preflight asks for is allowed.
	allowed := "Content-Type, Content-Encoding, Authorization, X-Retry-Count"
	if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" {
		allowed = asked
	}
	h.Set("Access-Control-Allow-Headers", allowed)
	h.Set("Access-Control-Max-Age", "86400")
	return replyEmpty(w, http.StatusNoContent)
}

func allowOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	// A page's script reads only the safelisted response headers unless
	// told otherwise; analytics-next waits as long as Retry-After says
	// after a 429 or 503 only when it can read it, and else retries on its
	// own backoff, back into the rate limit.
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	h.Add("Vary", "Origin")
}

func (c *Collector) anyAllows(origin string) bool {
	for _, s := range c.sources {
		if s.allowsOrigin(origin) {
			return true
		}
	}
	return false
}

func (s *source) allowsOrigin(origin string) bool {
	for _, p := range s.origins {
		if p.matches(origin) {
			return true
		}
	}
	return false
}

// clientIP is the address the request came from (without port). Proxy
// headers are not trusted: anyone can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate finds the source of the request's write key: the HTTP Basic
// user name (server SDKs) or the body's writeKey (browser SDKs). Every key
// is compared in constant time so timing does not reveal how much of a key
// matched. The comparison is of SHA-256 digests: ConstantTimeCompare
// returns at once for inputs of different lengths, which would reveal each
// key's length.
func (c *Collector) authenticate(r *http.Request, body []byte, bodyErr error) *source {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		if bodyErr != nil {
			return nil
		}
		var k struct {
			WriteKey string `json:"writeKey"`
		}
		if json.Unmarshal(body, &k) != nil || k.WriteKey == "" {
			return nil
		}
		key = k.WriteKey
	}
	return c.lookup(key)
}

// lookup finds the source of key.
func (c *Collector) lookup(key string) *source {
	if key == "" {
		return nil
	}
	h := sha256.Sum256([]byte(key))
	var found *source
	for _, s := range c.sources {
		if subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1 {
			found = s
		}
	}
	return found
}

// readBody reads at most limit bytes of the body, decompressing gzip. On a
// refusal the bytes returned are what the dead-letter topic keeps: the raw
// bytes of a body that does not decompress, so what the client sent is kept.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return raw, fmt.Errorf("read body: %w", err)
	}
	tooLarge := fieldErr("", CodeTooLarge, "body is larger than %d bytes (%d KB)", limit, limit>>10)
	if int64(len(raw)) > limit {
		return raw, tooLarge
	}
	if !strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		return raw, nil
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return raw, fieldErr("", CodeMalformedJSON, "Content-Encoding is gzip but the body is not: %s", err)
	}
	defer gz.Close()
	body, err := io.ReadAll(io.LimitReader(gz, limit+1))
	if int64(len(body)) > limit {
		return body, tooLarge
	}
	if err != nil {
		return raw, fieldErr("", CodeMalformedJSON, "gzip body is corrupt: %s", err)
	}
	return body, nil
}

type batchBody struct {
	Batch   []json.RawMessage `json:"batch"`
	SentAt  *string           `json:"sentAt"`
	Context json.RawMessage   `json:"context"`
}

// refusedItem is a batch item that failed validation.
type refusedItem struct {
	index int
	raw   []byte
	err   *FieldError
}

// parse returns the accepted events of a request, how many in-batch
// duplicates (same messageId) were dropped, and the batch items refused.
// An error refuses the whole request: a single message that is invalid,
// or a batch whose envelope is.
func (c *Collector) parse(body []byte, m Message, src *source) ([]*Event, int, []refusedItem, error) {
	if m.Type != "" {
		ev, err := Parse(body, m)
		if err != nil {
			return nil, 0, nil, err
		}
		if err := src.allowsType(ev.Type); err != nil {
			return nil, 0, nil, err
		}
		return []*Event{ev}, 0, nil, nil
	}
	// The envelope {"batch":[...]} adds two levels; each item is held to
	// maxDepth by Parse, as on the single-event endpoints.
	if err := checkDepthOf(body, maxDepth+2); err != nil {
		return nil, 0, nil, err
	}
	var b batchBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, 0, nil, jsonError(err)
	}
	if len(b.Batch) == 0 {
		return nil, 0, nil, fieldErr("batch", CodeMissingField, "batch must be a non-empty array of messages")
	}
	if b.SentAt != nil {
		var err error
		if m.BatchSentAt, err = parseTime("sentAt", *b.SentAt); err != nil {
			return nil, 0, nil, err
		}
	}
	ctx, err := object("context", b.Context)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(ctx) > 0 {
		m.BatchContext = ctx
	}
	events := make([]*Event, 0, len(b.Batch))
	var refused []refusedItem
	seen := make(map[string]bool, len(b.Batch))
	dups := 0
	for i, raw := range b.Batch {
		ev, err := Parse(raw, m)
		if err == nil {
			err = src.allowsType(ev.Type)
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(withPrefix(err, fmt.Sprintf("batch[%d]", i)), &fe) {
				fe = &FieldError{Field: fmt.Sprintf("batch[%d]", i), Code: CodeInvalidField, Message: err.Error()}
			}
			refused = append(refused, refusedItem{index: i, raw: raw, err: fe})
			continue
		}
		if seen[ev.MessageID] {
			dups++
			continue
		}
		seen[ev.MessageID] = true
		events = append(events, ev)
	}
	return events, dups, refused, nil
}

func (s *source) allowsType(typ string) error {
	if s.types == nil || s.types[typ] {
		return nil
	}
	return fieldErr("type", CodeTypeNotAllowed, "source %s may not send %s calls (allowed_types)", s.Name, typ)
}

// produce writes events and waits for the broker's acknowledgement of all of them.
func (c *Collector) produce(ctx context.Context, src *source, events []*Event) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ProduceTimeout)
	defer cancel()
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		v, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.MessageID, err)
		}
		recs[i] = &kgo.Record{Topic: src.topic, Key: []byte(ev.CustomerID()), Value: v, Timestamp: ev.ReceivedAt}
	}
	// ProduceSync cannot honour ctx for records an idempotent producer has
	// already sent: it waits for the broker however long it is away, so a
	// killed broker held requests for its whole restart. Waiting on the
	// promises bounds the answer by ProduceTimeout instead; records still in
	// flight may land later, which the client's retry with the same
	// messageIds makes harmless. The channel holds every promise, so late
	// ones never block.
	results := make(chan error, len(recs))
	for _, r := range recs {
		c.client.Produce(ctx, r, func(_ *kgo.Record, err error) { results <- err })
	}
	for range recs {
		select {
		case err := <-results:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("broker did not acknowledge %d events within %s: %w", len(recs), c.cfg.ProduceTimeout, ctx.Err())
		}
	}
	return nil
}

// reject keeps a refused request in the dead-letter topic with its reason, so
// nothing a client sent is lost even when the client ignores the 4xx.
func (c *Collector) reject(ctx context.Context, src *source, body []byte, fe *FieldError) {
	c.metrics.events.WithLabelValues(src.Lane, "rejected").Inc()
	rec := deadLetterRecord(c.dlqTopic, body, "collector:"+src.Name, fe)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ProduceTimeout)
	defer cancel()
	if err := c.client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		c.log.Warn("dead-letter produce failed", "source", src.Name, "reason", fe.Code, "err", err)
	}
}

// rejectItems keeps the refused items of a batch in the dead-letter topic,
// one record each with its reason and its index in the field.
func (c *Collector) rejectItems(ctx context.Context, src *source, items []refusedItem) {
	c.metrics.events.WithLabelValues(src.Lane, "rejected").Add(float64(len(items)))
	recs := make([]*kgo.Record, len(items))
	for i, it := range items {
		recs[i] = deadLetterRecord(c.dlqTopic, it.raw, "collector:"+src.Name, it.err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ProduceTimeout)
	defer cancel()
	if err := c.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.log.Warn("dead-letter produce failed", "source", src.Name, "items", len(items), "err", err)
	}
}

func replyEmpty(w http.ResponseWriter, status int) int {
	w.WriteHeader(status)
	return status
}

func reply(w http.ResponseWriter, status int, body response) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
	return status
}

type collectorMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	events   *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newCollectorMetrics(reg prometheus.Registerer) *collectorMetrics {
	m := &collectorMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tideline_collector_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tideline_collector_request_duration_seconds", Help: "Time to answer a request, including the broker acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"endpoint"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tideline_collector_events_total", Help: "Events accepted or rejected, by lane.",
		}, []string{"lane", "outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tideline_collector_refused_requests_total", Help: "Requests refused to protect the service or because the broker was unavailable.",
		}, []string{"source", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.events, m.refused)
	}
	return m
}
