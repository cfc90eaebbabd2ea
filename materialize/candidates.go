package materialize

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// candidates are the customers a pass evaluates, resolved to their
// canonical ids: those touched since the last pass (whose touches the
// pass keeps), and every customer on a full sweep or else those whose
// windows moved.
func (e *Evaluator) candidates(ctx context.Context, pc *pass, touches []touch, full bool) (*resolution, error) {
	raw := map[string]bool{}
	var relinked []string
	for _, t := range touches {
		raw[t.customer] = true
		pc.touchesOf[t.customer] = append(pc.touchesOf[t.customer], t)
		if t.alias {
			relinked = append(relinked, t.customer)
		}
	}
	var (
		more []string
		err  error
	)
	if full {
		more, err = e.allCustomers(ctx)
	} else {
		more, err = e.windowCandidates(ctx, pc)
	}
	if err != nil {
		return nil, err
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
	return resolve(ctx, e.conn, rawIDs, relinked)
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

// windowCandidates are the customers whose conditions can change when the
// evaluation times move without a new event: an input whose event time
// passes into view, or a signal occurrence that leaves a window, between an
// audience's previous time and this pass's (for its eager and its complete
// time). customer_activity_seconds keys events by second, so the ranges are
// rounded out to whole seconds and the evaluation query decides at the exact
// times.
func (e *Evaluator) windowCandidates(ctx context.Context, pc *pass) ([]string, error) {
	type rng struct{ from, to uint64 } // event time, ms, inclusive
	ranges := map[inputKey][]rng{}
	add := func(c *Compiled, prev, asOf uint64) {
		if asOf <= prev {
			return
		}
		for _, in := range c.inputs() {
			if in == contextInput {
				// customer_activity_seconds keeps context and traits as one kind.
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
			cond := fmt.Sprintf("(type = %s AND event = %s AND second >= toDateTime(%d) AND second <= toDateTime(%d))", quote(k.typ), quote(k.event), r.from/1000, r.to/1000)
			if !seen[cond] {
				seen[cond] = true
				ors = append(ors, cond)
			}
		}
	}
	if len(ors) == 0 {
		return nil, nil
	}
	out, err := e.conn.Strings(ctx, "SELECT DISTINCT customer_id FROM customer_activity_seconds WHERE "+strings.Join(ors, "\n   OR "))
	if err != nil {
		return nil, fmt.Errorf("find customers whose windows moved: %w", err)
	}
	return out, nil
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
	out := map[[2]string]membership{}
	err = e.conn.Each(qctx, `SELECT audience_id, customer_id, argMax(member, updated_at_ms), argMax(episode, updated_at_ms)
FROM audience_membership WHERE customer_id IN (SELECT id FROM ids)
GROUP BY audience_id, customer_id`, nil, func(rows chdb.Rows) error {
		var aud, cust string
		var m uint8
		var ep uint32
		if err := rows.Scan(&aud, &cust, &m, &ep); err != nil {
			return err
		}
		out[[2]string{aud, cust}] = membership{member: m == 1, episode: ep}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audience_membership: %w", err)
	}
	return out, nil
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
