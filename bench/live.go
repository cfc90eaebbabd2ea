package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/workload"
	"github.com/tideline-dev/tideline/trigger"
)

// warmup is driven before a live scenario's window opens, so the loader's
// group join and the first connections are not counted as latency.
const warmup = 3 * time.Second

// Latency is the end-to-end latency at a fixed rate through the collector's
// HTTP API, the broker and the loader.
type Latency struct {
	// Rate is the target rate; AchievedRate what the collector accepted.
	Rate         float64 `json:"rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Seconds      float64 `json:"seconds"`
	Accepted     int64   `json:"accepted"`
	// Visible is event time → row visible in events, over every lane.
	Visible Percentiles `json:"visible"`
	// ByLane is Visible per lane.
	ByLane map[string]Percentiles `json:"by_lane"`
	// Transition is event time → audience entry or exit derived by the
	// evaluator, for transitions caused by events of the window.
	Transition *Percentiles `json:"transition,omitempty"`
	// Webhook is event time → the campaign's webhook received, for the
	// fires qualified by events of the window.
	Webhook *Percentiles `json:"webhook,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// Backlog is the drain of an accumulated backlog while a live lane flows.
//
// The web lane's loader is stopped while traffic flows at Rate for
// AccumulateSeconds; the server lane's loader keeps running. Then the web
// lane's loader starts ("resume") and drains. DrainSeconds runs from resume
// until every web event accepted before resume is visible;
// RealTimeMultiple is AccumulateSeconds / DrainSeconds, how many seconds of
// traffic one second of draining clears. LiveDuringDrain is the latency of
// server-lane events whose event time falls in the drain, against
// LiveBefore, the same lane before resume.
type Backlog struct {
	Rate              float64     `json:"rate"`
	AccumulateSeconds float64     `json:"accumulate_seconds"`
	BacklogEvents     int64       `json:"backlog_events"`
	FirstRowSeconds   float64     `json:"first_row_seconds"`
	DrainSeconds      float64     `json:"drain_seconds"`
	DrainEventsPerSec float64     `json:"drain_events_per_sec"`
	RealTimeMultiple  float64     `json:"real_time_multiple"`
	Drained           bool        `json:"drained"`
	LiveBefore        Percentiles `json:"live_before"`
	LiveDuringDrain   Percentiles `json:"live_during_drain"`
	Error             string      `json:"error,omitempty"`
}

// pipeline is a collector and loaders as child processes, a driver sending
// the workload at a fixed rate, and a visibility poller, on one database.
type pipeline struct {
	r       *run
	conn    *chdb.Conn
	chc     chdb.Config
	bc      broker.Config
	group   string
	col     *child
	loaders []*child
	// others are the evaluator and the trigger poller, when running.
	others  []*child
	hooks   *hooks
	vis     *visibility
	driver  *workload.Driver
	stopVis context.CancelFunc
	stopDrv context.CancelFunc
	// flowing is when warmUp saw the workload flow.
	flowing time.Time
	wg      sync.WaitGroup
	errs    []error
	mu      sync.Mutex
}

func (r *run) startPipeline(ctx context.Context, name string, views bool, seed uint64) (*pipeline, error) {
	conn, chc, err := r.database(ctx, name, views)
	if err != nil {
		return nil, err
	}
	// Topics of its own: the throughput scenarios' data must not be
	// drained by this scenario's loaders before its own traffic.
	bc := r.kafkaForChildren(r.bc.TopicPrefix + name + ".")
	if err := broker.EnsureTopics(ctx, r.seeds, bc); err != nil {
		conn.Close()
		return nil, err
	}
	p := &pipeline{r: r, conn: conn, chc: chc, bc: bc, group: "bench-" + r.id + "-" + name}
	cc := r.h.Collector
	cc.MetricsAddr = ""
	spec := childSpec{Role: roleCollector, Name: "collector (" + name + ")", Kafka: bc, Seeds: r.seeds, Collector: cc}
	r.profiles(&spec)
	if p.col, err = startChild(ctx, r.h, spec); err != nil {
		conn.Close()
		return nil, err
	}
	p.driver = &workload.Driver{
		Target:  workload.Target{URL: "http://" + p.col.ready.Addr, WebKey: writeKey(cc.Sources, "web"), ServerKey: writeKey(cc.Sources, "server")},
		Gen:     workload.New(workload.Config{Customers: r.cfg.Customers, Seed: seed, MalformedRate: workload.DefaultConfig().MalformedRate}),
		Rate:    r.cfg.Rate,
		Workers: 16,
		Client:  &http.Client{Timeout: 30 * time.Second},
	}
	p.vis = newVisibility(conn, r.cfg.PollInterval)
	vctx, cancel := context.WithCancel(ctx)
	p.stopVis = cancel
	p.goRun(func() error { return p.vis.run(vctx) })
	return p, nil
}

func writeKey(sources []ingest.Source, lane string) string {
	for _, s := range sources {
		if s.Lane == lane {
			return s.WriteKey
		}
	}
	return ""
}

func (p *pipeline) goRun(fn func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := fn(); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
		}
	}()
}

