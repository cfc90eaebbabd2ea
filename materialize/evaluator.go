package materialize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
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
	// AsOfMs is the evaluation time T (the lane watermark) and PrevAsOfMs
	// the previous pass's, epoch ms.
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
	Duration        time.Duration
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
// errors (a ClickHouse outage is waited out, not fatal).
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
}

func (e *Evaluator) loadState(ctx context.Context) (*evalState, error) {
	rows, err := e.conn.Query(ctx, `SELECT toUInt32(argMax(touch_cursor, updated_at_ms)), argMax(as_of_ms, updated_at_ms), argMax(audiences_signature, updated_at_ms), max(updated_at_ms)
FROM evaluator_state WHERE evaluator = ? GROUP BY evaluator`, e.cfg.EvaluatorID)
	if err != nil {
		return nil, fmt.Errorf("read evaluator_state (is the schema migrated? tideline migrate): %w", err)
	}
	defer rows.Close()
	st := &evalState{}
	for rows.Next() {
		var updated uint64
		if err := rows.Scan(&st.cursor, &st.asOf, &st.signature, &updated); err != nil {
			return nil, fmt.Errorf("scan evaluator_state: %w", err)
		}
		e.lastVersion = max(e.lastVersion, updated)
	}
	return st, rows.Err()
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
	return nil
}

// version is a row version for ReplacingMergeTree tables: now, and always
// above the previous one even if the clock steps back.
func (e *Evaluator) version() uint64 {
	v := max(chdb.NowMs(), e.lastVersion+1)
	e.lastVersion = v
	return v
}

// Watermark is the lowest watermark among lanes: everything those lanes
// received before it is in ClickHouse. A lane without a watermark yet counts
// as 0, since nothing of it is known to be loaded; ok is false until every
// lane has one. The evaluator, the trigger poller and backfill all decide by
// this one rule.
func Watermark(ctx context.Context, conn *chdb.Conn, lanes []string) (ms uint64, ok bool, err error) {
	rows, err := conn.Query(ctx, "SELECT lane, watermark_ms FROM lane_watermarks")
	if err != nil {
		return 0, false, fmt.Errorf("read lane_watermarks: %w", err)
	}
	defer rows.Close()
	got := make(map[string]uint64, len(lanes))
	for rows.Next() {
		var lane string
		var wm uint64
		if err := rows.Scan(&lane, &wm); err != nil {
			return 0, false, fmt.Errorf("scan lane_watermarks: %w", err)
		}
		got[lane] = wm
	}
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("read lane_watermarks: %w", err)
	}
	for i, l := range lanes {
		if wm := got[l]; i == 0 || wm < ms {
			ms = wm
		}
	}
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
	asOf, ok, err := Watermark(ctx, e.conn, e.cfg.Lanes)
	if err != nil {
		return stats, err
	}
	if !ok {
		stats.NoWatermark = true
		return stats, nil
	}
	if e.state == nil {
		if e.state, err = e.loadState(ctx); err != nil {
			return stats, err
		}
		e.touches.reset()
	}
	prev := e.state.asOf
	asOf = max(asOf, prev)
	stats.AsOfMs, stats.PrevAsOfMs = asOf, prev
	sig := planSignature(plan)
	full := prev == 0 || sig != e.state.signature
	stats.FullSweep = full && len(plan.Audiences) > 0

	touches, cursor, err := e.touches.read(ctx, e.conn, e.state.cursor)
	if err != nil {
		// The reader's memory may be ahead of what was processed.
		e.touches.reset()
		return stats, err
	}
	stats.Touches = len(touches)
	next := &evalState{cursor: cursor, asOf: asOf, signature: sig}
	if len(plan.Audiences) == 0 {
		e.housekeeping(ctx)
		return stats, e.commit(ctx, next, false)
	}

	raw := map[string]bool{}
	var relinked []string
	for _, t := range touches {
		raw[t.customer] = true
		if t.alias {
			relinked = append(relinked, t.customer)
		}
	}
	switch {
	case full:
		ids, err := e.allCustomers(ctx)
		if err != nil {
			e.touches.reset()
			return stats, err
		}
		for _, id := range ids {
			raw[id] = true
		}
	case asOf > prev:
		ids, err := e.windowCandidates(ctx, plan, prev, asOf)
		if err != nil {
			e.touches.reset()
			return stats, err
		}
		for _, id := range ids {
			raw[id] = true
		}
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
	pc := newPass(plan, asOf, prev, touches)
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
		ex, err := e.retire(ctx, pc, retired[i:min(i+e.cfg.BatchCustomers, len(retired))])
		if err != nil {
			e.touches.reset()
			return stats, err
		}
		stats.Exited += ex
	}
	stats.Customers = len(customers) + len(retired)
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

