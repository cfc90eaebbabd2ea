package materialize

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/shares"
)

// Stats describes one evaluation pass.
type Stats struct {
	// AsOfMs is the eager evaluation time (the freshest lane watermark) and
	// PrevAsOfMs the previous pass's, epoch ms.
	AsOfMs, PrevAsOfMs uint64
	// NoWatermark is set when no evaluated lane has a watermark yet; the
	// pass did nothing.
	NoWatermark bool
	// FullSweep is set when every known customer was evaluated: on the
	// first pass and whenever the applied audiences changed.
	FullSweep bool
	// Shards are the customer shards this evaluator owned during the pass
	// (sharding "group"; nil with sharding "none": every customer).
	Shards []int32
	// Audiences evaluated.
	Audiences int
	// Touches are the customer_touches rows handled: each touch is handled
	// when first seen and, unless its insert had finished by then, once
	// more when settled (touchReader).
	Touches int
	// Customers evaluated (resolved customers, plus retired anonymous ids).
	Customers int
	// Entered and Exited count the transitions written.
	Entered, Exited int
	// Complete is each audience's complete time: the smallest watermark of
	// the lanes that feed it, epoch ms. Decisions late data could falsify
	// are made as of it; the others as of AsOfMs, the freshest watermark.
	Complete map[string]uint64
	Duration time.Duration
	// Phases is how long the pass spent reading its inputs (plan,
	// watermarks, lanes and touches), finding candidates, evaluating them,
	// retiring merged ids and recording completeness and its position.
	Phases Phases
}

// Phases splits a pass's Duration.
// Evaluate is split further into Query (the audience query and the
// memberships read), Date (dating the changes) and Write.
type Phases struct {
	Read, Candidates, Evaluate, Retire, Record time.Duration
	Query, Date, Write                         time.Duration
}

// LogValue lists the phases in milliseconds.
func (p Phases) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("read_ms", p.Read.Milliseconds()), slog.Int64("candidates_ms", p.Candidates.Milliseconds()),
		slog.Int64("evaluate_ms", p.Evaluate.Milliseconds()), slog.Int64("retire_ms", p.Retire.Milliseconds()), slog.Int64("record_ms", p.Record.Milliseconds()),
		slog.Int64("query_ms", p.Query.Milliseconds()), slog.Int64("date_ms", p.Date.Milliseconds()), slog.Int64("write_ms", p.Write.Milliseconds()))
}

// Evaluator keeps audience membership and transitions current. Each pass
// reads the customers touched since its cursor and those whose windows an
// advancing watermark can change, evaluates the applied audiences for them
// as of the watermark, and writes a transition for every membership change.
// With sharding "none", run one evaluator per database (or per
// evaluator_id): two with the same id repeat each other's work, which is
// harmless but wasted. With sharding "group", run any number: each
// evaluates the customers of the shards the group gives it (see Join).
type Evaluator struct {
	conn    *chdb.Conn
	cfg     Config
	env     component.Env
	log     *slog.Logger
	metrics *evalMetrics
	touches *touchReader

	// own is the shards this evaluator owns once it joined its group (nil:
	// every customer).
	own *shares.Ownership

	state *evalState
	// stateKeys are the evaluator_state keys state was loaded from and is
	// saved under: the evaluator id, or one per owned shard (stateShards).
	stateKeys   []string
	stateShards []int32
	savedAt     time.Time
	lastVersion uint64
	lastSkipped string

	lastCompleteness string
	completenessAt   time.Time
}

// NewEvaluator prepares an evaluator; env's registry may be nil.
func NewEvaluator(cfg Config, env component.Env) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Evaluator{
		conn:    env.Conn,
		cfg:     cfg,
		env:     env,
		log:     env.Logger(),
		metrics: newEvalMetrics(env.Registry),
		touches: newTouchReader(uint32(cfg.TouchOverlap/time.Second), uint32(cfg.TouchSettle/time.Second), cfg.MaxTouches, env.Conn != nil && env.Conn.Cluster != ""),
	}, nil
}

// Run evaluates every Interval until ctx is cancelled, backing off after
// errors (a ClickHouse outage is waited out, not fatal). An error no retry
// cures (chdb.Retryable: a missing table or column) ends Run with what to fix.
func (e *Evaluator) Run(ctx context.Context) error {
	if err := e.Join(ctx); err != nil {
		return err
	}
	defer e.Leave()
	e.log.Info("audience evaluator started", "evaluator", e.cfg.EvaluatorID, "interval", e.cfg.Interval, "lanes", e.cfg.Lanes, "sharding", e.cfg.Sharding)
	// Housekeeping keeps its own schedule, so dropping partitions never
	// delays a pass; it stops with ctx, and Run returns after it.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.keepHouse(ctx)
	}()
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	backoff := e.cfg.Interval
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		st, err := e.EvaluateOnce(ctx)
		wait := e.cfg.Interval
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !chdb.Retryable(err):
			return fmt.Errorf("audience evaluator: %w", chdb.Permanent(err))
		case err != nil:
			backoff = min(backoff*2, 10*time.Second)
			wait = backoff
			e.log.Warn("evaluation pass failed; retrying", "err", err, "backoff", backoff)
		default:
			backoff = e.cfg.Interval
			if st.Entered+st.Exited > 0 || st.FullSweep {
				e.log.Debug("evaluation pass", "as_of", time.UnixMilli(int64(st.AsOfMs)).UTC(), "customers", st.Customers, "entered", st.Entered, "exited", st.Exited, "full_sweep", st.FullSweep, "touches", st.Touches, "took", st.Duration, "phases", st.Phases)
			}
		}
		timer.Reset(wait)
	}
}

