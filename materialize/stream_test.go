package materialize

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// record is one Kafka record to produce: an event on a lane.
type record struct {
	lane string
	ev   *ingest.Event
}

// generator makes randomized customer streams: anonymous visitors who log
// in (and sometimes a second user claiming the same anonymous id), traits
// that change and get unset, ties in event time, events hours old and a
// few seconds in the future, numbers sent as text.
type generator struct {
	rng       *rand.Rand
	seed      uint64
	now       time.Time
	customers int
	// span is how far back event times go (default 40h, so one-day
	// windows end during a test); future events a few seconds ahead of now
	// are made unless noFuture.
	span      time.Duration
	noFuture  bool
	seq       int
	anon      map[int]bool
	lastIdent map[int]time.Time
}

func newGenerator(seed uint64, customers int, now time.Time) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed*7+1)), seed: seed, now: now, customers: customers, span: 40 * time.Hour, anon: map[int]bool{}, lastIdent: map[int]time.Time{}}
	for c := 0; c < customers; c += 2 {
		g.anon[c] = true
	}
	return g
}

func (g *generator) user(c int) string { return fmt.Sprintf("u%04d", c) }
func (g *generator) anonID(c int) string {
	return fmt.Sprintf("a%04d", c)
}

// when is an event time within span before now, or a few seconds ahead.
func (g *generator) when() time.Time {
	if !g.noFuture && g.rng.IntN(30) == 0 {
		return g.now.Add(time.Duration(g.rng.IntN(3000)) * time.Millisecond)
	}
	return g.now.Add(-time.Minute - time.Duration(g.rng.Int64N(int64(g.span-time.Minute))))
}

func (g *generator) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

func (g *generator) next() record {
	g.seq++
	c := g.rng.IntN(g.customers)
	ev := &ingest.Event{MessageID: fmt.Sprintf("m%d-%d", g.seed, g.seq), Timestamp: g.when(), Source: "test"}
	ident := func() {
		if g.anon[c] {
			ev.AnonymousID = g.anonID(c)
		} else {
			ev.UserID = g.user(c)
		}
	}
	lane := "web"
	switch r := g.rng.Float64(); {
	case r < 0.30:
		ev.Type, ev.Event = ingest.TypeTrack, "page_view"
		ev.Properties = mustJSON(map[string]any{"path": g.pick("/", "/pricing", "/cart")})
		if g.rng.IntN(10) == 0 {
			// Track events set attributes through context.traits.
			ev.Traits = mustJSON(map[string]any{"country": g.pick("US", "DE", "FR")})
		}
		ident()
	case r < 0.45:
		ev.Type, ev.Event = ingest.TypeTrack, "add_to_cart"
		ev.Properties = mustJSON(map[string]any{"sku": g.pick("A-1", "B-2"), "price": 5 + g.rng.IntN(100)})
		ident()
	case r < 0.50:
		ev.Type, ev.Name = ingest.TypePage, g.pick("Pricing", "Home")
		ident()
	case r < 0.68:
		lane = g.pick("web", "server")
		ev.Type = ingest.TypeIdentify
		ev.UserID = g.user(c)
		if g.anon[c] && g.rng.IntN(3) > 0 {
			ev.AnonymousID = g.anonID(c)
			delete(g.anon, c)
		} else if g.rng.IntN(25) == 0 {
			// Another user claims someone's anonymous id; the earlier
			// claim by event time wins.
			ev.AnonymousID = g.anonID(g.rng.IntN(g.customers/2) * 2)
		}
		traits := map[string]any{"email": g.user(c) + "@example.test"}
		switch g.rng.IntN(10) {
		case 0:
			traits["plan"] = nil // explicit unset
		case 1, 2:
		default:
			traits["plan"] = g.pick("free", "free", "silver", "gold", "gold")
		}
		if g.rng.IntN(2) == 0 {
			traits["country"] = g.pick("US", "DE", "DE", "FR", "GB", "JP")
		}
		if g.rng.IntN(2) == 0 {
			age := 18 + (c*7)%50 + g.rng.IntN(3)
			if g.rng.IntN(4) == 0 {
				traits["age"] = fmt.Sprint(age) // numbers as text compare numerically
			} else {
				traits["age"] = age
			}
		}
		if g.rng.IntN(3) == 0 {
			traits["first_source"] = g.pick("ads", "seo", "email")
		}
		if last, ok := g.lastIdent[c]; ok && g.rng.IntN(8) == 0 {
			ev.Timestamp = last // a tie, broken by message id
		}
		g.lastIdent[c] = ev.Timestamp
		ev.Traits = mustJSON(traits)
	case r < 0.93:
		lane = "server"
		ev.Type, ev.Event = ingest.TypeTrack, "purchase"
		if g.anon[c] {
			lane = "web"
		}
		ident()
		amount := float64(10+g.rng.IntN(300)) + 0.5
		props := map[string]any{"amount": amount, "currency": g.pick("USD", "USD", "EUR"), "sku": g.pick("A-1", "B-2")}
		if g.rng.IntN(6) == 0 {
			props["amount"] = fmt.Sprint(amount)
		}
		ev.Properties = mustJSON(props)
	default:
		lane = "server"
		ev.Type, ev.Event = ingest.TypeTrack, "signup"
		ident()
	}
	return record{lane: lane, ev: ev}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// harness feeds records through Kafka and the real loader into one
// database.
type harness struct {
	t       *testing.T
	conn    *chdb.Conn
	br      testenv.Broker
	prod    *kgo.Client
	group   string
	loaders map[string]func()
	// rows is how many event rows the loaded lanes must have inserted.
	rows int64
}

func newHarness(t *testing.T, br testenv.Broker, conn *chdb.Conn, group string) *harness {
	t.Helper()
	prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, testenv.Logger(t)), kgo.ProducerLinger(time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	h := &harness{t: t, conn: conn, br: br, prod: prod, group: group, loaders: map[string]func(){}}
	t.Cleanup(func() {
		for name := range h.loaders {
			h.stopLoader(name)
		}
	})
	return h
}

// startLoader runs a loader for lanes; name tells loaders of one harness apart.
func (h *harness) startLoader(name string, lanes []string, tune func(*ingest.LoaderConfig)) {
	h.t.Helper()
	cfg := ingest.DefaultLoaderConfig()
	cfg.Lanes = lanes
	cfg.Group = h.group
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.WatermarkInterval = 200 * time.Millisecond
	cfg.WatermarkGrace = 300 * time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	l, err := ingest.NewLoader(cfg, component.Env{Conn: h.conn, Kafka: h.br.Config, Seeds: h.br.Seeds, Log: testenv.Logger(h.t)})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The loader stops when stopLoader cancels it (or at cleanup).
	go func() { done <- l.Run(ctx) }()
	h.loaders[name] = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("loader %s: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			h.t.Errorf("loader %s did not stop", name)
		}
	}
}

