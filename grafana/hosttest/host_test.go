package hosttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/tideline-dev/tideline/grafana/internal/seed"
	"github.com/tideline-dev/tideline/grafana/plugin"
	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

var binary string

// envBinary names a built plugin executable for the tests to run instead of
// building one, e.g. the archive's grafana/app/dist/gpx_tideline_linux_amd64.
const envBinary = "TIDELINE_TEST_PLUGIN_BINARY"

// TestMain builds the plugin binary once, unless envBinary names one. The
// archive's binaries come from grafana/app/Magefile.go (mage and
// grafana-plugin-sdk-go/build); a plain `go build` here saves compiling and
// running mage for every test run, with the build tag the SDK's build adds, so
// the same code is compiled in.
func TestMain(m *testing.M) {
	if binary = os.Getenv(envBinary); binary != "" {
		if _, err := os.Stat(binary); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", envBinary, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "testing the plugin binary %s\n", binary)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "gpx_tideline")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gpx_tideline")
	build := exec.Command("go", "build", "-tags", "arrow_json_stdlib", "-o", binary, "github.com/tideline-dev/tideline/cmd/gpx_tideline")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gpx_tideline:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// host is a running plugin process and its gRPC clients.
type host struct {
	client      *goplugin.Client
	data        grpcplugin.DataClient
	diagnostics grpcplugin.DiagnosticsClient
	resource    grpcplugin.ResourceClient
	stream      grpcplugin.StreamClient
}

// start launches the plugin binary with Grafana's handshake and plugin set.
func start(t *testing.T) *host {
	t.Helper()
	logOut := io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{
			grpcplugin.ProtocolVersion: {
				"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
				"resource":    &grpcplugin.ResourceGRPCPlugin{},
				"data":        &grpcplugin.DataGRPCPlugin{},
				"stream":      &grpcplugin.StreamGRPCPlugin{},
			},
		},
		Cmd:              exec.Command(binary),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "gpx_tideline", Output: logOut, Level: hclog.Debug}),
		StartTimeout:     time.Minute,
	})
	t.Cleanup(c.Kill)
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	h := &host{client: c}
	for name, into := range map[string]any{"data": &h.data, "diagnostics": &h.diagnostics, "resource": &h.resource, "stream": &h.stream} {
		raw, err := rpc.Dispense(name)
		if err != nil {
			t.Fatalf("dispense %s: %v", name, err)
		}
		switch p := into.(type) {
		case *grpcplugin.DataClient:
			*p = raw.(grpcplugin.DataClient)
		case *grpcplugin.DiagnosticsClient:
			*p = raw.(grpcplugin.DiagnosticsClient)
		case *grpcplugin.ResourceClient:
			*p = raw.(grpcplugin.ResourceClient)
		case *grpcplugin.StreamClient:
			*p = raw.(grpcplugin.StreamClient)
		}
	}
	return h
}

// pluginContext is what Grafana sends with every call for a data source.
func pluginContext(t *testing.T, id int64, c chdb.Config) *pluginv2.PluginContext {
	t.Helper()
	j := testenv.DataSourceJSON(t, c)
	return &pluginv2.PluginContext{
		OrgId:    1,
		PluginId: plugin.PluginID,
		DataSourceInstanceSettings: &pluginv2.DataSourceInstanceSettings{
			Id: id, Uid: "tideline", Name: "tideline", JsonData: j,
			DecryptedSecureJsonData: map[string]string{"password": c.Password},
			LastUpdatedMS:           1,
		},
	}
}

var (
	t0   = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	span = 6 * time.Hour
)