// EvaluateOnce runs one pass and says what it did. Its writes are
// idempotent: a pass repeated after a crash (its position not yet saved)
// finds the memberships it already wrote and writes nothing new.
func (e *Evaluator) EvaluateOnce(ctx context.Context) (Stats, error) {
	start := time.Now()
	st, err := e.evaluate(ctx)
	st.Duration = time.Since(start)
	e.metrics.observe(st, err)
	return st, err
}

func (e *Evaluator) evaluate(ctx context.Context) (Stats, error) {
	var stats Stats
	mark := time.Now()
	lap := func(d *time.Duration) {
		now := time.Now()
		*d += now.Sub(mark)
		mark = now
	}
	if e.own != nil {
		e.metrics.shards.Set(float64(e.own.Owned()))
	}
	plan, skipped, err := LoadApplied(ctx, e.conn)
	if err != nil {
		return stats, err
	}
	if len(skipped) > 0 && skipped.Error() != e.lastSkipped {
		e.lastSkipped = skipped.Error()
		e.log.Error("applied audiences that no longer compile are not evaluated; fix and re-apply them", "err", skipped)
	}
	stats.Audiences = len(plan.Audiences)
	wms, err := laneWatermarks(ctx, e.conn)
	if err != nil {
		return stats, err
	}
	var freshest uint64
	for _, l := range e.cfg.Lanes {
		freshest = max(freshest, wms[l])
	}
	if freshest == 0 {
		stats.NoWatermark = true
		return stats, nil
	}
	if e.own != nil {
		e.own.Lock()
		defer e.own.Unlock()
		owned := e.own.List()
		stats.Shards = owned
		if len(owned) == 0 {
			return stats, nil
		}
		if err := e.takeShards(ctx, owned); err != nil {
			return stats, err
		}
	}
	if e.state == nil {
		keys := e.cfg.positionKeys()
		if e.own != nil {
			keys = e.cfg.keysOf(stats.Shards)
		}
		if e.state, err = e.loadState(ctx, keys); err != nil {
			return stats, err
		}
		e.stateKeys, e.stateShards = keys, stats.Shards
		e.touches.reset()
	}
	carried, err := inputLanes(ctx, e.conn)
	if err != nil {
		return stats, err
	}
	pc := newPass(plan, e.state, wms, freshest, carried, e.cfg.Lanes)
	pc.touchesOf = map[string][]touch{}
	pc.phases = &stats.Phases
	stats.AsOfMs, stats.PrevAsOfMs = pc.eager, pc.prevEager
	stats.Complete = map[string]uint64{}
	for i, c := range plan.Audiences {
		stats.Complete[c.Audience.ID] = pc.complete[i]
	}
	sig := planSignature(plan)
	full := pc.prevEager == 0 || sig != e.state.signature
	stats.FullSweep = full && len(plan.Audiences) > 0

	touches, cursor, err := e.touches.read(ctx, e.conn, e.state.cursor)
	if err != nil {
		// The reader's memory may be ahead of what was processed.
		e.touches.reset()
		return stats, err
	}
	stats.Touches = len(touches)
	lap(&stats.Phases.Read)
	next := &evalState{cursor: cursor, asOf: pc.eager, signature: sig, times: pc.times}
	if len(plan.Audiences) == 0 {
		return stats, e.commit(ctx, next, false)
	}

	res, err := e.candidates(ctx, pc, touches, full)
	if err != nil {
		e.touches.reset()
		return stats, err
	}
	if e.own != nil {
		res.keep(e.own.OwnsCustomer)
	}
	customers := res.customers()
	lap(&stats.Phases.Candidates)
	for i := 0; i < len(customers); i += e.cfg.BatchCustomers {
		batch := customers[i:min(i+e.cfg.BatchCustomers, len(customers))]
		en, ex, err := e.evaluateBatch(ctx, pc, batch, res)
		if err != nil {
			e.touches.reset()
			return stats, err
		}
		stats.Entered += en
		stats.Exited += ex
	}
	lap(&stats.Phases.Evaluate)
	var retired []string
	for id := range res.retired {
		retired = append(retired, id)
	}
	sort.Strings(retired)
	for i := 0; i < len(retired); i += e.cfg.BatchCustomers {
		ex, err := e.retire(ctx, pc, retired[i:min(i+e.cfg.BatchCustomers, len(retired))], res)
		if err != nil {
			e.touches.reset()
			return stats, err
		}
		stats.Exited += ex
	}
	stats.Customers = len(customers) + len(retired)
	lap(&stats.Phases.Retire)
	defer lap(&stats.Phases.Record)
	if e.doesChores() {
		if err := e.recordCompleteness(ctx, pc); err != nil {
			e.touches.reset()
			return stats, err
		}
	}
	return stats, e.commit(ctx, next, full || stats.Entered+stats.Exited > 0)
}
