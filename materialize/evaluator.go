package materialize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tideline-dev/tideline/internal/chdb"
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
	// Audiences evaluated.
	Audiences int
	// Touches are the customer_touches rows handled: each touch is handled
	// when first seen and once more when settled (Config.TouchSettle).
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
}

// Evaluator keeps audience membership and transitions current. Each pass
// reads the customers touched since its cursor and those whose windows an
// advancing watermark can change, evaluates the applied audiences for them
// as of the watermark, and writes a transition for every membership change.
// Run one evaluator per database (or per evaluator_id): two with the same
// id repeat each other's work, which is harmless but wasted.
type Evaluator struct {
	conn    *chdb.Conn
	cfg     Config
	log     *slog.Logger
	metrics *evalMetrics
	touches *touchReader

	state       *evalState
	savedAt     time.Time
	lastVersion uint64
	lastHouse   time.Time
	lastSkipped string

	lastCompleteness string
	completenessAt   time.Time
}

// NewEvaluator prepares an evaluator; reg may be nil.
func NewEvaluator(conn *chdb.Conn, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Evaluator{
		conn:    conn,
		cfg:     cfg,
		log:     log,
		metrics: newEvalMetrics(reg),
		touches: newTouchReader(uint32(cfg.TouchOverlap/time.Second), uint32(cfg.TouchSettle/time.Second), cfg.MaxTouches),
	}, nil
}

// Run evaluates every Interval until ctx is cancelled, backing off after
// errors (a ClickHouse outage is waited out, not fatal). An error no retry
// cures (chdb.Retryable: a missing table or column) ends Run with what to fix.
func (e *Evaluator) Run(ctx context.Context) error {
	e.log.Info("audience evaluator started", "evaluator", e.cfg.EvaluatorID, "interval", e.cfg.Interval, "lanes", e.cfg.Lanes)
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
				e.log.Debug("evaluation pass", "as_of", time.UnixMilli(int64(st.AsOfMs)).UTC(), "customers", st.Customers, "entered", st.Entered, "exited", st.Exited, "full_sweep", st.FullSweep, "took", st.Duration)
			}
		}
		timer.Reset(wait)
	}
}

// evalState is the evaluator's durable position.
type evalState struct {
	cursor    uint32
	asOf      uint64
	signature string
	// times are the evaluation times by key (eagerKey, timeKey(lanes)).
	times map[string]uint64
}

func (e *Evaluator) loadState(ctx context.Context) (*evalState, error) {
	rows, err := e.conn.Query(ctx, `SELECT toUInt32(argMax(touch_cursor, updated_at_ms)), argMax(as_of_ms, updated_at_ms), argMax(audiences_signature, updated_at_ms), max(updated_at_ms)
FROM evaluator_state WHERE evaluator = ? GROUP BY evaluator`, e.cfg.EvaluatorID)
	if err != nil {
		return nil, fmt.Errorf("read evaluator_state (is the schema migrated? tideline migrate): %w", err)
	}
	defer rows.Close()
	st := &evalState{times: map[string]uint64{}}
	for rows.Next() {
		var updated uint64
		if err := rows.Scan(&st.cursor, &st.asOf, &st.signature, &updated); err != nil {
			return nil, fmt.Errorf("scan evaluator_state: %w", err)
		}
		e.lastVersion = max(e.lastVersion, updated)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read evaluator_state: %w", err)
	}
	trows, err := e.conn.Query(ctx, `SELECT time_key, argMax(as_of_ms, updated_at_ms) FROM evaluator_times WHERE evaluator = ? GROUP BY time_key`, e.cfg.EvaluatorID)
	if err != nil {
		return nil, fmt.Errorf("read evaluator_times: %w", err)
	}
	defer trows.Close()
	for trows.Next() {
		var k string
		var t uint64
		if err := trows.Scan(&k, &t); err != nil {
			return nil, fmt.Errorf("scan evaluator_times: %w", err)
		}
		st.times[k] = t
	}
	return st, trows.Err()
}

func (e *Evaluator) saveState(ctx context.Context, st *evalState) error {
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO evaluator_state (evaluator, touch_cursor, as_of_ms, audiences_signature, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare evaluator_state insert: %w", err)
	}
	if err := b.Append(e.cfg.EvaluatorID, time.Unix(int64(st.cursor), 0), st.asOf, st.signature, e.version()); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append evaluator_state: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write evaluator_state: %w", err)
	}
	if len(st.times) == 0 {
		return nil
	}
	tb, err := e.conn.PrepareBatch(ctx, "INSERT INTO evaluator_times (evaluator, time_key, as_of_ms, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare evaluator_times insert: %w", err)
	}
	v := e.version()
	for k, t := range st.times {
		if err := tb.Append(e.cfg.EvaluatorID, k, t, v); err != nil {
			_ = tb.Abort()
			return fmt.Errorf("append evaluator_times: %w", err)
		}
	}
	if err := tb.Send(); err != nil {
		return fmt.Errorf("write evaluator_times: %w", err)
	}
	return nil
}

