package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// testConfig is a poller config for tests: short intervals, one poller.
func testConfig() Config {
	c := DefaultConfig()
	c.PollInterval = 20 * time.Millisecond
	c.Overlap = 5 * time.Second
	c.CursorInterval = 200 * time.Millisecond
	c.Sharding = "none"
	c.WebhookTimeout = 2 * time.Second
	c.BackoffBase = 50 * time.Millisecond
	c.BackoffMax = 400 * time.Millisecond
	c.MaxRetryAfter = 5 * time.Second
	c.MaxAttempts = 6
	c.OpenScanInterval = time.Second
	c.MetricsAddr = ""
	c.ShutdownTimeout = 5 * time.Second
	return c
}

// hook is a webhook receiver served over HTTP, with its secret.
type hook struct {
	*receiver.Receiver
	URL    string
	Secret Secret
}

func newHook(t *testing.T) *hook {
	t.Helper()
	s := NewSecret()
	r, err := receiver.NewReceiver(s.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &hook{Receiver: r, URL: srv.URL, Secret: s}
}

// campaign parses a definition for a test, with its secret in the environment.
func campaign(t *testing.T, def string) *Campaign {
	t.Helper()
	c, err := ParseCampaign(t.Name()+".yaml", []byte(strings.TrimSpace(def)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeCampaign writes a definition into dir.
func writeCampaign(t *testing.T, dir, id, def string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(strings.TrimSpace(def)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// transition is a row of audience_transitions.
type transition struct {
	audience, customer, kind, message, lane string
	episode                                 uint32
	eventMs, ingestMs, derivedMs            uint64
}

func insertTransitions(t testing.TB, conn *chdb.Conn, ts []transition) {
	t.Helper()
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range ts {
		if tr.kind == "" {
			tr.kind = "entered"
		}
		if tr.derivedMs == 0 {
			tr.derivedMs = chdb.NowMs()
		}
		if tr.ingestMs == 0 {
			tr.ingestMs = tr.derivedMs
		}
		if tr.lane == "" {
			tr.lane = "web"
		}
		if err := batch.Append(tr.audience, tr.customer, tr.episode, tr.kind, tr.eventMs, tr.ingestMs, tr.derivedMs, tr.message, tr.lane, time.UnixMilli(int64(tr.derivedMs))); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// insertEvents writes events straight into the events table (the loader's
// own insert path), stamped with ingest time now.
func insertEvents(t testing.TB, conn *chdb.Conn, evs []*ingest.Event) {
	t.Helper()
	var rows ingest.EventRows
	for i, ev := range evs {
		if ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = ev.Timestamp
		}
		rows.Add(ev, "web", "events.web", 0, int64(i))
	}
	if err := rows.Insert(context.Background(), conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
}

func track(id, customer, name string, at time.Time, props map[string]any) *ingest.Event {
	b, _ := json.Marshal(props)
	return &ingest.Event{MessageID: id, Type: ingest.TypeTrack, UserID: customer, Event: name, Properties: b, Timestamp: at.UTC(), ReceivedAt: at.UTC()}
}

// running is a poller running in the background.
type running struct {
	p      *Poller
	cancel context.CancelFunc
	done   chan error
}

func startPoller(t *testing.T, cfg Config, cs []*Campaign, conn *chdb.Conn, bc broker.Config, seeds []string) *running {
	t.Helper()
	p, err := NewPoller(cfg, cs, component.Env{Conn: conn, Kafka: bc, Seeds: seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { r.stop(t) }) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("poller: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("poller did not stop within 60s")
	}
}

// ledger returns the newest state of every ledger entry, by key.
func ledgerState(t testing.TB, conn *chdb.Conn) map[string]*Entry {
	t.Helper()
	m, err := NewLedger(conn).query(context.Background(), "test ledger", ledgerLatest+" GROUP BY ledger_key")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func count(t testing.TB, conn *chdb.Conn, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// describe summarises entries for failure messages.
func describe(es map[string]*Entry) string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s/%s/%s=%s:%s:%s", e.CampaignID, e.CustomerID, e.Episode, e.Decision, e.Reason, e.DeliveryState))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// byQualification indexes entries by campaign/customer/episode.
func byQualification(es map[string]*Entry) map[string]*Entry {
	out := map[string]*Entry{}
	for _, e := range es {
		out[e.CampaignID+"/"+e.CustomerID+"/"+e.Episode] = e
	}
	return out
}

// body decodes a delivered payload.
func body(t testing.TB, b []byte) Body {
	t.Helper()
	var out Body
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	return out
}

// setAttributes gives customers attributes the way production does: the
// attributes maintained in the catalog, their values set by identify
// traits, read back through customer_profile (no evaluator runs).
func setAttributes(t testing.TB, conn *chdb.Conn, attrs map[string]map[string]any) {
	t.Helper()
	var names []string
	var evs []*ingest.Event
	at := time.Now().Add(-time.Hour)
	for _, id := range slices.Sorted(maps.Keys(attrs)) {
		b, err := json.Marshal(attrs[id])
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, &ingest.Event{MessageID: "attrs-" + id, Type: ingest.TypeIdentify, UserID: id, Traits: b, Timestamp: at})
		for n := range attrs[id] {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	plan, err := materialize.Compile(nil, materialize.AttributeSettings{Declared: names})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(context.Background(), conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	insertEvents(t, conn, evs)
}

// startPollerProcess starts bin's poller (tideline trigger) with env,
// logging to logs-NN.log where NN is run; the process's exit closes the
// log file.
func startPollerProcess(t *testing.T, bin string, env []string, logs string, run int) *exec.Cmd {
	t.Helper()
	f, err := os.Create(fmt.Sprintf("%s-%02d.log", logs, run))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "trigger", "--log-json")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	return cmd
}
