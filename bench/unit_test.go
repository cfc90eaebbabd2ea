package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/golden"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func TestPercentiles(t *testing.T) {
	seq := func(n int) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(n - i) // reversed: percentiles must sort
		}
		return s
	}
	for _, tc := range []struct {
		name string
		in   []float64
		want Percentiles
	}{
		{"empty", nil, Percentiles{}},
		{"one", []float64{7}, Percentiles{Count: 1, P50: 7, P95: 7, P99: 7, Max: 7}},
		{"hundred", seq(100), Percentiles{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100}},
		{"thousand", seq(1000), Percentiles{Count: 1000, P50: 500, P95: 950, P99: 990, Max: 1000}},
		{"two", []float64{10, 1}, Percentiles{Count: 2, P50: 1, P95: 10, P99: 10, Max: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentiles(tc.in); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPeerTableSQL(t *testing.T) {
	sql, err := peerTableSQL([]string{"127.0.0.1:19092", "kafka-1.local:9092"}, []string{"bench.x.peer.web", "bench.x.peer.server"}, "bench-x-peer", 2)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "peer_table.sql", []byte(sql+"\n\n"+peerViewSQL+"\n"))
	for _, tc := range []struct {
		name    string
		brokers []string
		topics  []string
		group   string
	}{
		{"quote in topic", []string{"h:1"}, []string{"a'b"}, "g"},
		{"broker without port", []string{"host"}, []string{"t"}, "g"},
		{"comma in group", []string{"h:1"}, []string{"t"}, "g,h"},
		{"empty group", []string{"h:1"}, []string{"t"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := peerTableSQL(tc.brokers, tc.topics, tc.group, 1); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"short duration", func(c *Config) { c.Duration = time.Millisecond }, "bench.duration"},
		{"unknown scenario", func(c *Config) { c.Scenarios = []string{"speed"} }, `unknown scenario "speed"`},
		{"no scenario", func(c *Config) { c.Scenarios = nil }, "bench.scenarios is empty"},
		{"codec", func(c *Config) { c.Compression = "brotli" }, "bench.compression"},
		{"rate", func(c *Config) { c.Rate = 0 }, "bench.rate"},
		{"inserters", func(c *Config) { c.CeilingInserters = 0 }, "bench.ceiling_inserters"},
		{"customers", func(c *Config) { c.Customers = 0 }, "bench.customers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// sampleResult is a fixed result for the report's golden file and the
// target checks.
func sampleResult() *Result {
	r := &Result{
		RunID: "20260101_120000_abcd",
		Date:  time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		Machine: Machine{Host: "box", CPU: "Test CPU", Cores: 2, MemoryMB: 4096, GoVersion: "go1.26", ClickHouse: "18.16.1",
			Kafka: "kfake", LoadBefore: 0.5, LoadAfter: 1.5},
		Settings: DefaultConfig(),
		Produced: &Produced{Events: 3000000, PerLane: map[string]int64{"web": 1900000, "server": 1100000}, RecordBytes: 320, FlatBytes: 490, Compression: "snappy", Seconds: 20},
		Throughput: []Throughput{
			{Name: "ceiling: pre-built columnar inserts", Views: "detached", Rows: 4000000, Seconds: 20, EventsPerSec: 200000, Drained: true},
			{Name: "ceiling: pre-built columnar inserts", Views: "attached", Rows: 2000000, Seconds: 20, EventsPerSec: 100000, Drained: true},
			{Name: "tideline loader", Views: "detached", Rows: 3000000, Seconds: 30, EventsPerSec: 100000, Drained: true, PeakRSSMB: 300,
				ClientCPUSeconds: 9, Server: ServerCPU{CPUSeconds: 15, CPUWaitSeconds: 2.5, MergeSeconds: 4}},
			{Name: "tideline loader", Views: "attached", Rows: 3000000, Seconds: 50, EventsPerSec: 60000, Drained: true, PeakRSSMB: 310},
			{Name: "peer: ClickHouse Kafka engine", Views: "attached", Rows: 3000000, Seconds: 100, EventsPerSec: 30000, Drained: true},
		},
		Latency: &Latency{Rate: 2000, AchievedRate: 1990, Seconds: 30, Accepted: 59700,
			Visible:    Percentiles{Count: 59700, P50: 250, P95: 600, P99: 1200, Max: 1500},
			ByLane:     map[string]Percentiles{"web": {Count: 37000, P50: 260, P95: 610, P99: 1210, Max: 1500}, "server": {Count: 22700, P50: 240, P95: 590, P99: 1190, Max: 1400}},
			Transition: &Percentiles{Count: 9000, P50: 900, P95: 2500, P99: 3000, Max: 4000},
			Webhook:    &Percentiles{Count: 11000, P50: 400, P95: 700, P99: 800, Max: 1200}},
		Backlog: &Backlog{Rate: 2000, AccumulateSeconds: 120, BacklogEvents: 150000, FirstRowSeconds: 0.5, DrainSeconds: 2, DrainEventsPerSec: 75000,
			RealTimeMultiple: 60, Drained: true, LiveBefore: Percentiles{Count: 80000, P99: 400}, LiveDuringDrain: Percentiles{Count: 1500, P50: 300, P95: 900, P99: 2500}},
		Memory: []ProcessMemory{{Process: "loader", Scenario: "throughput, views detached", PeakRSSMB: 300}, {Process: "collector", Scenario: "latency", PeakRSSMB: 40}},
		Notes:  []string{"a note"},
	}
	r.summarise()
	return r
}

func TestSummariseTargets(t *testing.T) {
	r := sampleResult()
	want := map[string]*bool{
		"tideline ≥ 1.5× the Kafka-engine peer, views attached":       ptr(true),
		"goal: tideline ≥ 2.0× the Kafka-engine peer, views attached": ptr(true),
		"tideline ≥ 75% of the ceiling, views attached":               ptr(false),
		"event → transition derived p99 < 1000 ms at 2000 events/s":   ptr(false),
		"event → webhook received p99 < 1000 ms at 2000 events/s":     ptr(true),
		"backlog drain ≥ 100× real time":                              ptr(false),
		"live-lane p99 < 1000 ms during the drain":                    ptr(false),
		"loader peak RSS < 512 MB":                                    ptr(true),
	}
	for _, tg := range r.Targets {
		w, ok := want[tg.Target]
		if !ok {
			t.Errorf("unexpected target %q", tg.Target)
			continue
		}
		delete(want, tg.Target)
		if (tg.Met == nil) != (w == nil) || (w != nil && *tg.Met != *w) {
			t.Errorf("%s: met %v (got %s), want %v", tg.Target, tg.Met, tg.Got, w)
		}
	}
	for name := range want {
		t.Errorf("target %q not checked", name)
	}
	if len(r.Ratios) != 3 {
		t.Errorf("ratios: %+v", r.Ratios)
	}
	for _, ra := range r.Ratios {
		if strings.HasPrefix(ra.Name, "tideline (views attached) / peer") && ra.Value != 2 {
			t.Errorf("%s = %v, want 2", ra.Name, ra.Value)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResult().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "table.txt", b.Bytes())
}

// TestVisibility checks the poller against rows whose times it knows: each
// row is counted once however often it is polled, per lane, with the
// latency of its event time to the poll that saw it.
func TestVisibility(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	v := newVisibility(conn, 10*time.Millisecond)
	insert := func(lane string, n int, eventMs, ingestMs uint64) {
		t.Helper()
		var rows ingest.EventRows
		for i := range n {
			ev := &ingest.Event{MessageID: lane + "-" + string(rune('a'+i)), Type: ingest.TypeTrack, UserID: "u", Event: "e",
				Timestamp: time.UnixMilli(int64(eventMs)).UTC(), ReceivedAt: time.UnixMilli(int64(eventMs)).UTC()}
			rows.Add(ev, lane, "t", 0, int64(i))
		}
		if err := rows.Insert(ctx, conn, ingestMs); err != nil {
			t.Fatal(err)
		}
	}
	now := chdb.NowMs()
	insert("web", 3, now-5000, now-100)
	insert("server", 2, now-2000, now-100)
	for range 3 {
		if err := v.poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v.rows("web") != 3 || v.rows("server") != 2 || v.total() != 5 {
		t.Fatalf("seen web %d server %d total %d; want 3, 2, 5", v.rows("web"), v.rows("server"), v.total())
	}
	insert("web", 4, now-1000, now+50)
	if err := v.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if v.rows("web") != 7 {
		t.Fatalf("web rows %d after a second batch, want 7", v.rows("web"))
	}
	lat := v.latencies(time.UnixMilli(int64(now-6000)), time.UnixMilli(int64(now)))
	if lat["web"].Count != 7 || lat["server"].Count != 2 || lat["all"].Count != 9 {
		t.Fatalf("latency counts: %+v", lat)
	}
	// Seen at or after now, so at least the event's age; well under a
	// minute, since the poll ran right away.
	if p := lat["server"]; p.P50 < 2000 || p.Max > 60000 {
		t.Errorf("server latency %+v, want about 2000 ms", p)
	}
	if p := lat["web"]; p.Max < 5000 || p.P50 < 1000 {
		t.Errorf("web latency %+v, want 1000–5000 ms and more", p)
	}
	only := v.latencies(time.UnixMilli(int64(now-3000)), time.UnixMilli(int64(now)))
	if only["web"].Count != 4 || only["server"].Count != 2 {
		t.Errorf("window selection: %+v", only)
	}
	if first, ok := v.firstVisible("web"); !ok || first.Before(time.UnixMilli(int64(now))) {
		t.Errorf("first visible web row at %v (ok %v), want at or after %v", first, ok, time.UnixMilli(int64(now)))
	}
}

// TestServerEvents reads the CPU counters from this server and, through
// remote(), from the same server as a one-node cluster: both read every
// counter, and the later read is not behind the earlier one.
func TestServerEvents(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	local, err := serverEvents(ctx, conn, localEvents)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := serverEvents(ctx, conn, "remote('"+testenv.ClickHouseConfig(t).Addr+"', system.events)")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"UserTimeMicroseconds", "SystemTimeMicroseconds"} {
		if local[k] == 0 || remote[k] < local[k] {
			t.Errorf("%s: local %d, remote %d; want a count, not behind", k, local[k], remote[k])
		}
	}
	if cpu := serverSince(ctx, conn, localEvents, local); cpu.CPUSeconds < 0 || cpu.CPUSeconds > 1e6 {
		t.Errorf("CPU since the first read: %+v", cpu)
	}
}

// TestSourceDeterministic checks that a seed yields the same mix, with the
// requested generated properties, and that every event parses.
func TestSourceDeterministic(t *testing.T) {
	c := DefaultConfig()
	c.Customers, c.Properties = 100, 5
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := newSource(c, start), newSource(c, start)
	for i := range 200 {
		x, err := a.next()
		if err != nil {
			t.Fatal(err)
		}
		y, _ := b.next()
		if !bytes.Equal(x.body, y.body) || x.lane != y.lane || !x.receivedAt.Equal(y.receivedAt) {
			t.Fatalf("event %d differs between two sources of seed %d", i, c.Seed)
		}
		if !bytes.Contains(x.body, []byte(`"attr_04"`)) {
			t.Fatalf("event %d lacks the generated properties: %s", i, x.body)
		}
	}
	var n int
	err := generate(context.Background(), newSource(c, start), 5000, func(ch *chunk) error {
		for i, ev := range ch.events {
			if ev == nil || ev.MessageID == "" || (ch.lanes[i] != "web" && ch.lanes[i] != "server") {
				t.Errorf("bad event %+v on lane %q", ev, ch.lanes[i])
			}
		}
		n += len(ch.events)
		return nil
	})
	if err != nil || n != 5000 {
		t.Fatalf("generated %d events, err %v; want 5000", n, err)
	}
}

// TestFlatRow checks the peer's record carries the loader's column values.
func TestFlatRow(t *testing.T) {
	ev := &ingest.Event{MessageID: "m1", Type: ingest.TypeIdentify, AnonymousID: "a1", Traits: []byte(`{"plan":"gold"}`),
		Context:   []byte(`{"ip":"10.0.0.1","page":{"path":"/p"}}`),
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC), ReceivedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Source: "web"}
	var rows ingest.EventRows
	rows.Add(ev, "web", "peer.web", 0, 0)
	f := flatOf(&rows, 0)
	want := flatRow{MessageID: "m1", Type: "identify", CustomerID: "anon:a1", AnonymousID: "a1", Properties: "{}", Traits: `{"plan":"gold"}`,
		EventTime: 1767323045, EventTimeMs: 1767323045678, ReceivedAtMs: 1767323046000, Source: "web", Lane: "web", KafkaTopic: "peer.web",
		Context: `{"ip":"10.0.0.1","page":{"path":"/p"}}`, ContextIP: "10.0.0.1", ContextPagePath: "/p"}
	if f != want {
		t.Errorf("got %+v\nwant %+v", f, want)
	}
}

// TestPeerColumns checks that the peer writes every column the loader
// writes: ClickHouse 18.16 fails an insert through a view that leaves a
// column of its TO table out.
func TestPeerColumns(t *testing.T) {
	tail := ", kafka_offset, " + strings.Join(peerContextColumns, ", ")
	if !strings.HasSuffix(ingest.EventColumns, tail) {
		t.Errorf("ingest.EventColumns = %q, want it to end with %q", ingest.EventColumns, tail)
	}
	if len(peerContextColumns) != len(ingest.EventRows{}.Ctx) {
		t.Errorf("%d context columns, ingest.EventRows has %d", len(peerContextColumns), len(ingest.EventRows{}.Ctx))
	}
}

// TestTargetsNotMeasured checks that a run that skipped scenarios or had no
// views reports every target, none of them met.
func TestTargetsNotMeasured(t *testing.T) {
	r := &Result{Throughput: []Throughput{
		{Name: "tideline loader", Views: "detached", Rows: 100, Seconds: 1, EventsPerSec: 100, Drained: true},
		{Name: "peer: ClickHouse Kafka engine", Views: "detached", Rows: 100, Seconds: 1, EventsPerSec: 50, Drained: true},
	}, Latency: &Latency{Rate: 500, Visible: Percentiles{Count: 10, P99: 100}, Webhook: &Percentiles{Count: 10, P99: 100}}}
	r.summarise()
	if len(r.Targets) != 8 {
		t.Fatalf("%d targets, want 8: %+v", len(r.Targets), r.Targets)
	}
	for _, tg := range r.Targets {
		if tg.Met != nil {
			t.Errorf("%s: met %v (got %s), want not measured", tg.Target, *tg.Met, tg.Got)
		}
	}
}

func ptr[T any](v T) *T { return &v }
