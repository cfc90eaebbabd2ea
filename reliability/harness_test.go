package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/workload"
)

var (
	long       = flag.Bool("long", false, "run the long versions of the fault scenarios (minutes each; RELIABILITY.md records their results)")
	figuresOut = flag.String("figures", "", "append each scenario's figures as one JSON line to this file")
)

// binPath is the tideline binary the scenarios run, built once by TestMain
// from the working tree so the test exercises the code under review.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "tideline-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "tideline")
	build := exec.Command("go", "build", "-o", binPath, "github.com/tideline-dev/tideline/cmd/tideline")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the tideline binary for the fault scenarios:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pick returns the short or the long value of a scenario parameter.
func pick[T any](short, longV T) T {
	if *long {
		return longV
	}
	return short
}

// repoRoot is the repository's top directory (the scripts live there).
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// proc is a tideline subprocess. Its output goes to a file (a pipe would
// keep Wait blocked on grandchildren) that failures print.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// cleanEnv is this process's environment without tideline settings, so a
// developer's TIDELINE_* variables do not leak into a scenario.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TIDELINE_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: f.Name(), done: make(chan struct{})}
	// This goroutine ends when the process does; Cleanup kills it at the latest.
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to d, then kills.
func (p *proc) term(d time.Duration) error {
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		// A Go process prints every goroutine's stack on SIGQUIT: keep
		// that, to show where it hung.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.kill()
		}
		return fmt.Errorf("%s did not stop within %s of SIGTERM; its goroutines: %s", p.name, d, p.keepLog())
	}
}

// keepLog copies the output somewhere the test's cleanup does not remove,
// for a failure to point at.
func (p *proc) keepLog() string {
	f, err := os.CreateTemp("", "tideline-"+p.name+"-*.log")
	if err != nil {
		return p.logPath
	}
	defer f.Close()
	_, _ = f.WriteString(p.logText())
	return f.Name()
}