func (p *pipeline) startLoader(ctx context.Context, name string, lanes []string) error {
	c, err := startChild(ctx, p.r.h, p.r.loaderSpec(name, p.group, p.chc, p.bc, lanes))
	if err != nil {
		return err
	}
	p.loaders = append(p.loaders, c)
	return nil
}

// startDownstream starts the evaluator and the trigger poller, with the
// poller's webhooks delivered to a receiver in this process.
func (p *pipeline) startDownstream(ctx context.Context) error {
	h, err := startHooks()
	if err != nil {
		return err
	}
	p.hooks = h
	r := p.r
	ev := childSpec{Role: roleEvaluator, Name: "evaluator", ClickHouse: p.chc, Kafka: p.bc, Seeds: r.seeds, Materialize: r.h.Materialize}
	r.profiles(&ev)
	c, err := startChild(ctx, r.h, ev)
	if err != nil {
		return err
	}
	p.others = append(p.others, c)
	tc := r.h.Trigger
	tc.Group = p.group + "-trigger"
	tr := childSpec{Role: roleTrigger, Name: "trigger poller", ClickHouse: p.chc, Kafka: p.bc, Seeds: r.seeds,
		Trigger: tc, WebhookURL: h.url, WebhookSecret: trigger.NewSecret().String()}
	r.profiles(&tr)
	if c, err = startChild(ctx, r.h, tr); err != nil {
		return err
	}
	p.others = append(p.others, c)
	return nil
}

// drive sends the workload until stopDriving is called.
func (p *pipeline) drive(ctx context.Context) {
	dctx, cancel := context.WithCancel(ctx)
	p.stopDrv = cancel
	p.goRun(func() error { return p.driver.Run(dctx, 0) })
}

func (p *pipeline) accepted(lane string) int64 { return p.driver.Lanes()[lane].Accepted.Load() }

// warmUp waits until the workload flows (every lane has an accepted event
// and each of the visible lanes a loaded one: a fresh broker can take
// seconds before it accepts the first), records when it did in flowing,
// then lets it run for warmup. Measurement windows start after it.
func (p *pipeline) warmUp(ctx context.Context, visible ...string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ok := p.accepted("web") > 0 && p.accepted("server") > 0
		for _, l := range visible {
			ok = ok && p.vis.rows(l) > 0
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the workload did not flow within a minute: accepted web %d, server %d; visible %v", p.accepted("web"), p.accepted("server"), visible)
		}
		if err := sleepAlive(ctx, 50*time.Millisecond, p.alive); err != nil {
			return err
		}
	}
	p.flowing = time.Now()
	return sleepAlive(ctx, warmup, p.alive)
}

// alive reports the first child that died.
func (p *pipeline) alive() error {
	for _, c := range append(append([]*child{p.col}, p.loaders...), p.others...) {
		if err := c.alive(); err != nil {
			return err
		}
	}
	return nil
}

// settle waits until every accepted event is visible (bounded).
func (p *pipeline) settle(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		want := p.accepted("web") + p.accepted("server")
		if p.vis.total() >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d accepted events visible after %s", ErrNotDrained, p.vis.total(), want, within)
		}
		if err := p.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.r.cfg.PollInterval):
		}
	}
}

