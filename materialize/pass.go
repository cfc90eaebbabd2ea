package materialize

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/tideline-dev/tideline/internal/chdb"
)

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
	// phases receives the time spent in each part of the evaluation (the
	// evaluator points it at its pass's Stats).
	phases *Phases
}

func newPass(p *Plan, st *evalState, wms map[string]uint64, freshest uint64, carried map[inputKey][]string, evaluated []string) *pass {
	pc := &pass{plan: p, times: map[string]uint64{}, phases: &Phases{}}
	pc.prevEager = st.times[eagerKey]
	if pc.prevEager == 0 {
		pc.prevEager = st.asOf
	}
	pc.eager = max(freshest, pc.prevEager)
	if f, ok := st.floor(eagerKey); ok {
		pc.eager = max(pc.eager, f)
	}
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
		t, held := laneTime(ls, wms)
		prev, ok := st.times[k]
		if f, floored := st.floor(k); floored {
			// A set's time never goes back (a lane's watermark row can
			// lag a pass behind another's).
			t = max(t, f)
		}
		if !ok {
			// Only for finding the customers whose windows moved: the
			// time itself is the lanes' own.
			prev = min(fallback, pc.prevEager)
			if fallback == 0 {
				prev = pc.prevEager
			}
			prev = min(prev, t)
		}
		t = min(t, pc.eager)
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

// evalTables builds the external tables the evaluation and values queries
// read from (customer, t, te) rows: batch, each customer's raw ids with
// when they started to count, and times, the moments to evaluate it at.
// low is the earliest t.
func evalTables(res *resolution, rows [][3]any) (bt, tt *ext.Table, customers int, low uint64, err error) {
	if bt, err = ext.NewTable(batchTable, ext.Column("member_id", "String"), ext.Column("customer_id", "String"), ext.Column("linked_ms", "UInt64")); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("external batch table: %w", err)
	}
	if tt, err = ext.NewTable(timesTable, ext.Column("customer_id", "String"), ext.Column("t", "UInt64"), ext.Column("te", "UInt64")); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("external times table: %w", err)
	}
	seen := map[string]bool{}
	for i, r := range rows {
		c := r[0].(string)
		if !seen[c] {
			seen[c] = true
			for _, m := range res.members[c] {
				if err := bt.Append(m, c, res.linkedMs(m)); err != nil {
					return nil, nil, 0, 0, fmt.Errorf("external batch table: %w", err)
				}
			}
		}
		if err := tt.Append(r[0], r[1], r[2]); err != nil {
			return nil, nil, 0, 0, fmt.Errorf("external times table: %w", err)
		}
		if t := r[1].(uint64); i == 0 || t < low {
			low = t
		}
	}
	return bt, tt, len(seen), low, nil
}

// evalAt evaluates every audience for the given (customer, t, te) rows.
func (e *Evaluator) evalAt(ctx context.Context, pc *pass, res *resolution, rows [][3]any) (map[string]map[uint64][]uint8, error) {
	out := map[string]map[uint64][]uint8{}
	if len(rows) == 0 {
		return out, nil
	}
	bt, tt, customers, low, err := evalTables(res, rows)
	if err != nil {
		return nil, err
	}
	q := pc.plan.evalQuery(runLow(low))
	result, err := e.conn.Query(chdb.WithExternal(ctx, bt, tt), q)
	if err != nil {
		return nil, fmt.Errorf("evaluate audiences for %d customers: %w", customers, err)
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
	changes, _, err := e.decideBatch(ctx, pc, customers, res)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := e.write(ctx, changes); err != nil {
		return 0, 0, err
	}
	pc.phases.Write += time.Since(start)
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

// decideBatch evaluates customers and returns the dated changes to write,
// and per audience (plan order) how many of them are members once the
// changes are written. It writes nothing: the evaluator writes what it
// returns, a preview only reports it.
func (e *Evaluator) decideBatch(ctx context.Context, pc *pass, customers []string, res *resolution) ([]change, []int, error) {
	members := make([]int, len(pc.plan.Audiences))
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
	start := time.Now()
	results, err := e.evalAt(ctx, pc, res, rows)
	if err != nil {
		return nil, nil, err
	}
	have, err := e.readMemberships(ctx, customers)
	if err != nil {
		return nil, nil, err
	}
	pc.phases.Query += time.Since(start)
	start = time.Now()
	defer func() { pc.phases.Date += time.Since(start) }()
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
			if want {
				members[i]++
			}
			if want == h.member {
				continue
			}
			until := decidedAt(a.Direction, want, eager, pc.complete[i], pc.eager)
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
		return nil, nil, err
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
		return nil, nil, err
	}
	kept := changes[:0]
	for _, ch := range changes {
		if !ch.redate || recorded[ch.key()] != (dated{ch.cause.eventTime, ch.cause.message}) {
			kept = append(kept, ch)
		}
	}
	return kept, members, nil
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
			until := decidedAt(a.Direction, h.member, eager, pc.complete[i], pc.eager)
			out = append(out, change{audience: a.Audience.ID, customer: c, entered: h.member, episode: h.episode, members: res.members[c], index: i, until: until, redate: true})
		}
	}
	return out
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
	now := e.version()
	rows := make([]AudienceCompleteness, len(pc.plan.Audiences))
	for i, c := range pc.plan.Audiences {
		rows[i] = AudienceCompleteness{AudienceID: c.Audience.ID, Lanes: pc.lanes[i], Direction: c.Direction.String(),
			CompleteMs: pc.complete[i], EagerMs: pc.eager, HeldBy: pc.heldBy[i], UpdatedAtMs: now}
	}
	if err := InsertCompleteness(ctx, e.conn, rows); err != nil {
		return err
	}
	e.lastCompleteness, e.completenessAt = sig, time.Now()
	for i, c := range pc.plan.Audiences {
		e.metrics.completeness.WithLabelValues(c.Audience.ID).Set(float64(pc.eager-pc.complete[i]) / 1000)
	}
	return nil
}