func (h *harness) stopLoader(name string) {
	if stop, ok := h.loaders[name]; ok {
		delete(h.loaders, name)
		stop()
	}
}

// produce writes records, keyed by customer so one customer's events keep
// their order within a lane, as the collector does.
func (h *harness) produce(recs []record) {
	h.t.Helper()
	var out []*kgo.Record
	now := time.Now().UTC()
	for _, r := range recs {
		if r.ev.ReceivedAt.IsZero() {
			// What the collector stamps; a redelivery keeps the first stamp.
			r.ev.ReceivedAt = now
		}
		b, err := json.Marshal(r.ev)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, &kgo.Record{Topic: h.br.Config.MustTopic(r.lane), Key: []byte(r.ev.CustomerID()), Value: b})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.prod.ProduceSync(ctx, out...).FirstErr(); err != nil {
		h.t.Fatalf("produce: %v", err)
	}
}

// waitRows waits until n deliveries are loaded (event_positions keeps one
// row per delivery, where events collapses them on merge).
func (h *harness) waitRows(n int64) {
	h.t.Helper()
	testenv.Eventually(h.t, 90*time.Second, h.t.Name(), func() (bool, string) {
		var got uint64
		if err := h.conn.QueryRow(context.Background(), "SELECT count() FROM event_positions").Scan(&got); err != nil {
			return false, err.Error()
		}
		return int64(got) >= n, fmt.Sprintf("%d of %d event rows loaded", got, n)
	})
}

// waitWatermark waits until the evaluated lanes' watermark reaches ms.
func (h *harness) waitWatermark(ms uint64) {
	h.t.Helper()
	testenv.Eventually(h.t, 90*time.Second, h.t.Name(), func() (bool, string) {
		wm, ok, err := Watermark(context.Background(), h.conn, []string{"web", "server"})
		if err != nil {
			return false, err.Error()
		}
		return ok && wm >= ms, fmt.Sprintf("watermark %d, want %d", wm, ms)
	})
}