// stop ends the driver and the children in the order data flows through
// them (collector, loaders, then the downstream children and the webhook
// receiver they deliver to), recording their peak RSS: the collector
// accepts nothing once the loaders are gone.
func (p *pipeline) stop(scenario string) error {
	if p.stopDrv != nil {
		p.stopDrv()
	}
	p.stopVis()
	p.wg.Wait()
	errs := p.errs
	final, err := p.col.stop()
	p.r.memory("collector", scenario, final.PeakRSSKB)
	errs = append(errs, err)
	for _, c := range p.loaders {
		final, err := c.stop()
		p.r.memory("loader", scenario+": "+c.name, final.PeakRSSKB)
		errs = append(errs, err)
	}
	for _, c := range p.others {
		final, err := c.stop()
		p.r.memory(c.name, scenario, final.PeakRSSKB)
		errs = append(errs, err)
	}
	if p.hooks != nil {
		p.hooks.close()
	}
	p.conn.Close()
	return errors.Join(errs...)
}

// latency drives the fixed rate through the whole pipeline for Duration.
func (r *run) latency(ctx context.Context, views bool) {
	l := &Latency{Rate: r.cfg.Rate}
	r.res.Latency = l
	p, err := r.startPipeline(ctx, "latency", views, r.cfg.Seed+1)
	if err != nil {
		l.Error = err.Error()
		return
	}
	err = p.startLoader(ctx, "loader", nil)
	downstream := views && r.h.Views != nil
	if err == nil && downstream {
		err = p.startDownstream(ctx)
	}
	if err == nil {
		r.step("latency: %.0f events/s through the collector for %s (+%s warm-up)", r.cfg.Rate, r.cfg.Duration, warmup)
		p.drive(ctx)
		err = p.warmUp(ctx, "web", "server")
	}
	var from, to time.Time
	var before int64
	if err == nil {
		from, before = time.Now(), p.accepted("web")+p.accepted("server")
		err = sleepAlive(ctx, r.cfg.Duration, p.alive)
		to = time.Now()
		p.stopDrv()
	}
	if err == nil {
		err = p.settle(ctx, 60*time.Second)
	}
	if err == nil && downstream {
		// Transitions and webhooks follow the rows; wait until no new
		// webhook has arrived for a few seconds.
		err = p.quiet(ctx, 5*time.Second, time.Minute)
		if err == nil {
			var tr, wh Percentiles
			if tr, err = transitionLatencies(ctx, p.conn, from, to); err == nil {
				l.Transition = &tr
			}
			if err == nil {
				if wh, err = webhookLatencies(ctx, p.conn, p.hooks.arrivals(), from, to); err == nil {
					l.Webhook = &wh
				}
			}
		}
	}
	l.Seconds = to.Sub(from).Seconds()
	l.Accepted = p.accepted("web") + p.accepted("server") - before
	if l.Seconds > 0 {
		l.AchievedRate = float64(l.Accepted) / l.Seconds
	}
	lat := p.vis.latencies(from, to)
	l.Visible, l.ByLane = lat["all"], map[string]Percentiles{"web": lat["web"], "server": lat["server"]}
	if serr := p.stop("latency"); err == nil {
		err = serr
	}
	if err != nil {
		l.Error = err.Error()
	}
	r.step("latency: event → visible p50 %.0f ms, p95 %.0f ms, p99 %.0f ms over %d events (%.0f ev/s accepted)",
		l.Visible.P50, l.Visible.P95, l.Visible.P99, l.Visible.Count, l.AchievedRate)
	if l.Transition != nil && l.Webhook != nil {
		r.step("latency: event → transition p99 %.0f ms (%d), event → webhook p99 %.0f ms (%d)", l.Transition.P99, l.Transition.Count, l.Webhook.P99, l.Webhook.Count)
	}
}

// quiet waits until no webhook arrived for idle, at most max.
func (p *pipeline) quiet(ctx context.Context, idle, max time.Duration) error {
	deadline := time.Now().Add(max)
	last, since := len(p.hooks.arrivals()), time.Now()
	for time.Since(since) < idle && time.Now().Before(deadline) {
		if err := sleepAlive(ctx, 250*time.Millisecond, p.alive); err != nil {
			return err
		}
		if n := len(p.hooks.arrivals()); n != last {
			last, since = n, time.Now()
		}
	}
	return nil
}

