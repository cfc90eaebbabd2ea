package plugin

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/tideline-dev/tideline/grafana/internal/seed"
	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// instanceSettings points a data source at a test database.
func instanceSettings(t testing.TB, c chdb.Config) backend.DataSourceInstanceSettings {
	t.Helper()
	j := testenv.DataSourceJSON(t, c)
	return backend.DataSourceInstanceSettings{UID: "tideline", JSONData: j, DecryptedSecureJSONData: map[string]string{"password": c.Password}}
}

func open(t testing.TB, s backend.DataSourceInstanceSettings) *Datasource {
	t.Helper()
	inst, err := NewDatasource(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	d := inst.(*Datasource)
	t.Cleanup(d.Dispose)
	return d
}

func seeded(t *testing.T) (*Datasource, *seed.Data) {
	t.Helper()
	cfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data, err := seed.Seed(ctx, conn, seed.Config{Seed: 1, Customers: 300, Events: 4000, Audiences: 3, Campaigns: 3, From: t0, Span: 6 * time.Hour, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	d := open(t, instanceSettings(t, cfg))
	d.now = func() time.Time { return t0.Add(6 * time.Hour) }
	return d, data
}

// TestFramesMatchOracle runs every query type, unfiltered and filtered,
// over a seeded database and compares each answer with the same numbers
// computed in Go from the seeded rows.
func TestFramesMatchOracle(t *testing.T) {
	d, data := seeded(t)
	ctx := context.Background()
	ranges := []struct {
		name     string
		from, to time.Time
		interval time.Duration
	}{
		{"whole", t0, t0.Add(6 * time.Hour), 10 * time.Minute},
		{"unaligned", t0.Add(47 * time.Minute), t0.Add(3*time.Hour + 5*time.Second), 7 * time.Minute},
	}
	filters := map[query.Type]func(*query.Request){
		query.AudienceSize:         func(r *query.Request) { r.Audiences = []string{"aud_1"} },
		query.Transitions:          func(r *query.Request) { r.Audiences = []string{"aud_2", "aud_0"} },
		query.QualificationLatency: func(r *query.Request) { r.Lanes = []string{"server"} },
		query.CampaignOutcomes:     func(r *query.Request) { r.Campaigns = []string{"camp_1"} },
		query.PipelineLag:          func(r *query.Request) { r.Lanes = []string{"web", "backfill"} },
		query.LiveQualifications:   func(r *query.Request) { r.Audiences = []string{"aud_0"} },
		query.AudienceCompleteness: func(r *query.Request) { r.Audiences = []string{"aud_2", "aud_retired"} },
		query.LateEvents:           func(r *query.Request) { r.Lanes = []string{"backfill", "web"} },
		query.IngestDelay:          func(r *query.Request) { r.Lanes = []string{"server"} },
	}
	for _, rg := range ranges {
		for _, m := range query.EveryModel() {
			typ := m.QueryType
			for _, filtered := range []bool{false, true} {
				r := query.Request{Model: m, From: rg.from, To: rg.to, Interval: rg.interval}
				if filtered {
					if filters[typ] == nil {
						continue
					}
					filters[typ](&r)
				}
				name := rg.name + "/" + string(typ)
				if m.Metric != "" {
					name += "/" + string(m.Metric)
				}
				if filtered {
					name += "/filtered"
				}
				t.Run(name, func(t *testing.T) {
					fs, err := d.Frames(ctx, r)
					if err != nil {
						t.Fatal(err)
					}
					rows := 0
					for _, f := range fs {
						rows += f.Rows()
					}
					if rows == 0 {
						t.Fatal("no rows: the seed should give every query type something to show")
					}
					if err := data.Verify(r, fs); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

func TestAudienceSizeSeriesPerAudience(t *testing.T) {
	d, _ := seeded(t)
	r := query.Request{Model: query.Model{QueryType: query.AudienceSize}, From: t0, To: t0.Add(time.Hour), Interval: time.Minute}
	fs, err := d.Frames(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Fields[1].Labels["audience"]+"="+f.Fields[1].Config.DisplayNameFromDS)
	}
	if strings.Join(got, ",") != "aud_0=Audience 0,aud_1=Audience 1,aud_2=Audience 2" {
		t.Fatalf("series %v: want one per active audience, named", got)
	}
}

func TestLiveFrameCarriesChannel(t *testing.T) {
	d, data := seeded(t)
	r := query.Request{Model: query.Model{QueryType: query.LiveQualifications, Audiences: []string{"aud_1", "aud_0"}}, From: t0, To: t0.Add(6 * time.Hour), Interval: time.Minute}
	fs, err := d.Frames(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Meta == nil || fs[0].Meta.Channel != "ds/tideline/live/aud_0/aud_1" {
		t.Fatalf("meta %+v", fs[0].Meta)
	}
	want := 0
	for _, tr := range data.Transitions {
		if (tr.AudienceID == "aud_0" || tr.AudienceID == "aud_1") && tr.DerivedAtMs >= uint64(r.From.UnixMilli()) && tr.DerivedAtMs < uint64(r.To.UnixMilli()) {
			want++
		}
	}
	if n := fs[0].Rows(); n != min(want, query.LiveRows) {
		t.Fatalf("%d rows, want %d (the newest, at most %d)", n, min(want, query.LiveRows), query.LiveRows)
	}
}

func TestBackfillRunsTableMissing(t *testing.T) {
	cfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	// A database migrated by a tideline older than the backfill.
	if err := conn.Exec(context.Background(), "DROP TABLE IF EXISTS backfill_runs"); err != nil {
		t.Fatal(err)
	}
	d := open(t, instanceSettings(t, cfg))
	_, err := d.Frames(context.Background(), query.Request{Model: query.Model{QueryType: query.BackfillRuns}, From: t0, To: t0.Add(time.Hour)})
	if !errors.Is(err, ErrBackfillTableMissing) || !backend.IsDownstreamError(err) {
		t.Fatalf("err = %v, want ErrBackfillTableMissing marked downstream", err)
	}
	if !strings.Contains(err.Error(), "tideline migrate") {
		t.Errorf("%v: should say what to run", err)
	}
}

func TestQueryDataErrors(t *testing.T) {
	cfg := testenv.ClickHouseConfig(t)
	testenv.ClickHouseWith(t, cfg)
	d := open(t, instanceSettings(t, cfg))
	tr := backend.TimeRange{From: t0, To: t0.Add(time.Hour)}
	resp, err := d.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{
		{RefID: "A", JSON: []byte(`{"queryType":"nope"}`), TimeRange: tr},
		{RefID: "B", JSON: []byte(`{"queryType":"transitions","audiences":["$aud"]}`), TimeRange: tr},
		{RefID: "C", JSON: []byte(`{"queryType":"transitions"}`), TimeRange: tr},
		{RefID: "D", QueryType: "pipeline_lag", JSON: []byte(`{}`), TimeRange: tr},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"A", "B"} {
		r := resp.Responses[ref]
		if r.Error == nil || r.Status != backend.StatusBadRequest || r.ErrorSource != backend.ErrorSourceDownstream {
			t.Errorf("%s: %+v, want a 400 the user can fix", ref, r)
		}
	}
	for _, ref := range []string{"C", "D"} {
		if r := resp.Responses[ref]; r.Error != nil || len(r.Frames) == 0 {
			t.Errorf("%s: %+v, want frames", ref, r)
		}
	}

	// A server that does not answer: every query fails as a downstream error.
	down := instanceSettings(t, chdb.Config{Addr: closedAddr(t), Database: "tideline", User: "default"})
	dd := open(t, down)
	resp, err = dd.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{
		{RefID: "A", JSON: []byte(`{"queryType":"audience_size"}`), TimeRange: tr},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Responses["A"]; r.Error == nil || r.ErrorSource != backend.ErrorSourceDownstream {
		t.Fatalf("unreachable server: %+v, want a downstream error", r)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

type captured struct{ resp *backend.CallResourceResponse }

func (c *captured) Send(r *backend.CallResourceResponse) error { c.resp = r; return nil }

func TestResources(t *testing.T) {
	d, _ := seeded(t)
	for path, want := range map[string]string{
		"audiences": `[{"id":"aud_0","name":"Audience 0"},{"id":"aud_1","name":"Audience 1"},{"id":"aud_2","name":"Audience 2"}]`,
		"campaigns": `[{"id":"camp_0","name":"Campaign 0"},{"id":"camp_1","name":"Campaign 1"},{"id":"camp_2","name":"Campaign 2"}]`,
	} {
		var c captured
		if err := d.CallResource(context.Background(), &backend.CallResourceRequest{Path: path, Method: "GET"}, &c); err != nil {
			t.Fatal(err)
		}
		if c.resp.Status != 200 || string(c.resp.Body) != want {
			t.Errorf("%s: %d %s\nwant %s", path, c.resp.Status, c.resp.Body, want)
		}
	}
	var c captured
	_ = d.CallResource(context.Background(), &backend.CallResourceRequest{Path: "events", Method: "GET"}, &c)
	if c.resp.Status != 404 {
		t.Errorf("unknown resource: %d", c.resp.Status)
	}
}

func TestCheckHealth(t *testing.T) {
	cfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	d := open(t, instanceSettings(t, cfg))
	ctx := context.Background()
	if err := conn.Exec(ctx, "DROP TABLE IF EXISTS backfill_runs"); err != nil {
		t.Fatal(err)
	}
	res, _ := d.CheckHealth(ctx, &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusOk || !strings.Contains(res.Message, "all tideline tables present") || !strings.Contains(res.Message, "backfill_runs") {
		t.Fatalf("migrated database without backfill_runs: %v %q", res.Status, res.Message)
	}
	if err := seed.EnsureBackfillRuns(ctx, conn); err != nil {
		t.Fatal(err)
	}
	res, _ = d.CheckHealth(ctx, &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusOk || strings.Contains(res.Message, "Not yet created") {
		t.Fatalf("complete database: %v %q", res.Status, res.Message)
	}

	if err := conn.Exec(ctx, "DROP TABLE send_ledger"); err != nil {
		t.Fatal(err)
	}
	res, _ = d.CheckHealth(ctx, &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "missing send_ledger") || !strings.Contains(res.Message, "tideline migrate") {
		t.Fatalf("missing table: %v %q", res.Status, res.Message)
	}

	empty := cfg
	empty.Database = "no_such_db_" + testenv.Name(t)
	res, _ = open(t, instanceSettings(t, empty)).CheckHealth(ctx, &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "tideline migrate") {
		t.Fatalf("missing database: %v %q", res.Status, res.Message)
	}

	res, _ = open(t, instanceSettings(t, chdb.Config{Addr: closedAddr(t), Database: "tideline", User: "default"})).CheckHealth(ctx, &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "cannot connect") {
		t.Fatalf("unreachable: %v %q", res.Status, res.Message)
	}
}

func TestSubscribeAndPublish(t *testing.T) {
	d := &Datasource{log: log.DefaultLogger}
	for path, want := range map[string]backend.SubscribeStreamStatus{
		"live/all": backend.SubscribeStreamStatusOK, "live/aud_1/aud_2": backend.SubscribeStreamStatusOK,
		"live": backend.SubscribeStreamStatusNotFound, "other/x": backend.SubscribeStreamStatusNotFound,
	} {
		res, err := d.SubscribeStream(context.Background(), &backend.SubscribeStreamRequest{Path: path})
		if err != nil || res.Status != want {
			t.Errorf("subscribe %s: %+v %v", path, res, err)
		}
	}
	res, err := d.PublishStream(context.Background(), &backend.PublishStreamRequest{Path: "live/all"})
	if err != nil || res.Status != backend.PublishStreamStatusPermissionDenied {
		t.Fatalf("publish: %+v %v", res, err)
	}
}

// TestReadOnlyUser runs the health check and every query type as the
// read-only grafana user of scripts/clickhouse/users.xml (readonly=1 on
// 18.16): the plugin must never need to write, not even to read the schema
// version.
func TestReadOnlyUser(t *testing.T) {
	cfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := seed.Seed(ctx, conn, seed.Config{Seed: 3, Customers: 50, Events: 500, Audiences: 2, Campaigns: 1, From: t0, Span: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ro := cfg
	ro.User, ro.Password = "grafana", "grafana"
	d := open(t, instanceSettings(t, ro))
	res, _ := d.CheckHealth(ctx, &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusOk {
		t.Fatalf("health as grafana: %q (is scripts/clickhouse/users.xml's grafana user loaded? scripts/clickhouse.sh stop && scripts/clickhouse.sh start)", res.Message)
	}
	for _, m := range query.EveryModel() {
		fs, err := d.Frames(ctx, query.Request{Model: m, From: t0, To: t0.Add(time.Hour), Interval: time.Minute})
		if err != nil || len(fs) == 0 {
			t.Errorf("%s %s as grafana: %v", m.QueryType, m.Metric, err)
		}
	}
	var c captured
	if err := d.CallResource(ctx, &backend.CallResourceRequest{Path: "audiences", Method: "GET"}, &c); err != nil || c.resp.Status != 200 {
		t.Errorf("audiences as grafana: %v %+v", err, c.resp)
	}
}
