package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"golang.org/x/sync/errgroup"

	"github.com/tideline-dev/tideline/grafana/frames"
	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// PluginID is the id in plugin.json.
const PluginID = "tideline-audience-datasource"

// maxParallelQueries bounds the queries of one request that run at once: a
// dashboard refresh sends every panel's queries together, and the pool has
// eight connections.
const maxParallelQueries = 4

// Datasource is one configured tideline data source.
type Datasource struct {
	settings Settings
	uid      string
	conn     driver.Conn
	// tls is the pool's TLS configuration (nil without TLS), which
	// CheckHealth uses to say why a server refused the connection.
	tls *tls.Config
	// log is Grafana's plugin logger: the host reads the plugin's stderr in
	// hclog's format, which log/slog does not write.
	log log.Logger
	// now is the clock (tests pin it).
	now func() time.Time
	// poll is how often a live stream reads new transitions.
	poll time.Duration
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ backend.StreamHandler         = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource is the instance factory datasource.Manage calls for each
// data source (and again when its settings change). Invalid settings fail
// here, so CheckHealth shows what to fix; an unreachable server does not:
// the pool connects on first use.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	settings, err := LoadSettings(s)
	if err != nil {
		return nil, err
	}
	o, err := settings.options()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", settings.Addr(), err)
	}
	return &Datasource{
		settings: settings,
		uid:      s.UID,
		conn:     conn,
		tls:      o.TLS,
		log:      log.DefaultLogger.With("datasource", s.UID),
		now:      time.Now,
		poll:     250 * time.Millisecond,
	}, nil
}

// Dispose closes the pool when Grafana drops the instance.
func (d *Datasource) Dispose() {
	if err := d.conn.Close(); err != nil {
		d.log.Warn("close clickhouse", "error", err)
	}
}