// seeded is a test database with the seed inserted.
func seeded(t *testing.T) (chdb.Config, *seed.Data) {
	t.Helper()
	cfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := seed.Seed(ctx, conn, seed.Config{Seed: 7, Customers: 250, Events: 3000, Audiences: 3, Campaigns: 2, From: t0, Span: span, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, d
}

// queryData sends one query and decodes its Arrow frames.
func (h *host) queryData(t *testing.T, pc *pluginv2.PluginContext, q *pluginv2.DataQuery) (data.Frames, *pluginv2.DataResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := h.data.QueryData(ctx, &pluginv2.QueryDataRequest{PluginContext: pc, Queries: []*pluginv2.DataQuery{q}})
	if err != nil {
		t.Fatalf("QueryData: %v", err)
	}
	r := resp.Responses[q.RefId]
	if r == nil {
		t.Fatalf("no response for %s", q.RefId)
	}
	fs, err := data.UnmarshalArrowFrames(r.Frames)
	if err != nil {
		t.Fatalf("decode Arrow frames: %v", err)
	}
	return fs, r
}

func dataQuery(refID string, model query.Model, from, to time.Time, interval time.Duration) *pluginv2.DataQuery {
	j, _ := json.Marshal(struct {
		RefID string `json:"refId"`
		query.Model
	}{refID, model})
	return &pluginv2.DataQuery{
		RefId: refID, QueryType: string(model.QueryType), Json: j, MaxDataPoints: 1000, IntervalMS: interval.Milliseconds(),
		TimeRange: &pluginv2.TimeRange{FromEpochMS: from.UnixMilli(), ToEpochMS: to.UnixMilli()},
	}
}

func TestCheckHealth(t *testing.T) {
	h := start(t)
	cfg := testenv.ClickHouseConfig(t)
	testenv.ClickHouseWith(t, cfg)
	ctx := context.Background()
	res, err := h.diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: pluginContext(t, 1, cfg)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pluginv2.CheckHealthResponse_OK || !strings.Contains(res.Message, "schema version") {
		t.Fatalf("healthy database: %v %q", res.Status, res.Message)
	}
	var details plugin.Health
	if err := json.Unmarshal(res.JsonDetails, &details); err != nil || details.Database != cfg.Database || details.SchemaVersion != details.ExpectedSchema {
		t.Fatalf("details %s: %v", res.JsonDetails, err)
	}

	// ClickHouse unreachable: a port nothing listens on.
	down := cfg
	down.Addr = testenv.FreeAddr(t)
	res, err = h.diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: pluginContext(t, 2, down)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pluginv2.CheckHealthResponse_ERROR || !strings.Contains(res.Message, "cannot connect to ClickHouse at "+down.Addr) {
		t.Fatalf("unreachable ClickHouse: %v %q", res.Status, res.Message)
	}

	// Settings that cannot work: the message says what to fix.
	bad := pluginContext(t, 3, cfg)
	bad.DataSourceInstanceSettings.JsonData = []byte(`{"host":"ch","port":0}`)
	res, err = h.diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: bad})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pluginv2.CheckHealthResponse_ERROR || !strings.Contains(res.Message, "port 0") {
		t.Fatalf("bad settings: %v %q", res.Status, res.Message)
	}
}

// TestQueryDataEveryType sends every query type over gRPC and checks the
// decoded Arrow frames against the seeded rows.
func TestQueryDataEveryType(t *testing.T) {
	h := start(t)
	cfg, d := seeded(t)
	pc := pluginContext(t, 1, cfg)
	from, to := t0.Add(30*time.Minute), t0.Add(span)
	for _, model := range query.EveryModel() {
		typ := model.QueryType
		t.Run(string(typ)+"/"+string(model.Metric), func(t *testing.T) {
			fs, r := h.queryData(t, pc, dataQuery("A", model, from, to, 5*time.Minute))
			if r.Error != "" {
				t.Fatalf("error %q (source %s)", r.Error, r.ErrorSource)
			}
			rows := 0
			for _, f := range fs {
				rows += f.Rows()
			}
			if rows == 0 {
				t.Fatal("no rows")
			}
			req := query.Request{Model: model, From: from, To: to, Interval: 5 * time.Minute, MaxDataPoints: 1000}
			if err := d.Verify(req, fs); err != nil {
				t.Fatal(err)
			}
			if typ == query.LiveQualifications {
				if fs[0].Meta == nil || fs[0].Meta.Channel != "ds/tideline/live/all" {
					t.Fatalf("live frame meta %+v: want the channel ds/tideline/live/all", fs[0].Meta)
				}
			}
		})
	}
}

func TestQueryDataErrorsAreMarked(t *testing.T) {
	h := start(t)
	cfg := testenv.ClickHouseConfig(t)
	testenv.ClickHouseWith(t, cfg)
	down := cfg
	down.Addr = testenv.FreeAddr(t)
	_, r := h.queryData(t, pluginContext(t, 9, down), dataQuery("A", query.Model{QueryType: query.Transitions}, t0, t0.Add(time.Hour), time.Minute))
	if r.Error == "" || r.ErrorSource != "downstream" {
		t.Fatalf("unreachable ClickHouse: error %q source %q, want a downstream error", r.Error, r.ErrorSource)
	}
	_, r = h.queryData(t, pluginContext(t, 1, cfg), dataQuery("A", query.Model{QueryType: "sizes"}, t0, t0.Add(time.Hour), time.Minute))
	if !strings.Contains(r.Error, "unknown query type") || r.Status != 400 {
		t.Fatalf("unknown query type: %q status %d", r.Error, r.Status)
	}
}

