// Package workload generates a realistic, reproducible customer-engagement
// event mix (identifies and tracks on the web and server lanes, anonymous
// visitors who later log in, a share of malformed events) and drives it
// through the collector's HTTP API. `tideline dev`, `tideline demo` and the
// benchmarks use it; the same seed always yields the same events.
package workload

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Config shapes the workload.
type Config struct {
	// Customers is the number of distinct customers (default 5000).
	Customers int
	// Seed makes the sequence reproducible (default 1).
	Seed uint64
	// MalformedRate is the share of events sent broken on purpose (default 0.005).
	MalformedRate float64
	// Start is the event time of the first event; each event advances it by
	// Step (defaults: now, 0 — event time follows the wall clock).
	Start time.Time
	Step  time.Duration
}

// DefaultConfig is the demo's mix.
func DefaultConfig() Config {
	return Config{Customers: 5000, Seed: 1, MalformedRate: 0.005}
}

// Message is one generated event, ready to send.
type Message struct {
	// Lane is "web" or "server": which source sends it.
	Lane string
	// Body is the Segment message (it has "type").
	Body map[string]any
	// Malformed events are expected to be rejected.
	Malformed bool
}

// Generator yields messages. It is not safe for concurrent use.
type Generator struct {
	cfg  Config
	rng  *rand.Rand
	seq  uint64
	now  time.Time
	anon map[int]bool // customers still browsing anonymously
}

// New returns a generator for cfg.
func New(cfg Config) *Generator {
	if cfg.Customers <= 0 {
		cfg.Customers = DefaultConfig().Customers
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), now: cfg.Start, anon: map[int]bool{}}
	// A third of customers start anonymous and identify later.
	for i := 0; i < cfg.Customers; i += 3 {
		g.anon[i] = true
	}
	return g
}

var (
	plans     = []string{"free", "free", "free", "silver", "silver", "gold"}
	countries = []string{"US", "US", "DE", "FR", "GB", "JP"}
	paths     = []string{"/", "/pricing", "/products/a", "/products/b", "/cart", "/blog"}
	skus      = []string{"A-1", "A-2", "B-1", "C-9"}
)

// UserID is the id of customer i once identified.
func UserID(i int) string { return fmt.Sprintf("user-%06d", i) }

// AnonymousID is the browser id of customer i.
func AnonymousID(i int) string { return fmt.Sprintf("anon-%06d", i) }

// Next returns the next message.
func (g *Generator) Next() Message {
	g.seq++
	ts := time.Now()
	if !g.cfg.Start.IsZero() {
		ts = g.now
		g.now = g.now.Add(g.cfg.Step)
	}
	c := g.rng.IntN(g.cfg.Customers)
	m := Message{Body: map[string]any{
		"messageId": fmt.Sprintf("m-%d-%d", g.cfg.Seed, g.seq),
		"timestamp": ts.UTC().Format(time.RFC3339Nano),
	}}
	ident := func() {
		if g.anon[c] {
			m.Body["anonymousId"] = AnonymousID(c)
		} else {
			m.Body["userId"] = UserID(c)
		}
	}
	switch r := g.rng.Float64(); {
	case r < 0.40:
		m.Lane = "web"
		m.Body["type"] = "track"
		m.Body["event"] = "page_view"
		m.Body["properties"] = map[string]any{"path": paths[g.rng.IntN(len(paths))]}
		ident()
	case r < 0.55:
		m.Lane = "web"
		m.Body["type"] = "track"
		m.Body["event"] = "add_to_cart"
		m.Body["properties"] = map[string]any{"sku": skus[g.rng.IntN(len(skus))], "price": float64(5 + g.rng.IntN(200))}
		ident()
	case r < 0.70:
		// An identify: anonymous visitors log in (linking both ids), known
		// customers update their traits.
		m.Lane = "web"
		if g.rng.IntN(2) == 0 {
			m.Lane = "server"
		}
		m.Body["type"] = "identify"
		m.Body["userId"] = UserID(c)
		if g.anon[c] {
			m.Body["anonymousId"] = AnonymousID(c)
			delete(g.anon, c)
		}
		m.Body["traits"] = map[string]any{
			"plan":    plans[g.rng.IntN(len(plans))],
			"country": countries[(c+g.rng.IntN(2))%len(countries)],
			"email":   fmt.Sprintf("%s@example.test", UserID(c)),
			"age":     18 + (c % 60),
		}
	case r < 0.95:
		m.Lane = "server"
		m.Body["type"] = "track"
		m.Body["event"] = "purchase"
		m.Body["userId"] = UserID(c)
		m.Body["properties"] = map[string]any{"amount": float64(10+g.rng.IntN(400)) + 0.99, "currency": "USD", "sku": skus[g.rng.IntN(len(skus))]}
	default:
		m.Lane = "server"
		m.Body["type"] = "track"
		m.Body["event"] = "signup"
		m.Body["userId"] = UserID(c)
	}
	if g.rng.Float64() < g.cfg.MalformedRate {
		g.breakMessage(&m)
	}
	return m
}

// breakMessage makes m invalid in one of the ways real clients do.
func (g *Generator) breakMessage(m *Message) {
	m.Malformed = true
	switch g.rng.IntN(3) {
	case 0:
		// A messageId sent as a number (a missing one is derived, so
		// that is no longer a refusal).
		m.Body["messageId"] = g.rng.IntN(1 << 30)
	case 1:
		m.Body["timestamp"] = "yesterday at noon"
	default:
		delete(m.Body, "userId")
		delete(m.Body, "anonymousId")
	}
}