// backlog accumulates web-lane traffic with its loader stopped, then
// resumes it and measures the drain and the server lane's latency meanwhile.
func (r *run) backlog(ctx context.Context, views bool) {
	b := &Backlog{Rate: r.cfg.Rate}
	r.res.Backlog = b
	p, err := r.startPipeline(ctx, "backlog", views, r.cfg.Seed+2)
	if err != nil {
		b.Error = err.Error()
		return
	}
	var live []string
	for _, l := range r.h.Loader.Lanes {
		if l != "web" {
			live = append(live, l)
		}
	}
	err = p.startLoader(ctx, "live loader (all lanes but web)", live)
	var began, from, resume, drained time.Time
	if err == nil {
		r.step("backlog: %.0f events/s for %s with the web lane's loader stopped", r.cfg.Rate, r.cfg.Backlog)
		p.drive(ctx)
		err = p.warmUp(ctx, "server")
		began, from = p.flowing, time.Now()
	}
	if err == nil {
		err = sleepAlive(ctx, r.cfg.Backlog-warmup, p.alive)
	}
	if err == nil {
		resume = time.Now()
		b.AccumulateSeconds = resume.Sub(began).Seconds()
		b.BacklogEvents = p.accepted("web")
		r.step("backlog: resuming the web lane with %d events behind", b.BacklogEvents)
		err = p.startLoader(ctx, "web loader (resumed)", []string{"web"})
	}
	if err == nil {
		deadline := resume.Add(max(time.Minute, r.cfg.Backlog))
		for p.vis.rows("web") < b.BacklogEvents && err == nil {
			if time.Now().After(deadline) {
				err = fmt.Errorf("%w: %d of %d backlog events visible after %s", ErrNotDrained, p.vis.rows("web"), b.BacklogEvents, deadline.Sub(resume))
				break
			}
			if err = p.alive(); err == nil {
				err = sleepAlive(ctx, r.cfg.PollInterval/2, nil)
			}
		}
		drained = time.Now()
		b.Drained = err == nil
	}
	if err == nil {
		// Live traffic goes on a little after the drain, so the server
		// lane's events of the drain's last moments are loaded and counted.
		err = sleepAlive(ctx, 2*time.Second, p.alive)
		p.stopDrv()
	}
	if err == nil {
		err = p.settle(ctx, 60*time.Second)
	}
	if !drained.IsZero() {
		b.DrainSeconds = drained.Sub(resume).Seconds()
		if first, ok := p.vis.firstVisible("web"); ok {
			b.FirstRowSeconds = first.Sub(resume).Seconds()
		}
		if b.DrainSeconds > 0 {
			b.DrainEventsPerSec = float64(b.BacklogEvents) / b.DrainSeconds
			b.RealTimeMultiple = b.AccumulateSeconds / b.DrainSeconds
		}
		b.LiveBefore = p.vis.latencies(from, resume)["server"]
		b.LiveDuringDrain = p.vis.latencies(resume, drained)["server"]
	}
	if serr := p.stop("backlog"); err == nil {
		err = serr
	}
	if err != nil {
		b.Error = err.Error()
	}
	r.step("backlog: %d events drained in %.2fs (%.0f× real time); server lane p99 %.0f ms during the drain, %.0f ms before",
		b.BacklogEvents, b.DrainSeconds, b.RealTimeMultiple, b.LiveDuringDrain.P99, b.LiveBefore.P99)
}

// sleepAlive waits d, failing early when ctx ends or alive reports an error.
func sleepAlive(ctx context.Context, d time.Duration, alive func() error) error {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if err := pause(ctx, alive, time.After(min(left, 250*time.Millisecond))); err != nil {
			return err
		}
	}
}

// pause returns alive's error (when alive is set), else waits for wake,
// failing early when ctx ends.
func pause(ctx context.Context, alive func() error, wake <-chan time.Time) error {
	if alive != nil {
		if err := alive(); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wake:
		return nil
	}
}