// logText returns the process's output.
func (p *proc) logText() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// tail is the last n lines of the output, for failure messages.
func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.logText(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// grep returns the last n output lines that contain s.
func (p *proc) grep(s string, n int) string {
	var hits []string
	for _, line := range strings.Split(p.logText(), "\n") {
		if strings.Contains(line, s) {
			hits = append(hits, line)
		}
	}
	if len(hits) > n {
		hits = hits[len(hits)-n:]
	}
	return strings.Join(hits, "\n")
}

// count is how many output lines contain s.
func (p *proc) count(s string) int {
	return strings.Count(p.logText(), s)
}

// rss returns the process's resident set size, in bytes.
func (p *proc) rss() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loaderEnv is the environment of a `tideline ingest` subprocess loading
// the web and server lanes of br into the database of ch.
func loaderEnv(ch chdb.Config, br testenv.Broker, group string, extra ...string) []string {
	env := []string{
		"TIDELINE_CLICKHOUSE_ADDR=" + ch.Addr,
		"TIDELINE_CLICKHOUSE_DATABASE=" + ch.Database,
		"TIDELINE_KAFKA_MODE=kafka",
		"TIDELINE_KAFKA_BROKERS=" + strings.Join(br.Seeds, ","),
		"TIDELINE_KAFKA_TOPIC_PREFIX=" + br.Config.TopicPrefix,
		"TIDELINE_KAFKA_PARTITIONS=" + strconv.Itoa(int(br.Config.Partitions)),
		"TIDELINE_LOADER_LANES=web,server",
		"TIDELINE_LOADER_GROUP=" + group,
		// Six seconds is the brokers' minimum: a killed member's partitions
		// move to the others that much later.
		"TIDELINE_LOADER_SESSION_TIMEOUT=6s",
		"TIDELINE_LOADER_MAX_RETRY_BACKOFF=2s",
	}
	return append(env, extra...)
}

// startLoader runs `tideline ingest` with env.
func startLoader(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	return startProc(t, name, env, append([]string{"ingest", "--metrics-addr", "", "--log-level", "warn"}, args...)...)
}

// faultBroker is the broker of scenarios whose subject is not the broker:
// Apache Kafka when TIDELINE_TEST_KAFKA names one (as CI does), kfake
// otherwise.
func faultBroker(t testing.TB) testenv.Broker {
	t.Helper()
	if os.Getenv(testenv.EnvKafka) != "" {
		return testenv.Kafka(t)
	}
	return testenv.Embedded(t)
}

// eventFeed turns the demo workload into the records the collector would
// produce, so a scenario can fill the lanes fast without HTTP in the way.
type eventFeed struct {
	seed uint64
	gen  *workload.Generator
	recv time.Time
}

func newFeed(seed uint64, customers int) *eventFeed {
	start := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	return &eventFeed{
		seed: seed,
		gen:  workload.New(workload.Config{Customers: customers, Seed: seed, Start: start, Step: 3 * time.Millisecond}),
		recv: time.Now().UTC(),
	}
}

// next returns the lane and the record value of the next event.
func (f *eventFeed) next() (lane string, ev *ingest.Event, err error) {
	m := f.gen.Next()
	raw, err := json.Marshal(m.Body)
	if err != nil {
		return "", nil, err
	}
	source := "web"
	if m.Lane == "server" {
		source = "server"
	}
	ev, err = ingest.ParseMessage(raw, "", time.Time{}, f.recv, source)
	if err != nil {
		return "", nil, fmt.Errorf("generated event %s: %w", raw, err)
	}
	return m.Lane, ev, nil
}

// idPrefix is the prefix of every message id the feed with seed makes;
// ids run from prefix+"1" to prefix+"N".
func idPrefix(seed uint64) string { return fmt.Sprintf("m-%d-", seed) }

// produceFeed writes n events of feed into br's web and server lanes at most
// rate events/s (0: as fast as acknowledged), counting acknowledged records
// in acked. It returns when every record is acknowledged.
func produceFeed(ctx context.Context, br testenv.Broker, feed *eventFeed, n int, eventsPerSec float64, acked *atomic.Int64) error {
	cl, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil),
		// No delivery timeout: on a loaded machine the broker may take
		// minutes to catch up, and ctx bounds the scenario anyway.
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var lim *rate.Limiter
	if eventsPerSec > 0 {
		lim = rate.NewLimiter(rate.Limit(eventsPerSec), int(max(eventsPerSec/10, 1)))
	}
	var (
		mu       sync.Mutex
		firstErr error
	)
	for range n {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
		lane, ev, err := feed.next()
		if err != nil {
			return err
		}
		v, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		rec := &kgo.Record{Topic: br.Config.MustTopic(lane), Key: []byte(ev.CustomerID()), Value: v, Timestamp: ev.ReceivedAt}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			acked.Add(1)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

// eventFigures counts the events of one feed in ClickHouse.
type eventFigures struct {
	// RawRows is count() over the feed's rows: every delivery, before merges.
	RawRows uint64 `json:"raw_rows"`
	// Unique is the number of distinct message ids of the feed present.
	Unique uint64 `json:"unique"`
	// Final is the row count through events_unique (ReplacingMergeTree FINAL).
	Final uint64 `json:"final"`
	// Foreign counts rows whose id the feed never made.
	Foreign uint64 `json:"foreign"`
}

func countEvents(ctx context.Context, conn *chdb.Conn, seed uint64, n int) (eventFigures, error) {
	var f eventFigures
	prefix := idPrefix(seed)
	ours := "startsWith(message_id, ?) AND toUInt64OrZero(substring(message_id, ?)) BETWEEN 1 AND ?"
	q := "SELECT countIf(" + ours + "), uniqExactIf(message_id, " + ours + "), countIf(NOT (" + ours + ")) FROM events"
	args := []any{prefix, len(prefix) + 1, n}
	if err := conn.QueryRow(ctx, q, append(append(append([]any{}, args...), args...), args...)...).Scan(&f.RawRows, &f.Unique, &f.Foreign); err != nil {
		return f, fmt.Errorf("count events: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM events_unique WHERE "+ours, args...).Scan(&f.Final); err != nil {
		return f, fmt.Errorf("count events_unique: %w", err)
	}
	return f, nil
}

// redelivered counts the rows the loader inserted more than once for the
// events whose id starts with prefix. Merges collapse duplicates in events
// within minutes, so the count comes from event_positions, which keeps a
// row for every delivery and is never merged away.
func redelivered(ctx context.Context, conn *chdb.Conn, prefix string, f eventFigures) (uint64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM event_positions WHERE startsWith(message_id, ?)", prefix).Scan(&n); err != nil {
		return 0, fmt.Errorf("count deliveries: %w", err)
	}
	if n < f.Unique {
		return 0, nil
	}
	return n - f.Unique, nil
}

// loadedFigures counts the scenario's events once loading is over, and the
// deliveries beyond one per event; the test fails when ClickHouse cannot
// say.
func loadedFigures(ctx context.Context, t testing.TB, conn *chdb.Conn, seed uint64, n int) (eventFigures, uint64) {
	t.Helper()
	f, err := countEvents(ctx, conn, seed, n)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := redelivered(ctx, conn, idPrefix(seed), f)
	if err != nil {
		t.Fatal(err)
	}
	return f, extra
}

// tableFigures describes a derived table: its rows as stored, its rows
// after merging (FINAL, for the ReplacingMergeTree family), and the number
// of distinct sorting keys, which a correct derived table has one row of.
type tableFigures struct {
	Table      string `json:"table"`
	Engine     string `json:"engine"`
	Rows       uint64 `json:"rows"`
	FinalRows  uint64 `json:"final_rows"`
	UniqueKeys uint64 `json:"unique_keys"`
	// Log marks a plain MergeTree: a work log (touch marks, feeds) that the
	// readers deduplicate, not a result, so redeliveries add rows by design.
	Log bool `json:"log,omitempty"`
}

// derivedTables lists the tables the pipeline derives from events (every
// table of the schema except the raw inputs and the bookkeeping ones).
func derivedTables(ctx context.Context, conn *chdb.Conn) ([]tableFigures, error) {
	skip := map[string]bool{"events": true, "event_positions": true, "dead_letters": true, "loader_progress": true, "schema_migrations": true, "audiences": true, "campaigns": true}
	rows, err := conn.Query(ctx, "SELECT name, engine, sorting_key FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree' AND NOT startsWith(name, '.inner') ORDER BY name", conn.Database)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	type tbl struct{ name, engine, key string }
	var tbls []tbl
	for rows.Next() {
		var x tbl
		if err := rows.Scan(&x.name, &x.engine, &x.key); err != nil {
			return nil, err
		}
		// In cluster mode a sharded table is counted through its
		// Distributed table (every shard), with its local table's engine.
		x.name = strings.TrimSuffix(x.name, "_local")
		x.engine = strings.TrimPrefix(x.engine, "Replicated")
		if !skip[x.name] {
			tbls = append(tbls, x)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []tableFigures
	for _, x := range tbls {
		if !chdb.ValidIdentifier(x.name) {
			return nil, fmt.Errorf("table name %q is not a plain identifier", x.name)
		}
		tf := tableFigures{Table: x.name, Engine: x.engine, Log: x.engine == "MergeTree"}
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+x.name).Scan(&tf.Rows); err != nil {
			return nil, fmt.Errorf("count %s: %w", x.name, err)
		}
		tf.FinalRows = tf.Rows
		if strings.Contains(x.engine, "Replacing") || strings.Contains(x.engine, "Collapsing") || strings.Contains(x.engine, "Aggregating") || strings.Contains(x.engine, "Summing") {
			if err := conn.QueryRow(ctx, "SELECT count() FROM "+x.name+" FINAL").Scan(&tf.FinalRows); err != nil {
				return nil, fmt.Errorf("count %s FINAL: %w", x.name, err)
			}
		}
		if x.key != "" {
			// The sorting key comes from the server's own catalogue, not
			// from user input.
			if err := conn.QueryRow(ctx, "SELECT uniqExact(tuple("+x.key+")) FROM "+x.name).Scan(&tf.UniqueKeys); err != nil {
				return nil, fmt.Errorf("distinct keys of %s: %w", x.name, err)
			}
		}
		out = append(out, tf)
	}
	return out, nil
}

// oracleCheck compares a derived table's merged values with the same
// figure computed from the deduplicated events.
type oracleCheck struct {
	Check string `json:"check"`
	Got   uint64 `json:"got"`
	Want  uint64 `json:"want"`
}

// derivedOracles recomputes, from events_unique, what the materialized
// views of the schema must hold, for the tables that exist: a redelivered
// batch that inflated a derived value shows up as got != want.
func derivedOracles(ctx context.Context, conn *chdb.Conn) ([]oracleCheck, error) {
	checks := []struct{ table, name, got, want string }{
		{"customer_event_buckets", "customer_event_buckets: messages summed over buckets = distinct events",
			"SELECT sum(m) FROM (SELECT uniqExactMerge(messages) AS m FROM customer_event_buckets GROUP BY customer_id, type, event, bucket)",
			"SELECT uniqExact(message_id) FROM events"},
		{"customer_event_buckets", "customer_event_buckets: buckets = distinct (customer, type, event, hour)",
			"SELECT count() FROM (SELECT 1 FROM customer_event_buckets GROUP BY customer_id, type, event, bucket)",
			"SELECT uniqExact(customer_id, type, event, toStartOfHour(event_time)) FROM events"},
		{"customer_activity_seconds", "customer_activity_seconds: rows after FINAL = distinct (second, type, event, customer)",
			"SELECT count() FROM customer_activity_seconds FINAL",
			// Track and page events by name, and (as 'traits') the customers
			// whose traits or context attributes an event set.
			"SELECT (SELECT uniqExact(event_time, type, event, customer_id) FROM events WHERE type IN ('track', 'page')) + " +
				"(SELECT uniqExact(event_time, customer_id) FROM events WHERE traits NOT IN ('', '{}') OR arrayExists(x -> x != '', [" +
				"context_campaign_source, context_campaign_medium, context_campaign_name, context_campaign_term, context_campaign_content, " +
				"context_page_url, context_page_path, context_page_referrer, context_ip, context_user_agent, context_locale, context_timezone, " +
				"context_library_name, context_library_version]))"},
		{"identity_links", "identity_links: linked anonymous ids = distinct anonymous ids of linking identifies",
			"SELECT count() FROM (SELECT anonymous_customer_id FROM identity_links GROUP BY anonymous_customer_id)",
			"SELECT uniqExact(anonymous_id) FROM events WHERE type = 'identify' AND user_id != '' AND anonymous_id != ''"},
		{"identity_claims", "identity_claims: rows after FINAL = distinct (user, anonymous id) claims",
			"SELECT count() FROM identity_claims FINAL",
			"SELECT uniqExact(user_id, anonymous_id) FROM events WHERE type = 'identify' AND user_id != '' AND anonymous_id != ''"},
	}
	var out []oracleCheck
	for _, c := range checks {
		var exists uint8
		if err := conn.QueryRow(ctx, "SELECT count() > 0 FROM system.tables WHERE database = ? AND name = ?", conn.Database, c.table).Scan(&exists); err != nil {
			return nil, fmt.Errorf("look for %s: %w", c.table, err)
		}
		if exists == 0 {
			continue
		}
		oc := oracleCheck{Check: c.name}
		if err := conn.QueryRow(ctx, c.got).Scan(&oc.Got); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		if err := conn.QueryRow(ctx, c.want).Scan(&oc.Want); err != nil {
			return nil, fmt.Errorf("%s (oracle): %w", c.name, err)
		}
		out = append(out, oc)
	}
	return out, nil
}

// report is one scenario's result, printed and appended to -figures.
type report struct {
	Scenario string         `json:"scenario"`
	Long     bool           `json:"long"`
	Date     string         `json:"date"`
	Machine  string         `json:"machine"`
	Broker   string         `json:"broker,omitempty"`
	Load     string         `json:"load"`
	Faults   string         `json:"faults"`
	Produced int64          `json:"produced"`
	Events   eventFigures   `json:"events"`
	Lost     int64          `json:"lost"`
	Derived  []tableFigures `json:"derived,omitempty"`
	Oracles  []oracleCheck  `json:"oracles,omitempty"`
	Extra    map[string]any `json:"extra,omitempty"`
	Seconds  float64        `json:"seconds"`
}

// machine describes where the scenario ran.
func machine() string {
	host, _ := os.Hostname()
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores (%s), %s/%s", host, runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH)
}

func (r *report) publish(t testing.TB, start time.Time) {
	t.Helper()
	r.Long = *long
	r.Date = time.Now().UTC().Format(time.RFC3339)
	r.Machine = machine()
	r.Seconds = time.Since(start).Round(100 * time.Millisecond).Seconds()
	b, _ := json.Marshal(r)
	t.Logf("FIGURES %s", b)
	if *figuresOut == "" {
		return
	}
	f, err := os.OpenFile(*figuresOut, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("figures file: %v", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

// checkExactlyOnce fails t unless every produced event is present once
// after merging and no derived table holds two rows for one key.
func checkExactlyOnce(t testing.TB, r *report) {
	t.Helper()
	if r.Lost != 0 || r.Events.Unique != uint64(r.Produced) {
		t.Errorf("%d of %d events lost (%d present)", r.Lost, r.Produced, r.Events.Unique)
	}
	if r.Events.Final != r.Events.Unique {
		t.Errorf("events_unique holds %d rows for %d distinct events: duplicates survive FINAL", r.Events.Final, r.Events.Unique)
	}
	if r.Events.Foreign != 0 {
		t.Errorf("%d rows that were never produced", r.Events.Foreign)
	}
	for _, d := range r.Derived {
		if !d.Log && d.UniqueKeys != 0 && d.FinalRows != d.UniqueKeys {
			t.Errorf("derived table %s: %d rows after FINAL for %d distinct keys: inflated", d.Table, d.FinalRows, d.UniqueKeys)
		}
	}
	for _, o := range r.Oracles {
		if o.Got != o.Want {
			t.Errorf("%s: got %d, want %d", o.Check, o.Got, o.Want)
		}
	}
}

// derive fills r's derived-table figures and oracle checks.
func (r *report) derive(ctx context.Context, t testing.TB, conn *chdb.Conn) {
	t.Helper()
	var err error
	if r.Derived, err = derivedTables(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if r.Oracles, err = derivedOracles(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// waitLoaded polls until every one of n events of seed is in ClickHouse, or
// the deadline passes; it returns the last figures.
func waitLoaded(ctx context.Context, t testing.TB, conn *chdb.Conn, seed uint64, n int, d time.Duration, alive func() string) eventFigures {
	t.Helper()
	deadline := time.Now().Add(d)
	var f eventFigures
	for {
		var err error
		f, err = countEvents(ctx, conn, seed, n)
		if err == nil && f.Unique >= uint64(n) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events loaded after %s (last error: %v)\n%s", f.Unique, n, d, err, alive())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