// version is a row version for ReplacingMergeTree tables: now, and always
// above the previous one even if the clock steps back.
func (e *Evaluator) version() uint64 {
	v := max(chdb.NowMs(), e.lastVersion+1)
	e.lastVersion = v
	return v
}

// LaneWatermarks reads every lane's watermark: everything the lane
// received before it is in ClickHouse.
func LaneWatermarks(ctx context.Context, conn *chdb.Conn) (map[string]uint64, error) {
	rows, err := conn.Query(ctx, "SELECT lane, watermark_ms FROM lane_watermarks")
	if err != nil {
		return nil, fmt.Errorf("read lane_watermarks: %w", err)
	}
	defer rows.Close()
	got := map[string]uint64{}
	for rows.Next() {
		var lane string
		var wm uint64
		if err := rows.Scan(&lane, &wm); err != nil {
			return nil, fmt.Errorf("scan lane_watermarks: %w", err)
		}
		got[lane] = wm
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lane_watermarks: %w", err)
	}
	return got, nil
}

// Watermark is the lowest watermark among lanes: everything those lanes
// received before it is in ClickHouse. A lane without a watermark yet counts
// as 0, since nothing of it is known to be loaded; ok is false until every
// lane has one. The evaluator (per audience, over the lanes that feed it),
// the trigger poller and backfill all decide by this one rule.
func Watermark(ctx context.Context, conn *chdb.Conn, lanes []string) (ms uint64, ok bool, err error) {
	got, err := LaneWatermarks(ctx, conn)
	if err != nil {
		return 0, false, err
	}
	ms, _ = laneTime(lanes, got)
	return ms, ms > 0, nil
}

func planSignature(p *Plan) string {
	if len(p.Audiences) == 0 {
		return ""
	}
	parts := make([]string, len(p.Audiences))
	for i, c := range p.Audiences {
		parts[i] = c.Audience.ID + ":" + c.Version
	}
	sort.Strings(parts)
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(h[:])[:16]
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
	plan, skipped, err := LoadApplied(ctx, e.conn)
	if err != nil {
		return stats, err
	}
	if len(skipped) > 0 && skipped.Error() != e.lastSkipped {
		e.lastSkipped = skipped.Error()
		e.log.Error("applied audiences that no longer compile are not evaluated; fix and re-apply them", "err", skipped)
	}
	stats.Audiences = len(plan.Audiences)
	wms, err := LaneWatermarks(ctx, e.conn)
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
	if e.state == nil {
		if e.state, err = e.loadState(ctx); err != nil {
			return stats, err
		}
		e.touches.reset()
	}
	carried, err := inputLanes(ctx, e.conn)
	if err != nil {
		return stats, err
	}
	pc := newPass(plan, e.state, wms, freshest, carried, e.cfg.Lanes)
	pc.touchesOf = map[string][]touch{}
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
	next := &evalState{cursor: cursor, asOf: pc.eager, signature: sig, times: pc.times}
	if len(plan.Audiences) == 0 {
		e.housekeeping(ctx)
		return stats, e.commit(ctx, next, false)
	}

	raw := map[string]bool{}
	var relinked []string
	for _, t := range touches {
		raw[t.customer] = true
		pc.touchesOf[t.customer] = append(pc.touchesOf[t.customer], t)
		if t.alias {
			relinked = append(relinked, t.customer)
		}
	}
	var more []string
	if full {
		more, err = e.allCustomers(ctx)
	} else {
		more, err = e.windowCandidates(ctx, pc)
	}
	if err != nil {
		e.touches.reset()
		return stats, err
	}
	for _, id := range more {
		raw[id] = true
	}
	rawIDs := make([]string, 0, len(raw))
	for id := range raw {
		rawIDs = append(rawIDs, id)
	}
	sort.Strings(rawIDs)
	sort.Strings(relinked)
	res, err := resolve(ctx, e.conn, rawIDs, relinked)
	if err != nil {
		e.touches.reset()
		return stats, err
	}
	customers := res.customers()
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
	if err := e.recordCompleteness(ctx, pc); err != nil {
		e.touches.reset()
		return stats, err
	}
	e.housekeeping(ctx)
	return stats, e.commit(ctx, next, full || stats.Entered+stats.Exited > 0)
}

// stateEvery bounds how often the position is written when nothing else
// changed: a restart repeats at most this much work, which writes nothing
// new, and the state table does not get a part every pass.
const stateEvery = 5 * time.Second

func (e *Evaluator) commit(ctx context.Context, next *evalState, wrote bool) error {
	if wrote || next.signature != e.state.signature || time.Since(e.savedAt) >= stateEvery {
		if err := e.saveState(ctx, next); err != nil {
			e.touches.reset()
			return err
		}
		e.savedAt = time.Now()
	}
	e.state = next
	return nil
}