// QueryData answers each query of the request; one failing query does not
// fail the others.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxParallelQueries)
	)
	for _, q := range req.Queries {
		wg.Add(1)
		sem <- struct{}{}
		// Each goroutine ends when its query does; ctx (the request's)
		// cancels the query if Grafana gives up.
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := d.query(ctx, q)
			mu.Lock()
			resp.Responses[q.RefID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, q backend.DataQuery) backend.DataResponse {
	model, err := query.ParseModel(q.JSON, q.QueryType)
	if err != nil {
		return badRequest(err)
	}
	r := query.Request{Model: model, From: q.TimeRange.From, To: q.TimeRange.To, Interval: q.Interval, MaxDataPoints: q.MaxDataPoints}
	fs, err := d.Frames(ctx, r)
	if err != nil {
		if errors.Is(err, query.ErrUnknownType) || errors.Is(err, query.ErrTimeRange) || errors.Is(err, query.ErrFilter) || errors.Is(err, query.ErrUnknownMetric) {
			return badRequest(err)
		}
		d.log.Warn("query failed", "queryType", r.QueryType, "refId", q.RefID, "error", err)
		return backend.ErrorResponseWithErrorSource(err)
	}
	return backend.DataResponse{Frames: fs}
}

// badRequest is a query the user can fix in the editor: reported as a
// downstream (user) error, not the plugin's.
func badRequest(err error) backend.DataResponse {
	return backend.DataResponse{Error: err, Status: backend.StatusBadRequest, ErrorSource: backend.ErrorSourceDownstream}
}

// Frames runs the statements of r and converts their rows.
func (d *Datasource) Frames(ctx context.Context, r query.Request) (data.Frames, error) {
	stmts, err := query.Build(r)
	if err != nil {
		return nil, err
	}
	// The statements of a query type are independent and each fills its own
	// part of res, so they run at once: a panel waits for the slowest, not
	// for the sum.
	res := &results{}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range stmts {
		g.Go(func() error {
			err := d.fetch(gctx, s, res)
			if err == nil {
				return nil
			}
			if r.QueryType == query.BackfillRuns && chdb.Code(err) == chdb.CodeUnknownTable {
				return backend.DownstreamError(fmt.Errorf("%w in database %s: the backfill's migration creates it; run `tideline migrate` with a tideline that has `tideline backfill`", ErrBackfillTableMissing, d.settings.Database))
			}
			if !backend.IsPluginError(err) {
				err = downstream(d.settings.Database, err)
			}
			return fmt.Errorf("query %s (%s): %w", r.QueryType, s.Name, err)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	switch r.QueryType {
	case query.AudienceSize:
		return frames.AudienceSize(r, res.sizes, res.audiences), nil
	case query.Transitions:
		return frames.Transitions(r, res.transitions, res.audiences), nil
	case query.QualificationLatency:
		return frames.QualificationLatency(r, res.derive, res.send), nil
	case query.CampaignOutcomes:
		return frames.CampaignOutcomes(r, res.outcomes, res.campaigns), nil
	case query.PipelineLag:
		return frames.PipelineLag(r, res.watermarks, res.delays, res.deadLetters, d.now()), nil
	case query.BackfillRuns:
		return frames.BackfillRuns(res.runs), nil
	case query.AudienceCompleteness:
		return frames.AudienceCompleteness(r, res.completeness, res.audiences, d.now()), nil
	case query.LateEvents:
		return frames.LateEvents(r, res.late), nil
	case query.IngestDelay:
		return frames.IngestDelaySeries(r, res.delaySeries), nil
	case query.AlertMetric:
		var samples []frames.Sample
		switch r.Metric {
		case query.WatermarkAge, query.ConsumerLag, query.DeadLetterRate:
			samples = frames.LaneSamples(r, res.watermarks, res.deadLetters, d.now())
		case query.DeliveryFailures, query.DeliveryDeadLetters:
			samples = frames.CampaignSamples(r, res.outcomes, res.deliveryDeadLetters, res.campaigns)
		case query.EvaluatorLag, query.AudienceHeldBack:
			samples = frames.AudienceSamples(r, res.completeness, d.now())
		}
		return frames.Numeric(r.Metric, samples), nil
	case query.LiveQualifications:
		path, err := query.LivePath(r.Audiences)
		if err != nil {
			return nil, err
		}
		f := frames.Live(res.live, nameMap(res.audiences))
		f.Meta = &data.FrameMeta{Channel: "ds/" + d.uid + "/" + path}
		return data.Frames{f}, nil
	}
	return nil, fmt.Errorf("%w %q", query.ErrUnknownType, r.QueryType)
}

func nameMap(es []frames.Entity) map[string]string {
	m := make(map[string]string, len(es))
	for _, e := range es {
		m[e.ID] = e.Name
	}
	return m
}

// results holds the rows of every statement of one query, by kind.
type results struct {
	sizes        []frames.SizeDelta
	audiences    []frames.Entity
	campaigns    []frames.Entity
	transitions  []frames.TransitionCount
	derive       []frames.Latency
	send         []frames.Latency
	outcomes     []frames.Outcome
	watermarks   []frames.LaneWatermark
	delays       []frames.IngestDelay
	deadLetters  []frames.DeadLetters
	runs         []frames.BackfillRun
	live         []frames.Qualification
	completeness []frames.Completeness
	// deliveryDeadLetters counts trigger dead letters per campaign.
	deliveryDeadLetters []frames.CampaignCount
	late                []frames.LateCount
	delaySeries         []frames.IngestDelayBucket
}

// fetch runs s and appends its rows to res.
func (d *Datasource) fetch(ctx context.Context, s query.Statement, res *results) error {
	return d.each(ctx, s, func(rows driver.Rows) error {
		switch s.Name {
		case query.StmtSizeDeltas:
			var v frames.SizeDelta
			err := rows.Scan(&v.AudienceID, &v.BucketMs, &v.Delta)
			res.sizes = append(res.sizes, v)
			return err
		case query.StmtAudienceNames, query.StmtCampaignNames:
			var v frames.Entity
			var active uint8
			err := rows.Scan(&v.ID, &v.Name, &active)
			v.Active = active == 1
			if s.Name == query.StmtAudienceNames {
				res.audiences = append(res.audiences, v)
			} else {
				res.campaigns = append(res.campaigns, v)
			}
			return err
		case query.StmtTransitions:
			var v frames.TransitionCount
			err := rows.Scan(&v.AudienceID, &v.BucketMs, &v.Entered, &v.Exited)
			res.transitions = append(res.transitions, v)
			return err
		case query.StmtDeriveLatency, query.StmtSendLatency:
			var v frames.Latency
			err := rows.Scan(&v.Lane, &v.BucketMs, &v.N, &v.Q)
			if s.Name == query.StmtDeriveLatency {
				res.derive = append(res.derive, v)
			} else {
				res.send = append(res.send, v)
			}
			return err
		case query.StmtOutcomes:
			var v frames.Outcome
			var failed uint8
			err := rows.Scan(&v.CampaignID, &v.Decision, &v.Reason, &failed, &v.N)
			v.Failed = failed == 1
			res.outcomes = append(res.outcomes, v)
			return err
		case query.StmtLaneWatermarks:
			var v frames.LaneWatermark
			err := rows.Scan(&v.Lane, &v.WatermarkMs, &v.Lag, &v.UpdatedAtMs)
			res.watermarks = append(res.watermarks, v)
			return err
		case query.StmtIngestDelay:
			var v frames.IngestDelay
			err := rows.Scan(&v.Lane, &v.N, &v.Q, &v.Worst)
			res.delays = append(res.delays, v)
			return err
		case query.StmtDeadLetters:
			var v frames.DeadLetters
			err := rows.Scan(&v.Lane, &v.N)
			res.deadLetters = append(res.deadLetters, v)
			return err
		case query.StmtBackfillRuns:
			var v frames.BackfillRun
			err := rows.Scan(&v.RunID, &v.PlanID, &v.State, &v.StartedAtMs, &v.FinishedAtMs, &v.WindowFromMs, &v.WindowToMs,
				&v.EventsReingested, &v.Fired, &v.Skipped, &v.UpdatedAtMs)
			res.runs = append(res.runs, v)
			return err
		case query.StmtCompleteness:
			var v frames.Completeness
			err := rows.Scan(&v.AudienceID, &v.Lanes, &v.Direction, &v.CompleteMs, &v.EagerMs, &v.HeldBy, &v.UpdatedAtMs)
			res.completeness = append(res.completeness, v)
			return err
		case query.StmtDeliveryDeadLetters:
			var v frames.CampaignCount
			err := rows.Scan(&v.CampaignID, &v.N)
			res.deliveryDeadLetters = append(res.deliveryDeadLetters, v)
			return err
		case query.StmtIngestDelaySeries:
			var v frames.IngestDelayBucket
			err := rows.Scan(&v.Lane, &v.BucketMs, &v.N, &v.Q, &v.Worst)
			res.delaySeries = append(res.delaySeries, v)
			return err
		case query.StmtLateEvents:
			var v frames.LateCount
			err := rows.Scan(&v.Lane, &v.Lateness, &v.N)
			res.late = append(res.late, v)
			return err
		case query.StmtLive:
			v, err := scanQualification(rows)
			res.live = append(res.live, v)
			return err
		}
		return fmt.Errorf("no scanner for statement %s", s.Name)
	})
}

func scanQualification(rows driver.Rows) (frames.Qualification, error) {
	var v frames.Qualification
	err := rows.Scan(&v.DerivedAtMs, &v.AudienceID, &v.CustomerID, &v.Kind, &v.Episode, &v.EventTimeMs, &v.IngestTimeMs, &v.Lane)
	return v, err
}

// each runs s and calls fn for every row.
func (d *Datasource) each(ctx context.Context, s query.Statement, fn func(driver.Rows) error) error {
	rows, err := d.conn.Query(ctx, s.SQL, s.Args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			// The statement and its scanner disagree: the plugin's fault.
			return backend.PluginError(fmt.Errorf("scan %s: %w", s.Name, err))
		}
	}
	return rows.Err()
}

// statusFor maps an error to the HTTP status of a resource response.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case backend.IsDownstreamError(err):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}
