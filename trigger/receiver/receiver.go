package receiver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tolerance is how far a webhook-timestamp may be from the receiver's clock,
// the window the Standard Webhooks reference libraries use.
const tolerance = 5 * time.Minute

// Delivery is one request that carried a valid signature.
type Delivery struct {
	ID        string
	Path      string
	Timestamp int64
	At        time.Time
	// Status is what the receiver answered; 0 when the sender gave up
	// waiting (a chaos timeout) before the answer.
	Status int
	Body   []byte
}

// Chaos makes the receiver misbehave for a share of requests, to test a
// sender's retries. Shares are probabilities between 0 and 1, applied in
// the order Gone, Timeout, TooMany, Fail500.
type Chaos struct {
	// Fail500 answers 500.
	Fail500 float64
	// TooMany answers 429 with a Retry-After of RetryAfter.
	TooMany float64
	// RetryAfter is sent with 429 (default 1s; whole seconds).
	RetryAfter time.Duration
	// Timeout holds the request for TimeoutDelay before answering 200, so
	// a sender with a shorter timeout gives up.
	Timeout float64
	// TimeoutDelay (default 30s).
	TimeoutDelay time.Duration
	// Gone answers 410.
	Gone float64
	// GoneAfter answers 410 to every request once this many were accepted
	// on the path (0: off).
	GoneAfter int
}

// Counts summarises what the receiver saw.
type Counts struct {
	// Requests is every request received.
	Requests int
	// Invalid counts requests refused for a bad or missing signature.
	Invalid int
	// Accepted counts requests answered 2xx.
	Accepted int
	// UniqueAccepted counts distinct webhook ids answered 2xx.
	UniqueAccepted int
	// Duplicates counts 2xx answers to an id already accepted before.
	Duplicates int
	// Refused counts valid requests answered with an error on purpose (chaos).
	Refused int
}

// Receiver is a webhook endpoint for tests and `tideline dev`. It verifies
// Standard Webhooks signatures with its own code (not the sender's), so a
// test using it checks the sender against the specification, and it
// records every valid delivery by webhook id.
type Receiver struct {
	secrets [][]byte
	now     func() time.Time

	mu         sync.Mutex
	rng        *rand.Rand
	chaos      map[string]Chaos
	byID       map[string][]Delivery
	acceptedOn map[string]int
	counts     Counts
	invalid    []string
}

// NewReceiver returns a receiver accepting signatures made with any of
// secrets ("whsec_" followed by base64).
func NewReceiver(secrets ...string) (*Receiver, error) {
	if len(secrets) == 0 {
		return nil, errors.New("give the receiver at least one whsec_ secret")
	}
	r := &Receiver{now: time.Now, rng: rand.New(rand.NewPCG(1, 2)), chaos: map[string]Chaos{}, byID: map[string][]Delivery{}, acceptedOn: map[string]int{}}
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			return nil, fmt.Errorf("secret is not whsec_<base64>: %w", err)
		}
		r.secrets = append(r.secrets, key)
	}
	return r, nil
}

// SetChaos sets the misbehaviour for requests to path ("" for every path
// without its own).
func (r *Receiver) SetChaos(path string, c Chaos) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.TimeoutDelay == 0 {
		c.TimeoutDelay = 30 * time.Second
	}
	r.chaos[path] = c
}

// Seed makes the chaos draws reproducible.
func (r *Receiver) Seed(seed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ServeHTTP verifies and records one delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.counts.Requests++
	r.mu.Unlock()
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	id, ts, err := r.verify(req.Header, body)
	if err != nil {
		r.mu.Lock()
		r.counts.Invalid++
		r.invalid = append(r.invalid, err.Error())
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d := Delivery{ID: id, Path: req.URL.Path, Timestamp: ts, At: r.now(), Body: body}
	status, retryAfter, delay := r.decide(req.URL.Path)
	if delay > 0 {
		select {
		case <-req.Context().Done():
			// The sender gave up: no answer reaches it.
			r.record(d)
			return
		case <-time.After(delay):
		}
	}
	d.Status = status
	r.record(d)
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	w.WriteHeader(status)
}

func (r *Receiver) decide(path string) (status int, retryAfter, delay time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.chaos[path]
	if !ok {
		c = r.chaos[""]
	}
	if c.GoneAfter > 0 && r.acceptedOn[path] >= c.GoneAfter {
		return http.StatusGone, 0, 0
	}
	x := r.rng.Float64()
	switch {
	case x < c.Gone:
		return http.StatusGone, 0, 0
	case x < c.Gone+c.Timeout:
		return http.StatusOK, 0, c.TimeoutDelay
	case x < c.Gone+c.Timeout+c.TooMany:
		return http.StatusTooManyRequests, c.RetryAfter, 0
	case x < c.Gone+c.Timeout+c.TooMany+c.Fail500:
		return http.StatusInternalServerError, 0, 0
	}
	return http.StatusOK, 0, 0
}

func (r *Receiver) record(d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	accepted := d.Status >= 200 && d.Status < 300
	if accepted {
		if r.acceptedCount(d.ID) > 0 {
			r.counts.Duplicates++
		} else {
			r.counts.UniqueAccepted++
		}
		r.counts.Accepted++
		r.acceptedOn[d.Path]++
	} else {
		r.counts.Refused++
	}
	r.byID[d.ID] = append(r.byID[d.ID], d)
}

func (r *Receiver) acceptedCount(id string) int {
	n := 0
	for _, d := range r.byID[id] {
		if d.Status >= 200 && d.Status < 300 {
			n++
		}
	}
	return n
}

// verify checks the three Standard Webhooks headers against the body and
// returns the webhook id and timestamp.
func (r *Receiver) verify(h http.Header, body []byte) (string, int64, error) {
	id, tsText, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" {
		return "", 0, errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("webhook-timestamp %q is not unix seconds", tsText)
	}
	if d := r.now().Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return "", 0, fmt.Errorf("webhook-timestamp %d is %s away from now", ts, d)
	}
	signed := append([]byte(id+"."+tsText+"."), body...)
	ok := false
	for _, key := range r.secrets {
		m := hmac.New(sha256.New, key)
		m.Write(signed)
		want := m.Sum(nil)
		for _, s := range strings.Fields(sigs) {
			version, b64, found := strings.Cut(s, ",")
			if !found || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				ok = true
			}
		}
	}
	if !ok {
		return "", 0, errors.New("no webhook-signature matches the body")
	}
	var envelope struct {
		Data struct {
			WebhookID string `json:"webhook_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return "", 0, fmt.Errorf("body is not JSON: %w", err)
	}
	if envelope.Data.WebhookID != "" && envelope.Data.WebhookID != id {
		return "", 0, fmt.Errorf("body's webhook_id %q differs from the header's %q", envelope.Data.WebhookID, id)
	}
	return id, ts, nil
}

// Counts returns the counters.
func (r *Receiver) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

// InvalidReasons returns why requests were refused, in order.
func (r *Receiver) InvalidReasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.invalid...)
}

// Deliveries returns every validly signed request by webhook id, in arrival order.
func (r *Receiver) Deliveries() map[string][]Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]Delivery, len(r.byID))
	for id, ds := range r.byID {
		out[id] = append([]Delivery(nil), ds...)
	}
	return out
}

// Accepted returns the ids answered 2xx at least once.
func (r *Receiver) Accepted() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for id := range r.byID {
		if r.acceptedCount(id) > 0 {
			out[id] = true
		}
	}
	return out
}

// Serve listens on addr and serves until ctx ends. It returns the base URL
// once listening.
func (r *Receiver) Serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("webhook receiver on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	// The server stops when ctx ends.
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}