func TestResources(t *testing.T) {
	h := start(t)
	cfg, _ := seeded(t)
	for path, want := range map[string]string{
		"audiences": `[{"id":"aud_0","name":"Audience 0"},{"id":"aud_1","name":"Audience 1"},{"id":"aud_2","name":"Audience 2"}]`,
		"campaigns": `[{"id":"camp_0","name":"Campaign 0"},{"id":"camp_1","name":"Campaign 1"}]`,
	} {
		s, err := h.resource.CallResource(context.Background(), &pluginv2.CallResourceRequest{PluginContext: pluginContext(t, 1, cfg), Path: path, Method: "GET", Url: path})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != 200 || string(res.Body) != want {
			t.Errorf("GET %s: %d %s\nwant %s", path, res.Code, res.Body, want)
		}
	}
}

// TestLiveStream subscribes to one audience's channel, starts the stream,
// inserts a transition of another audience and then one of the watched
// audience, and waits for the watched one to arrive (generous deadline:
// this asserts delivery, not speed; the time it took is logged).
func TestLiveStream(t *testing.T) {
	h := start(t)
	cfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	pc := pluginContext(t, 1, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The channel comes from the panel's query, as in Grafana.
	fs, r := h.queryData(t, pc, dataQuery("A", query.Model{QueryType: query.LiveQualifications, Audiences: []string{"vip"}}, time.Now().Add(-time.Hour), time.Now(), time.Minute))
	if r.Error != "" || fs[0].Meta == nil || fs[0].Meta.Channel != "ds/tideline/live/vip" {
		t.Fatalf("live query: %q %+v", r.Error, fs[0].Meta)
	}
	path := strings.TrimPrefix(fs[0].Meta.Channel, "ds/tideline/")

	sub, err := h.stream.SubscribeStream(ctx, &pluginv2.SubscribeStreamRequest{PluginContext: pc, Path: path})
	if err != nil || sub.Status != pluginv2.SubscribeStreamResponse_OK {
		t.Fatalf("subscribe %s: %v %v", path, sub, err)
	}
	bad, err := h.stream.SubscribeStream(ctx, &pluginv2.SubscribeStreamRequest{PluginContext: pc, Path: "other/vip"})
	if err != nil || bad.Status != pluginv2.SubscribeStreamResponse_NOT_FOUND {
		t.Fatalf("subscribe to a path the plugin does not serve: %v %v", bad, err)
	}
	pub, err := h.stream.PublishStream(ctx, &pluginv2.PublishStreamRequest{PluginContext: pc, Path: path, Data: []byte(`{}`)})
	if err != nil || pub.Status != pluginv2.PublishStreamResponse_PERMISSION_DENIED {
		t.Fatalf("publish: %v %v, want permission denied", pub, err)
	}

	stream, err := h.stream.RunStream(ctx, &pluginv2.RunStreamRequest{PluginContext: pc, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	packets := make(chan *data.Frame)
	go func() {
		// Ends when the stream does: the test's ctx is cancelled on return.
		defer close(packets)
		for {
			p, err := stream.Recv()
			if err != nil {
				return
			}
			var f data.Frame
			if err := json.Unmarshal(p.Data, &f); err != nil {
				t.Errorf("decode stream packet: %v", err)
				return
			}
			select {
			case packets <- &f:
			case <-ctx.Done():
				return
			}
		}
	}()
	// RunStream starts its cursor when the plugin gets the call; rows derived
	// before that are the panel's history. These are stamped a minute ahead,
	// so however late the plugin starts its stream on a busy machine, they
	// are new to it.
	now := uint64(time.Now().Add(time.Minute).UnixMilli())
	other := seed.Transition{AudienceID: "regular", CustomerID: "c_other", Episode: 1, Kind: "entered", EventTimeMs: now - 900, IngestTimeMs: now - 400, DerivedAtMs: now, Lane: "web"}
	want := seed.Transition{AudienceID: "vip", CustomerID: "c_live", Episode: 1, Kind: "entered", EventTimeMs: now - 1200, IngestTimeMs: now - 300, DerivedAtMs: now + 1, Lane: "server"}
	if err := seed.InsertTransitions(ctx, conn, []seed.Transition{other}); err != nil {
		t.Fatal(err)
	}
	if err := seed.InsertTransitions(ctx, conn, []seed.Transition{want}); err != nil {
		t.Fatal(err)
	}
	inserted := time.Now()
	for {
		select {
		case f, ok := <-packets:
			if !ok {
				t.Fatal("stream ended before the transition arrived")
			}
			for i := 0; i < f.Rows(); i++ {
				aud, cust := f.Fields[1].At(i).(string), f.Fields[3].At(i).(string)
				if aud != "vip" {
					t.Fatalf("stream of live/vip pushed a row of audience %s", aud)
				}
				if cust == "c_live" {
					if lat := f.Fields[7].At(i).(int64); lat != 1201 {
						t.Errorf("latency %d, want 1201", lat)
					}
					t.Logf("transition arrived %s after its insert", time.Since(inserted).Round(time.Millisecond))
					return
				}
			}
		case <-ctx.Done():
			t.Fatal("the inserted transition never arrived on the stream")
		}
	}
}
