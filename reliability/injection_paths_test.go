package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
)

// TestInjectionPluginQueries sends every hostile string through every
// filter of every panel query type (what Grafana passes after interpolating
// template variables), and requires each request to be refused or built
// into statements that carry the text only as bound arguments and run, as
// the read-only grafana user, without error and without side effects.
func TestInjectionPluginQueries(t *testing.T) {
	conn := testenv.ClickHouse(t)
	intact := withCanary(t, conn)
	ro := readOnlyUser(t, conn, "grafana", "grafana")
	ctx := context.Background()
	to := time.Now()
	var built, refusedN, ran int
	for _, typ := range query.Types {
		for _, p := range append(slices.Clone(hostile), "$audience", "${campaign:csv}") {
			for _, field := range []string{"audiences", "campaigns", "lanes"} {
				raw, _ := json.Marshal(map[string]any{"queryType": typ, field: []string{p, "web"}})
				m, err := query.ParseModel(raw, "")
				if err != nil {
					refusedN++
					continue
				}
				stmts, err := query.Build(query.Request{Model: m, From: to.Add(-time.Hour), To: to, Interval: time.Minute, MaxDataPoints: 500})
				if err != nil {
					refusedN++
					continue
				}
				built++
				for _, st := range stmts {
					if strings.Contains(st.SQL, p) {
						t.Errorf("%s/%s: %q is in the SQL text of %s, not a bound argument:\n%s", typ, field, p, st.Name, st.SQL)
						continue
					}
					if err := drain(ctx, ro, st.SQL, st.Args...); err != nil {
						t.Errorf("%s/%s %q: statement %s failed: %v", typ, field, p, st.Name, err)
					}
					ran++
				}
			}
		}
	}
	for _, p := range hostile {
		if path, err := query.LivePath([]string{p}); err == nil {
			back, err := query.ParseLivePath(path)
			if err != nil || !slices.Equal(back, []string{p}) {
				t.Errorf("live path of %q does not round-trip: %q -> %v, %v", p, path, back, err)
			}
			st := query.LivePoll(back, 0)
			if strings.Contains(st.SQL, p) {
				t.Errorf("live poll has %q in its SQL text", p)
			}
			if err := drain(ctx, ro, st.SQL, st.Args...); err != nil {
				t.Errorf("live poll for %q: %v", p, err)
			}
		}
	}
	if built == 0 || ran == 0 {
		t.Fatalf("no hostile request reached SQL (%d refused)", refusedN)
	}
	t.Logf("%d hostile requests refused, %d built, %d statements run as grafana", refusedN, built, ran)
	intact()
}

// drain runs a query and reads every row into values of the columns' types.
func drain(ctx context.Context, conn *chdb.Conn, q string, args ...any) error {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
	}
	return rows.Err()
}