// allCustomers lists every customer id with an event, and every id with a
// membership row, for a full sweep.
func (e *Evaluator) allCustomers(ctx context.Context) ([]string, error) {
	out, err := e.conn.Strings(ctx, `SELECT DISTINCT customer_id FROM customer_event_buckets
UNION ALL SELECT DISTINCT customer_id FROM audience_membership`)
	if err != nil {
		return nil, fmt.Errorf("list customers for a full sweep: %w", err)
	}
	return out, nil
}

// pass is when each audience is evaluated in one pass.
type pass struct {
	plan *Plan
	// eager is the freshest lane watermark, prevEager the previous pass's.
	eager, prevEager uint64
	// Per audience, in plan order: the lanes that can change it, the
	// smallest of their watermarks (complete), its previous value, the key
	// it is saved under and the lane that holds it back.
	lanes    [][]string
	complete []uint64
	prev     []uint64
	keys     []string
	heldBy   []string
	// times are this pass's times by key, as saved.
	times map[string]uint64
	// touchesOf are this pass's touches by raw customer id.
	touchesOf map[string][]touch
}

func newPass(p *Plan, st *evalState, wms map[string]uint64, freshest uint64, carried map[inputKey][]string, evaluated []string) *pass {
	pc := &pass{plan: p, times: map[string]uint64{}}
	pc.prevEager = st.times[eagerKey]
	if pc.prevEager == 0 {
		pc.prevEager = st.asOf
	}
	pc.eager = max(freshest, pc.prevEager)
	pc.times[eagerKey] = pc.eager
	// A set of lanes seen for the first time (an input appeared on a new
	// lane) continues from the earliest saved time, so no window that moved
	// meanwhile is missed.
	var fallback uint64
	for k, t := range st.times {
		if k != eagerKey && t > 0 && (fallback == 0 || t < fallback) {
			fallback = t
		}
	}
	for _, c := range p.Audiences {
		ls := audienceLanes(c, carried, evaluated)
		k := timeKey(ls)
		prev, ok := st.times[k]
		if !ok {
			prev = min(fallback, pc.prevEager)
			if fallback == 0 {
				prev = pc.prevEager
			}
		}
		t, held := laneTime(ls, wms)
		t = min(max(t, prev), pc.eager)
		if t >= pc.eager {
			held = ""
		}
		pc.times[k] = t
		pc.lanes = append(pc.lanes, ls)
		pc.complete = append(pc.complete, t)
		pc.prev = append(pc.prev, prev)
		pc.keys = append(pc.keys, k)
		pc.heldBy = append(pc.heldBy, held)
	}
	return pc
}

// windowCandidates are the customers whose conditions can change when the
// evaluation times move without a new event: an input whose event time
// passes into view, or a signal occurrence that leaves a window, between an
// audience's previous time and this pass's (for its eager and its complete
// time). customer_activity keys events by minute, so the ranges are rounded
// out to whole minutes and the evaluation query decides at the exact times.
func (e *Evaluator) windowCandidates(ctx context.Context, pc *pass) ([]string, error) {
	type rng struct{ from, to uint64 } // event time, ms, inclusive
	ranges := map[inputKey][]rng{}
	add := func(c *Compiled, prev, asOf uint64) {
		if asOf <= prev {
			return
		}
		for _, in := range c.inputs() {
			if in == contextInput {
				// customer_activity keeps context and traits as one kind.
				in = traitsInput
			}
			ranges[in] = append(ranges[in], rng{prev + 1, asOf})
		}
		for _, f := range c.Features {
			w := uint64(f.Window / time.Millisecond)
			if w == 0 || asOf <= w {
				continue
			}
			from := uint64(1)
			if prev > w {
				from = prev - w + 1
			}
			k := inputKey{f.Signal.Type, f.Signal.Event}
			ranges[k] = append(ranges[k], rng{from, asOf - w})
		}
	}
	for i, c := range pc.plan.Audiences {
		add(c, pc.prevEager, pc.eager)
		add(c, pc.prev[i], pc.complete[i])
	}
	keys := make([]inputKey, 0, len(ranges))
	for k := range ranges {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].typ+keys[i].event < keys[j].typ+keys[j].event })
	var ors []string
	seen := map[string]bool{}
	for _, k := range keys {
		for _, r := range ranges[k] {
			from := r.from / 60000 * 60
			to := r.to / 1000
			cond := fmt.Sprintf("(type = %s AND event = %s AND minute >= toDateTime(%d) AND minute <= toDateTime(%d))", quote(k.typ), quote(k.event), from, to)
			if !seen[cond] {
				seen[cond] = true
				ors = append(ors, cond)
			}
		}
	}
	if len(ors) == 0 {
		return nil, nil
	}
	out, err := e.conn.Strings(ctx, "SELECT DISTINCT customer_id FROM customer_activity WHERE "+strings.Join(ors, "\n   OR "))
	if err != nil {
		return nil, fmt.Errorf("find customers whose windows moved: %w", err)
	}
	return out, nil
}