// windowCandidates are the customers whose features can change when T moves
// from prev to asOf without a new event: an event of a signal whose time
// passes into view (in (prev, asOf]), or leaves a window (in (prev - W,
// asOf - W]). customer_activity keys events by minute, so the ranges are
// rounded out to whole minutes and the query evaluates the exact times.
func (e *Evaluator) windowCandidates(ctx context.Context, p *Plan, prev, asOf uint64) ([]string, error) {
	type rng struct{ from, to uint64 } // event time, ms, inclusive
	ranges := map[[2]string][]rng{}
	for _, s := range p.Signals {
		k := [2]string{s.Type, s.Event}
		ranges[k] = append(ranges[k], rng{prev + 1, asOf})
	}
	for _, f := range p.windowedFeatures() {
		w := uint64(f.Window / time.Millisecond)
		if asOf <= w {
			continue
		}
		from := uint64(1)
		if prev > w {
			from = prev - w + 1
		}
		k := [2]string{f.Signal.Type, f.Signal.Event}
		ranges[k] = append(ranges[k], rng{from, asOf - w})
	}
	var ors []string
	keys := make([][2]string, 0, len(ranges))
	for k := range ranges {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	seen := map[string]bool{}
	for _, k := range keys {
		for _, r := range ranges[k] {
			from := r.from / 60000 * 60
			to := r.to / 1000
			cond := fmt.Sprintf("(type = %s AND event = %s AND minute >= toDateTime(%d) AND minute <= toDateTime(%d))", quote(k[0]), quote(k[1]), from, to)
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

// audInfo is what cause attribution needs to know about an audience.
type audInfo struct {
	c        *Compiled
	events   map[string]bool // type \x00 event of its signals
	signals  []string
	attrs    []string
	windowed []string // feature columns with a window
}

// pass holds one pass's inputs.
type pass struct {
	plan      *Plan
	asOf      uint64
	prev      uint64
	auds      []*audInfo
	touchesOf map[string][]touch // by raw customer id
	query     string
	nAttrs    int
	nWindowed int
}

func newPass(p *Plan, asOf, prev uint64, touches []touch) *pass {
	pc := &pass{plan: p, asOf: asOf, prev: prev, touchesOf: map[string][]touch{}}
	for _, c := range p.Audiences {
		ai := &audInfo{c: c, events: map[string]bool{}, attrs: c.Attributes}
		for _, s := range c.Signals() {
			ai.events[s.Type+"\x00"+s.Event] = true
			ai.signals = append(ai.signals, s.ID)
		}
		for _, f := range c.Features {
			if f.Window > 0 {
				ai.windowed = append(ai.windowed, f.Column)
			}
		}
		pc.auds = append(pc.auds, ai)
	}
	for _, t := range touches {
		pc.touchesOf[t.customer] = append(pc.touchesOf[t.customer], t)
	}
	pc.query = p.evalQuery(runTimes(asOf, prev))
	pc.nAttrs = len(p.queryAttributes())
	pc.nWindowed = len(p.windowedFeatures())
	return pc
}

// evalRow is one customer's result.
type evalRow struct {
	member   []uint8
	attrTime map[string]uint64
	attrMsg  map[string]string
	lapse    map[string]uint64
	defTime  map[string]uint64
	defMsg   map[string]string
}

// cause is why a membership changed: the event (or, for a time-driven
// change, only the moment).
type cause struct {
	eventTime, ingestTime uint64
	message, lane         string
	// lookup is set when ingest time and lane must be read from events.
	lookup bool
}

func later(t uint64, m string, c *cause) bool {
	return t > c.eventTime || t == c.eventTime && m > c.message
}

// causeOf picks the event that changed customer's membership of a: the
// latest relevant event new to this pass (touched, or whose event time just
// came into view, or that set an attribute the audience reads), else the
// identify that merged an anonymous history into the customer, else the
// moment a window ended.
func (pc *pass) causeOf(a *audInfo, members []string, row *evalRow) cause {
	var best, link cause
	found, linked := false, false
	for _, m := range members {
		for _, t := range pc.touchesOf[m] {
			tc := cause{eventTime: t.eventTime, ingestTime: t.ingestTime, message: t.message, lane: t.lane}
			if a.events[t.typ+"\x00"+t.event] && t.eventTime <= pc.asOf || t.hasTraits && len(a.attrs) > 0 {
				if !found || later(t.eventTime, t.message, &best) {
					best, found = tc, true
				}
			} else if t.link && (!linked || later(t.eventTime, t.message, &link)) {
				link, linked = tc, true
			}
		}
	}
	consider := func(t uint64, m string) {
		if t > 0 && m != "" && (!found || later(t, m, &best)) {
			best = cause{eventTime: t, message: m, lookup: true}
			found = true
		}
	}
	for _, s := range a.signals {
		consider(row.defTime[s], row.defMsg[s])
	}
	for _, at := range a.attrs {
		if row.attrTime[at] > pc.prev {
			consider(row.attrTime[at], row.attrMsg[at])
		}
	}
	switch {
	case found:
		return best
	case linked:
		// Only the merge of an anonymous history explains the change.
		return link
	}
	lapse := uint64(0)
	for _, col := range a.windowed {
		if b := row.lapse[col]; b > 0 && (lapse == 0 || b < lapse) {
			lapse = b
		}
	}
	if lapse == 0 {
		lapse = pc.asOf
	}
	return cause{eventTime: lapse}
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
}

func (e *Evaluator) evaluateBatch(ctx context.Context, pc *pass, customers []string, res *resolution) (entered, exited int, err error) {
	bt, err := ext.NewTable(batchTable, ext.Column("member_id", "String"), ext.Column("customer_id", "String"))
	if err != nil {
		return 0, 0, fmt.Errorf("external batch table: %w", err)
	}
	for _, c := range customers {
		for _, m := range res.members[c] {
			if err := bt.Append(m, c); err != nil {
				return 0, 0, fmt.Errorf("external batch table: %w", err)
			}
		}
	}
	rows, err := e.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(bt)), pc.query)
	if err != nil {
		return 0, 0, fmt.Errorf("evaluate audiences for %d customers: %w", len(customers), err)
	}
	results := map[string]*evalRow{}
	qattrs := pc.plan.queryAttributes()
	windowed := pc.plan.windowedFeatures()
	for rows.Next() {
		var id string
		row := &evalRow{member: make([]uint8, len(pc.plan.Audiences)), attrTime: map[string]uint64{}, attrMsg: map[string]string{},
			lapse: map[string]uint64{}, defTime: map[string]uint64{}, defMsg: map[string]string{}}
		at := make([]uint64, len(qattrs))
		am := make([]string, len(qattrs))
		lp := make([]uint64, len(windowed))
		dt := make([]uint64, len(pc.plan.Signals))
		di := make([]string, len(pc.plan.Signals))
		dest := []any{&id}
		for i := range row.member {
			dest = append(dest, &row.member[i])
		}
		for i := range qattrs {
			dest = append(dest, &at[i], &am[i])
		}
		for i := range windowed {
			dest = append(dest, &lp[i])
		}
		for i := range pc.plan.Signals {
			dest = append(dest, &dt[i], &di[i])
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("scan audience evaluation: %w", err)
		}
		for i, a := range qattrs {
			row.attrTime[a.Name], row.attrMsg[a.Name] = at[i], am[i]
		}
		for i, f := range windowed {
			row.lapse[f.Column] = lp[i]
		}
		for i, s := range pc.plan.Signals {
			row.defTime[s.ID], row.defMsg[s.ID] = dt[i], di[i]
		}
		results[id] = row
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("evaluate audiences: %w", err)
	}
	have, err := e.readMemberships(ctx, customers)
	if err != nil {
		return 0, 0, err
	}
	var changes []change
	for _, c := range customers {
		row := results[c]
		if row == nil {
			continue
		}
		for i, a := range pc.auds {
			want := row.member[i] == 1
			h := have[[2]string{a.c.Audience.ID, c}]
			if want == h.member {
				continue
			}
			ch := change{audience: a.c.Audience.ID, customer: c, entered: want, episode: h.episode, cause: pc.causeOf(a, res.members[c], row), members: res.members[c]}
			if want {
				ch.episode++
			}
			changes = append(changes, ch)
		}
	}
	if err := e.write(ctx, changes); err != nil {
		return 0, 0, err
	}
	for _, ch := range changes {
		if ch.entered {
			entered++
		} else {
			exited++
		}
	}
	return entered, exited, nil
}

// retire takes anonymous ids an identify linked to a user out of every
// audience: their history now counts for the user.
func (e *Evaluator) retire(ctx context.Context, pc *pass, ids []string) (int, error) {
	have, err := e.readMemberships(ctx, ids)
	if err != nil {
		return 0, err
	}
	active := map[string]bool{}
	for _, a := range pc.auds {
		active[a.c.Audience.ID] = true
	}
	var changes []change
	for k, h := range have {
		if !h.member || !active[k[0]] {
			continue
		}
		c := cause{eventTime: pc.asOf}
		found := false
		for _, t := range pc.touchesOf[k[1]] {
			if t.link && (!found || later(t.eventTime, t.message, &c)) {
				c = cause{eventTime: t.eventTime, ingestTime: t.ingestTime, message: t.message, lane: t.lane}
				found = true
			}
		}
		changes = append(changes, change{audience: k[0], customer: k[1], episode: h.episode, cause: c, members: []string{k[1]}})
	}
	sort.Slice(changes, func(i, j int) bool {
		return changes[i].audience+changes[i].customer < changes[j].audience+changes[j].customer
	})
	return len(changes), e.write(ctx, changes)
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
	tb, err := e.conn.PrepareBatch(ctx, "INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at)")
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
		if err := tb.Append(ch.audience, ch.customer, ch.episode, kind, c.eventTime, c.ingestTime, derived, c.message, c.lane, derivedAt); err != nil {
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