// TestInjectionCampaignDefinitions puts hostile text into a campaign's id,
// event name, property name and property value. Ids are refused; the
// others are data: the poller, running the campaign for real, must record a
// fire for the customer whose event carries that exact text and for no one
// else, and leave everything else alone.
func TestInjectionCampaignDefinitions(t *testing.T) {
	for _, p := range hostile {
		src := "id: " + yamlString(p) + "\nname: x\ntrigger:\n  event:\n    name: purchase\nstaleness:\n  budget: 1h\n  late: fire_late\nreeligible_after: 0\ndeliver:\n  kafka_topic: campaign.fires\n"
		if _, err := trigger.ParseCampaign("inj.yaml", []byte(src)); err == nil {
			t.Errorf("campaign id %q accepted", p)
		}
	}
	conn := testenv.ClickHouse(t)
	intact := withCanary(t, conn)
	br := testenv.Embedded(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	const secretEnv = "TIDELINE_RELIABILITY_INJECTION_SECRET_PROBE"
	t.Setenv(secretEnv, trigger.NewSecret().String())
	var cs []*trigger.Campaign
	want := map[string]string{}
	now := time.Now().UTC()
	var rows ingest.EventRows
	for i, p := range hostile {
		for _, kind := range []string{"event", "property", "value"} {
			id := fmt.Sprintf("inj_%s_%d", kind, i)
			event, prop, value := "purchase", "sku", "A-1"
			switch kind {
			case "event":
				event = p
			case "property":
				prop = p
			case "value":
				value = p
			}
			src := fmt.Sprintf("id: %s\nname: x\ntrigger:\n  event:\n    name: %s\n    where:\n      %s: {eq: %s}\nstaleness:\n  budget: 1h\n  late: fire_late\nreeligible_after: 0\ndeliver:\n  webhook:\n    url: %s/%s\n    secret_env: %s\n",
				id, yamlString(event), yamlString(prop), yamlString(value), srv.URL, id, secretEnv)
			c, err := trigger.ParseCampaign(id+".yaml", []byte(src))
			if err != nil {
				t.Logf("%s refused %q: %v", id, trimForLog(p), err)
				continue
			}
			cs = append(cs, c)
			victim := "victim-" + id
			want[id] = victim
			props, _ := json.Marshal(map[string]any{prop: value})
			other, _ := json.Marshal(map[string]any{prop: value + " "})
			at := now.Add(-time.Minute)
			rows.Add(&ingest.Event{MessageID: victim, Type: ingest.TypeTrack, UserID: victim, Event: event, Properties: props, Timestamp: at, ReceivedAt: at}, "web", "events.web", 0, int64(rows.Len()))
			rows.Add(&ingest.Event{MessageID: "bystander-" + id, Type: ingest.TypeTrack, UserID: "bystander-" + id, Event: event, Properties: other, Timestamp: at, ReceivedAt: at}, "web", "events.web", 0, int64(rows.Len()))
		}
	}
	if len(cs) == 0 {
		t.Fatal("every campaign was refused: nothing reached SQL to test")
	}
	cfg := trigger.DefaultConfig()
	cfg.Sharding, cfg.MetricsAddr = "none", ""
	cfg.PollInterval, cfg.CursorInterval, cfg.Overlap = 20*time.Millisecond, 200*time.Millisecond, 5*time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	p, err := pipeline.NewPoller(cfg, cs, pipeline.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The poller stops when cancel is called below.
	go func() { done <- p.Run(ctx) }()
	if err := rows.Insert(context.Background(), conn, chdb.NowMs()); err != nil {
		cancel()
		t.Fatal(err)
	}
	fired := map[string][]string{}
	deadline := time.Now().Add(90 * time.Second)
	for {
		fired = ledgerCustomers(t, conn)
		n := 0
		for id := range want {
			if len(fired[id]) > 0 {
				n++
			}
		}
		if n == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a late, wrong fire would land within a few polls
	fired = ledgerCustomers(t, conn)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("poller: %v", err)
	}
	var missed []string
	for id, victim := range want {
		for _, c := range fired[id] {
			if c != victim {
				t.Errorf("campaign %s fired for %s, whose event does not carry its text", id, c)
			}
		}
		if !slices.Contains(fired[id], victim) {
			missed = append(missed, id)
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		t.Errorf("campaigns accepted but never fired for the customer carrying their exact text: %v", missed)
	}
	t.Logf("%d hostile campaigns ran; none fired for a bystander", len(cs))
	intact()
}

// ledgerCustomers returns, per campaign, the customers with a ledger entry.
func ledgerCustomers(t *testing.T, conn *chdb.Conn) map[string][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT DISTINCT campaign_id, customer_id FROM send_ledger ORDER BY campaign_id, customer_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var c, cust string
		if err := rows.Scan(&c, &cust); err != nil {
			t.Fatal(err)
		}
		out[c] = append(out[c], cust)
	}
	return out
}

// TestInjectionCLIFlags passes hostile text to the command-line flags that
// select data (--campaign of backfill plan and trigger redeliver, the
// explain argument, --lane of export, the database name): each is refused
// with an error or matched as data, and the database is left alone.
func TestInjectionCLIFlags(t *testing.T) {
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	intact := withCanary(t, conn)
	br := testenv.Embedded(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "probe.yaml"), []byte("id: probe\nname: probe\ntrigger:\n  event:\n    name: purchase\nstaleness:\n  budget: 1h\n  late: fire_late\nreeligible_after: 0\ndeliver:\n  kafka_topic: campaign.fires\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"TIDELINE_CLICKHOUSE_ADDR=" + chCfg.Addr, "TIDELINE_CLICKHOUSE_DATABASE=" + chCfg.Database,
		"TIDELINE_KAFKA_MODE=kafka", "TIDELINE_KAFKA_BROKERS=" + strings.Join(br.Seeds, ","),
	}
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339)
	commands := func(p string) [][]string {
		return [][]string{
			{"backfill", "plan", "--from", from, "--to", to, "--campaigns", dir, "--campaign", p, "--out", filepath.Join(dir, "plan.json")},
			{"trigger", "redeliver", "--campaigns", dir, "--campaign", p, "--dry-run"},
			{"campaigns", "explain", "--campaigns", dir, p},
			{"export", "--from", from, "--to", to, "--lane", p, "--out", filepath.Join(dir, "x.parquet")},
			{"migrate", "--clickhouse-database", p},
		}
	}
	run := func(args []string) (string, error, bool) {
		pr := startProc(t, "cli", env, append(args, "--log-level", "error")...)
		select {
		case <-pr.done:
			return pr.logText(), pr.err, true
		case <-time.After(90 * time.Second):
			pr.kill()
			return pr.logText(), pr.err, false
		}
	}
	// The same commands with a harmless unknown name: how each refuses
	// plain data, so a hostile run's failure can be told apart from a
	// failure the text caused.
	control := map[string]string{}
	for _, args := range commands("no_such_name") {
		out, err, _ := run(args)
		name := strings.Join(args[:2], " ")
		control[name] = out
		if err != nil && syntaxError(out) {
			t.Logf("control run of tideline %s fails on its own (a defect unrelated to the flag's text): %s", name, firstLine(out))
		}
	}
	for _, p := range hostile {
		for _, args := range commands(p) {
			name := strings.Join(args[:2], " ")
			out, err, finished := run(args)
			if !finished {
				t.Errorf("tideline %s with %q did not finish", name, trimForLog(p))
				continue
			}
			if err == nil && !strings.Contains(out, "0 selected") && !strings.Contains(control[name], firstLine(out)) {
				t.Logf("tideline %s accepted %q as data: %s", name, trimForLog(p), firstLine(out))
			}
			if syntaxError(out) && strings.Contains(out, payloadFragment(p)) {
				t.Errorf("tideline %s put %q into SQL text:\n%s", name, trimForLog(p), out)
			}
		}
	}
	intact()
}

// syntaxError reports whether a command's output carries a ClickHouse
// syntax error (code 62).
func syntaxError(out string) bool {
	return strings.Contains(out, "code: 62") || strings.Contains(out, "Code: 62")
}

// payloadFragment is a piece of p that would show in a syntax error's
// excerpt of the statement if p had been spliced into it.
func payloadFragment(p string) string {
	for _, f := range []string{"OR 1=1", "DROP TABLE", "OR \\'1", "backslash", "system.tables", "comment", "audience_id !=", "Brien", "\"1\"="} {
		if strings.Contains(p, f) {
			return f
		}
	}
	return p
}

// firstLine is the first line of s.
func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// trimForLog shortens s for messages.
func trimForLog(s string) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