// cause is why a membership changed: the message whose arrival made the
// condition take its new value, at the moment it did (for a change only
// time explains, such as a window ending, the moment alone).
type cause struct {
	eventTime, ingestTime uint64
	message, lane         string
	// lookup is set when ingest time and lane must be read from events.
	lookup bool
}

type membership struct {
	member  bool
	episode uint32
}

func (e *Evaluator) readMemberships(ctx context.Context, ids []string) (map[[2]string]membership, error) {
	qctx, err := withIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	rows, err := e.conn.Query(qctx, `SELECT audience_id, customer_id, argMax(member, updated_at_ms), argMax(episode, updated_at_ms)
FROM audience_membership WHERE customer_id IN (SELECT id FROM ids)
GROUP BY audience_id, customer_id`)
	if err != nil {
		return nil, fmt.Errorf("read audience_membership: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]membership{}
	for rows.Next() {
		var aud, cust string
		var m uint8
		var ep uint32
		if err := rows.Scan(&aud, &cust, &m, &ep); err != nil {
			return nil, fmt.Errorf("scan audience_membership: %w", err)
		}
		out[[2]string{aud, cust}] = membership{member: m == 1, episode: ep}
	}
	return out, rows.Err()
}

// change is one membership change to write.
type change struct {
	audience, customer string
	entered            bool
	episode            uint32
	cause              cause
	members            []string
	// index is the audience's position in the plan; until is the moment
	// the new value was established at (the time it was decided as of).
	index int
	until uint64
	// redate marks a membership that did not change but whose date late
	// data may have moved: it is written only if its date differs.
	redate bool
	// recorded is a redate's current date, and floor the earliest event
	// time among the customer's touches: no instant before it can have
	// changed its value.
	recorded dated
	floor    uint64
}

// evalRow is a customer evaluated at one moment: m_<i> per audience.
type evalRow struct {
	customer string
	t        uint64
	member   []uint8
}

// evalAt evaluates every audience for the given (customer, t, te) rows.
func (e *Evaluator) evalAt(ctx context.Context, pc *pass, res *resolution, rows [][3]any) (map[string]map[uint64][]uint8, error) {
	out := map[string]map[uint64][]uint8{}
	if len(rows) == 0 {
		return out, nil
	}
	bt, err := ext.NewTable(batchTable, ext.Column("member_id", "String"), ext.Column("customer_id", "String"), ext.Column("linked_ms", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("external batch table: %w", err)
	}
	tt, err := ext.NewTable(timesTable, ext.Column("customer_id", "String"), ext.Column("t", "UInt64"), ext.Column("te", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("external times table: %w", err)
	}
	seen := map[string]bool{}
	low := uint64(0)
	for i, r := range rows {
		c := r[0].(string)
		if !seen[c] {
			seen[c] = true
			for _, m := range res.members[c] {
				if err := bt.Append(m, c, res.linkedMs(m)); err != nil {
					return nil, fmt.Errorf("external batch table: %w", err)
				}
			}
		}
		if err := tt.Append(r[0], r[1], r[2]); err != nil {
			return nil, fmt.Errorf("external times table: %w", err)
		}
		if t := r[1].(uint64); i == 0 || t < low {
			low = t
		}
	}
	q := pc.plan.evalQuery(runLow(low))
	result, err := e.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(bt, tt)), q)
	if err != nil {
		return nil, fmt.Errorf("evaluate audiences for %d customers: %w", len(seen), err)
	}
	defer result.Close()
	for result.Next() {
		row := evalRow{member: make([]uint8, len(pc.plan.Audiences))}
		dest := []any{&row.customer, &row.t}
		for i := range row.member {
			dest = append(dest, &row.member[i])
		}
		if err := result.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan audience evaluation: %w", err)
		}
		if out[row.customer] == nil {
			out[row.customer] = map[uint64][]uint8{}
		}
		out[row.customer][row.t] = row.member
	}
	if err := result.Err(); err != nil {
		return nil, fmt.Errorf("evaluate audiences: %w", err)
	}
	return out, nil
}

func (e *Evaluator) evaluateBatch(ctx context.Context, pc *pass, customers []string, res *resolution) (entered, exited int, err error) {
	times := []uint64{pc.eager}
	for _, t := range pc.complete {
		if !slices.Contains(times, t) {
			times = append(times, t)
		}
	}
	var rows [][3]any
	for _, c := range customers {
		for _, t := range times {
			rows = append(rows, [3]any{c, t, pc.eager})
		}
	}
	results, err := e.evalAt(ctx, pc, res, rows)
	if err != nil {
		return 0, 0, err
	}
	have, err := e.readMemberships(ctx, customers)
	if err != nil {
		return 0, 0, err
	}
	var changes []change
	for _, c := range customers {
		r := results[c]
		if r == nil {
			continue
		}
		for i, a := range pc.plan.Audiences {
			eager, complete := r[pc.eager][i] == 1, r[pc.complete[i]][i] == 1
			h := have[[2]string{a.Audience.ID, c}]
			want := decide(a.Direction, h.member, eager, complete)
			if want == h.member {
				continue
			}
			until := pc.complete[i]
			if eager == want {
				until = pc.eager
			}
			ch := change{audience: a.Audience.ID, customer: c, entered: want, episode: h.episode, members: res.members[c], index: i, until: until}
			if want {
				ch.episode++
			}
			changes = append(changes, ch)
		}
	}
	redates := pc.redates(customers, res, results, have)
	recorded, err := e.recordedDates(ctx, redates)
	if err != nil {
		return 0, 0, err
	}
	for _, ch := range redates {
		// Only an input, or an event before the recorded date (which can
		// move when the customer's history begins), can move the date.
		d, ok := recorded[ch.key()]
		if ok && (pc.touchedInput(pc.plan.Audiences[ch.index], ch.members) || pc.earliestTouch(ch.members) < d.t) {
			ch.recorded, ch.floor = d, pc.earliestTouch(ch.members)
			changes = append(changes, ch)
		}
	}
	if err := e.date(ctx, pc, res, changes); err != nil {
		return 0, 0, err
	}
	kept := changes[:0]
	for _, ch := range changes {
		if !ch.redate || recorded[ch.key()] != (dated{ch.cause.eventTime, ch.cause.message}) {
			kept = append(kept, ch)
		}
	}
	changes = kept
	if err := e.write(ctx, changes); err != nil {
		return 0, 0, err
	}
	for _, ch := range changes {
		if ch.redate {
			continue
		}
		if ch.entered {
			entered++
		} else {
			exited++
		}
	}
	return entered, exited, nil
}

// redates are the memberships of customers that stay as they are but were
// touched by an input of the audience with an event time the pass can see:
// a late event can move the moment the current entry (or exit) began, and
// the transition must say when it truly did, as a replay would.
func (pc *pass) redates(customers []string, res *resolution, results map[string]map[uint64][]uint8, have map[[2]string]membership) []change {
	var out []change
	for _, c := range customers {
		r := results[c]
		if r == nil {
			continue
		}
		for i, a := range pc.plan.Audiences {
			h := have[[2]string{a.Audience.ID, c}]
			if h.episode == 0 || pc.earliestTouch(res.members[c]) > pc.eager {
				continue
			}
			eager := r[pc.eager][i] == 1
			if decide(a.Direction, h.member, eager, r[pc.complete[i]][i] == 1) != h.member {
				continue
			}
			until := pc.complete[i]
			if eager == h.member {
				until = pc.eager
			}
			out = append(out, change{audience: a.Audience.ID, customer: c, entered: h.member, episode: h.episode, members: res.members[c], index: i, until: until, redate: true})
		}
	}
	return out
}

// touchedInput says whether one of members was touched in this pass by an
// input of a visible as of the eager time.
func (pc *pass) touchedInput(a *Compiled, members []string) bool {
	for _, m := range members {
		for _, t := range pc.touchesOf[m] {
			if t.eventTime > pc.eager {
				continue
			}
			if t.hasTraits && len(a.Attributes) > 0 {
				return true
			}
			for _, s := range a.Signals() {
				if s.Type == t.typ && s.Event == t.event {
					return true
				}
			}
		}
	}
	return false
}

// earliestTouch is the earliest event time among the touches of members.
func (pc *pass) earliestTouch(members []string) uint64 {
	var out uint64 = math.MaxUint64
	for _, m := range members {
		for _, t := range pc.touchesOf[m] {
			out = min(out, t.eventTime)
		}
	}
	return out
}

// transitionKey identifies an audience_transitions row.
type transitionKey struct {
	audience, customer string
	episode            uint32
	kind               string
}

func (ch *change) key() transitionKey {
	kind := "exited"
	if ch.entered {
		kind = "entered"
	}
	return transitionKey{ch.audience, ch.customer, ch.episode, kind}
}

// dated is a transition's date: when, and by which message.
type dated struct {
	t   uint64
	msg string
}

// recordedDates reads the recorded dates of the transitions of changes.
func (e *Evaluator) recordedDates(ctx context.Context, changes []change) (map[transitionKey]dated, error) {
	out := map[transitionKey]dated{}
	var ids []string
	for _, ch := range changes {
		if !slices.Contains(ids, ch.customer) {
			ids = append(ids, ch.customer)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	qctx, err := withIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	rows, err := e.conn.Query(qctx, `SELECT audience_id, customer_id, episode, kind, argMax(event_time_ms, derived_at_ms), argMax(message_id, derived_at_ms)
FROM audience_transitions WHERE customer_id IN (SELECT id FROM ids)
GROUP BY audience_id, customer_id, episode, kind`)
	if err != nil {
		return nil, fmt.Errorf("read the transitions to re-date: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k transitionKey
		var d dated
		if err := rows.Scan(&k.audience, &k.customer, &k.episode, &k.kind, &d.t, &d.msg); err != nil {
			return nil, fmt.Errorf("scan transitions: %w", err)
		}
		out[k] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the transitions to re-date: %w", err)
	}
	return out, nil
}

// datingPage is how many instants per customer one dating query evaluates;
// most changes are dated by the first page.
const datingPage = 64

// date sets each change's cause: the moment its audience's condition took
// its new value and kept it until the change was decided, with the message
// that made it so. Every instant at which the condition can have changed
// is evaluated, latest first, until one with the old value is found.
func (e *Evaluator) date(ctx context.Context, pc *pass, res *resolution, changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	var ids []string
	for _, ch := range changes {
		if !slices.Contains(ids, ch.customer) {
			ids = append(ids, ch.customer)
		}
	}
	inputs, err := e.readInputs(ctx, pc, res, ids)
	if err != nil {
		return err
	}
	type job struct {
		ch    *change
		cands []instant
		holds []bool
		done  bool
	}
	jobs := make([]*job, len(changes))
	for i := range changes {
		ch := &changes[i]
		in := inputs[ch.customer]
		if in == nil {
			in = &customerInputs{}
		}
		cands := pc.plan.Audiences[ch.index].instants(in, ch.until)
		if ch.redate && ch.floor > ch.recorded.t {
			// Every event new to this pass is later than the recorded
			// date, so the value before the earliest of them is as it was
			// when that date was found: only the instants from there on
			// can break the run, and if none does the date stands.
			cut := len(cands)
			for k, in := range cands {
				if in.t < ch.floor {
					cut = k
					break
				}
			}
			cands = cands[:max(cut, 1)]
		}
		jobs[i] = &job{ch: ch, cands: cands}
	}
	for {
		var rows [][3]any
		wanted := map[string]map[uint64]bool{}
		for _, j := range jobs {
			if j.done {
				continue
			}
			from := len(j.holds)
			for _, in := range j.cands[from:min(from+datingPage, len(j.cands))] {
				if wanted[j.ch.customer] == nil {
					wanted[j.ch.customer] = map[uint64]bool{}
				}
				if !wanted[j.ch.customer][in.t] {
					wanted[j.ch.customer][in.t] = true
					rows = append(rows, [3]any{j.ch.customer, in.t, in.t})
				}
			}
		}
		if len(rows) == 0 {
			return nil
		}
		results, err := e.evalAt(ctx, pc, res, rows)
		if err != nil {
			return fmt.Errorf("date transitions: %w", err)
		}
		for _, j := range jobs {
			if j.done {
				continue
			}
			from := len(j.holds)
			for _, in := range j.cands[from:min(from+datingPage, len(j.cands))] {
				j.holds = append(j.holds, results[j.ch.customer][in.t][j.ch.index] == 1)
			}
			if j.holds[0] != j.ch.entered {
				// Decided on parts evaluated at different moments (eager
				// attributes); the decision time is all that is known.
				j.ch.cause, j.done = cause{eventTime: j.ch.until}, true
				continue
			}
			exhausted := len(j.holds) == len(j.cands)
			if j.ch.redate && j.ch.floor > j.ch.recorded.t && exhausted && !slices.Contains(j.holds, !j.ch.entered) {
				// Unbroken since the earliest new event: the date stands.
				j.ch.cause = cause{eventTime: j.ch.recorded.t, message: j.ch.recorded.msg}
				j.done = true
				continue
			}
			if since, ok := becameAt(j.cands[:len(j.holds)], j.holds, exhausted); ok {
				j.ch.cause = cause{eventTime: since.t, message: since.message, lookup: since.message != ""}
				j.done = true
			}
		}
	}
}

// readInputs reads, for dating, the times of every input of customers.
func (e *Evaluator) readInputs(ctx context.Context, pc *pass, res *resolution, customers []string) (map[string]*customerInputs, error) {
	bt, err := ext.NewTable(batchTable, ext.Column("member_id", "String"), ext.Column("customer_id", "String"), ext.Column("linked_ms", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("external batch table: %w", err)
	}
	out := map[string]*customerInputs{}
	for _, c := range customers {
		in := &customerInputs{attrs: map[string][]occurrenceTimes{}, occs: map[string][]occurrenceTimes{}}
		out[c] = in
		for _, m := range res.members[c] {
			if err := bt.Append(m, c, res.linkedMs(m)); err != nil {
				return nil, fmt.Errorf("external batch table: %w", err)
			}
			if l, ok := res.linked[m]; ok && res.retired[m] {
				in.links = append(in.links, instant{l.timeMs, l.message})
			}
		}
	}
	attrs := pc.plan.queryAttributes()
	var b strings.Builder
	b.WriteString("SELECT customer_id, first_ms")
	for _, a := range attrs {
		fmt.Fprintf(&b, ", arrayMap(x -> x.1, h_%s), arrayMap(x -> x.5, h_%s), arrayMap(x -> x.2, h_%s)", a.Name, a.Name, a.Name)
	}
	for _, s := range pc.plan.Signals {
		fmt.Fprintf(&b, ", arrayMap(x -> x.1, o_%s), arrayMap(x -> x.4, o_%s), arrayMap(x -> x.2, o_%s)", s.ID, s.ID, s.ID)
	}
	b.WriteString("\nFROM\n(\n    " + indentLines(pc.plan.inputsQuery(runLow(0), true), "    ") + "\n)")
	rows, err := e.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(bt)), b.String())
	if err != nil {
		return nil, fmt.Errorf("read the inputs of %d customers: %w", len(customers), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var first uint64
		at := make([][]uint64, len(attrs))
		av := make([][]uint64, len(attrs))
		am := make([][]string, len(attrs))
		ot := make([][]uint64, len(pc.plan.Signals))
		ov := make([][]uint64, len(pc.plan.Signals))
		om := make([][]string, len(pc.plan.Signals))
		dest := []any{&id, &first}
		for i := range attrs {
			dest = append(dest, &at[i], &av[i], &am[i])
		}
		for i := range pc.plan.Signals {
			dest = append(dest, &ot[i], &ov[i], &om[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan inputs: %w", err)
		}
		in := out[id]
		if in == nil {
			continue
		}
		in.firstMs = first
		for i, a := range attrs {
			for k := range at[i] {
				in.attrs[a.Name] = append(in.attrs[a.Name], occurrenceTimes{eventMs: at[i][k], visibleMs: av[i][k], message: am[i][k]})
			}
		}
		for i, s := range pc.plan.Signals {
			for k := range ot[i] {
				in.occs[s.ID] = append(in.occs[s.ID], occurrenceTimes{eventMs: ot[i][k], visibleMs: ov[i][k], message: om[i][k]})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read inputs: %w", err)
	}
	return out, nil
}

// retire takes anonymous ids an identify linked to a user out of every
// audience: their history now counts for the user, from the link on.
func (e *Evaluator) retire(ctx context.Context, pc *pass, ids []string, res *resolution) (int, error) {
	have, err := e.readMemberships(ctx, ids)
	if err != nil {
		return 0, err
	}
	active := map[string]bool{}
	for _, a := range pc.plan.Audiences {
		active[a.Audience.ID] = true
	}
	var changes []change
	for k, h := range have {
		if !h.member || !active[k[0]] {
			continue
		}
		c := cause{eventTime: pc.eager}
		members := []string{k[1]}
		if l, ok := res.linked[k[1]]; ok {
			// The linking identify is an event of the user.
			c = cause{eventTime: l.timeMs, message: l.message, lookup: l.message != ""}
			members = append(members, l.user)
		}
		changes = append(changes, change{audience: k[0], customer: k[1], episode: h.episode, cause: c, members: members})
	}
	sort.Slice(changes, func(i, j int) bool {
		return changes[i].audience+changes[i].customer < changes[j].audience+changes[j].customer
	})
	return len(changes), e.write(ctx, changes)
}

// recordCompleteness writes each audience's completeness when it changed
// in more than its times, and otherwise at most every stateEvery.
func (e *Evaluator) recordCompleteness(ctx context.Context, pc *pass) error {
	shape := make([]string, len(pc.plan.Audiences))
	for i, c := range pc.plan.Audiences {
		shape[i] = c.Audience.ID + "|" + strings.Join(pc.lanes[i], ",") + "|" + c.Direction.String() + "|" + pc.heldBy[i]
	}
	sig := strings.Join(shape, "\n")
	if sig == e.lastCompleteness && time.Since(e.completenessAt) < stateEvery {
		return nil
	}
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO audience_completeness (audience_id, lanes, direction, complete_ms, eager_ms, held_by, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare audience_completeness insert: %w", err)
	}
	now := e.version()
	for i, c := range pc.plan.Audiences {
		if err := b.Append(c.Audience.ID, pc.lanes[i], c.Direction.String(), pc.complete[i], pc.eager, pc.heldBy[i], now); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append audience_completeness: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write audience_completeness: %w", err)
	}
	e.lastCompleteness, e.completenessAt = sig, time.Now()
	for i, c := range pc.plan.Audiences {
		e.metrics.completeness.WithLabelValues(c.Audience.ID).Set(float64(pc.eager-pc.complete[i]) / 1000)
	}
	return nil
}

// lookupCauses fills in ingest time and lane of causes known only by
// message id, from the first delivery of each message in events.
func (e *Evaluator) lookupCauses(ctx context.Context, changes []change) error {
	var ids, msgs []string
	for _, ch := range changes {
		if ch.cause.lookup {
			ids = append(ids, ch.members...)
			msgs = append(msgs, ch.cause.message)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	it, err := idTable("ids", ids)
	if err != nil {
		return err
	}
	mt, err := idTable("msgs", msgs)
	if err != nil {
		return err
	}
	rows, err := e.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(it, mt)), `SELECT message_id, min(ingest_time_ms), argMin(lane, ingest_time_ms)
FROM events WHERE customer_id IN (SELECT id FROM ids) AND message_id IN (SELECT id FROM msgs)
GROUP BY message_id`)
	if err != nil {
		return fmt.Errorf("read the events that caused transitions: %w", err)
	}
	defer rows.Close()
	type found struct {
		ingest uint64
		lane   string
	}
	got := map[string]found{}
	for rows.Next() {
		var m string
		var f found
		if err := rows.Scan(&m, &f.ingest, &f.lane); err != nil {
			return fmt.Errorf("scan causing events: %w", err)
		}
		got[m] = f
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the events that caused transitions: %w", err)
	}
	for i := range changes {
		if c := &changes[i].cause; c.lookup {
			f := got[c.message]
			c.ingestTime, c.lane = f.ingest, f.lane
		}
	}
	return nil
}

// write records changes: transitions first, then memberships, so a
// membership never shows a change its transition lacks.
func (e *Evaluator) write(ctx context.Context, changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	if err := e.lookupCauses(ctx, changes); err != nil {
		return err
	}
	derived := chdb.NowMs()
	tb, err := e.conn.PrepareBatch(ctx, "INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at, redated)")
	if err != nil {
		return fmt.Errorf("prepare audience_transitions insert: %w", err)
	}
	derivedAt := time.UnixMilli(int64(derived))
	for _, ch := range changes {
		kind := "exited"
		if ch.entered {
			kind = "entered"
		}
		c := ch.cause
		if err := tb.Append(ch.audience, ch.customer, ch.episode, kind, c.eventTime, c.ingestTime, derived, c.message, c.lane, derivedAt, boolByte(ch.redate)); err != nil {
			_ = tb.Abort()
			return fmt.Errorf("append transition: %w", err)
		}
	}
	if err := tb.Send(); err != nil {
		return fmt.Errorf("insert %d audience transitions: %w", len(changes), err)
	}
	mb, err := e.conn.PrepareBatch(ctx, "INSERT INTO audience_membership (audience_id, customer_id, member, episode, changed_event_time_ms, changed_ingest_time_ms, derived_at_ms, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare audience_membership insert: %w", err)
	}
	version := e.version()
	for _, ch := range changes {
		if err := mb.Append(ch.audience, ch.customer, boolByte(ch.entered), ch.episode, ch.cause.eventTime, ch.cause.ingestTime, derived, version); err != nil {
			_ = mb.Abort()
			return fmt.Errorf("append membership: %w", err)
		}
	}
	if err := mb.Send(); err != nil {
		return fmt.Errorf("insert %d audience memberships: %w", len(changes), err)
	}
	for _, ch := range changes {
		if ch.redate {
			e.metrics.redated.WithLabelValues(ch.audience).Inc()
			continue
		}
		kind := "exited"
		if ch.entered {
			kind = "entered"
		}
		e.metrics.transitions.WithLabelValues(ch.audience, kind).Inc()
	}
	return nil
}

// housekeeping drops customer_touches partitions older than the retention,
// at most once an hour. Failures are logged: they cost disk, not correctness.
func (e *Evaluator) housekeeping(ctx context.Context) {
	if time.Since(e.lastHouse) < time.Hour {
		return
	}
	e.lastHouse = time.Now()
	cutoff := time.Now().Add(-e.cfg.TouchRetention).UTC().Format("20060102")
	rows, err := e.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = 'customer_touches' AND active")
	if err != nil {
		e.log.Warn("list customer_touches partitions", "err", err)
		return
	}
	var old []uint64
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			break
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err == nil && p < cutoff {
			old = append(old, n)
		}
	}
	rows.Close()
	for _, p := range old {
		if err := e.conn.Exec(ctx, "ALTER TABLE customer_touches DROP PARTITION "+strconv.FormatUint(p, 10)); err != nil {
			e.log.Warn("drop old customer_touches partition", "partition", p, "err", err)
			continue
		}
		e.log.Info("dropped old customer_touches partition", "partition", p)
	}
}

// AudienceSizes returns the number of current members of each active
// audience.
func AudienceSizes(ctx context.Context, conn *chdb.Conn) (map[string]uint64, error) {
	rows, err := conn.Query(ctx, `SELECT audience_id, countIf(m = 1)
FROM
(
    SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m
    FROM audience_membership
    GROUP BY audience_id, customer_id
)
WHERE audience_id IN (SELECT audience_id FROM audiences FINAL WHERE active = 1)
GROUP BY audience_id`)
	if err != nil {
		return nil, fmt.Errorf("count audience members: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("scan audience sizes: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count audience members: %w", err)
	}
	applied, err := ListApplied(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, a := range applied {
		if _, ok := out[a.ID]; a.Active && !ok {
			out[a.ID] = 0
		}
	}
	return out, nil
}
