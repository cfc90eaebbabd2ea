package materialize

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// instant is a moment at which an audience's condition can change for a
// customer: a message of one of its inputs became visible (message set), an
// occurrence left a window, or the customer's history began (message "").
type instant struct {
	t       uint64
	message string
}

// customerInputs are the times of one customer's inputs, as the evaluator
// reads them for dating.
type customerInputs struct {
	firstMs uint64
	// attrs: per attribute, the event time, visible time and message of
	// every value sent.
	attrs map[string][]occurrenceTimes
	// occs: per signal, each occurrence's event time, visible time and message.
	occs map[string][]occurrenceTimes
	// links: when each linked anonymous id started to count, with the
	// linking identify.
	links []instant
}

type occurrenceTimes struct {
	eventMs, visibleMs uint64
	message            string
}

// instants returns the moments up to until at which c's condition can
// change for a customer with inputs in, latest first; several messages at
// one moment are represented by the greatest message id, the tie-break
// attributes use. The condition's value is constant between two of them: an
// attribute changes only when a message becomes visible, a count only when
// an occurrence becomes visible or leaves its window, so evaluating at each
// finds every change.
func (c *Compiled) instants(in *customerInputs, until uint64) []instant {
	best := map[uint64]string{}
	add := func(t uint64, msg string) {
		if t == 0 || t > until {
			return
		}
		if have, ok := best[t]; !ok || msg > have {
			best[t] = msg
		}
	}
	add(until, "")
	add(in.firstMs, "")
	for _, l := range in.links {
		add(l.t, l.message)
	}
	// A message of a linked anonymous id becomes visible at the link,
	// which the linking identify explains, not the message itself.
	visible := func(o occurrenceTimes) {
		if o.visibleMs == o.eventMs {
			add(o.visibleMs, o.message)
		} else {
			add(o.visibleMs, "")
		}
	}
	for _, a := range c.Attributes {
		for _, v := range in.attrs[a] {
			visible(v)
		}
	}
	windows := map[string][]time.Duration{}
	for _, f := range c.Features {
		windows[f.Signal.ID] = append(windows[f.Signal.ID], f.Window)
	}
	for id, ws := range windows {
		for _, o := range in.occs[id] {
			visible(o)
			for _, w := range ws {
				if w > 0 {
					if end := o.eventMs + uint64(w/time.Millisecond); end > o.visibleMs {
						add(end, "")
					}
				}
			}
		}
	}
	out := make([]instant, 0, len(best))
	for t, m := range best {
		out = append(out, instant{t, m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].t > out[j].t })
	return out
}

// becameAt finds when a condition took the value it has at the latest
// instant and kept it since: the earliest instant of the final run of equal
// values. at lists instants latest first and holds their values; complete
// says at reaches back to the customer's first instant. It returns ok false
// when every instant given holds the final value and earlier ones exist:
// the run may start before them.
func becameAt(at []instant, holds []bool, complete bool) (since instant, ok bool) {
	if len(at) == 0 {
		return instant{}, complete
	}
	want := holds[0]
	for i := 1; i < len(at); i++ {
		if holds[i] != want {
			return at[i-1], true
		}
	}
	return at[len(at)-1], complete
}

// candidates trims the instants that can date ch (latest first) to those
// a redate must look at. Every event new to the pass is later than a
// redate's recorded date, so the value before the earliest of them is as
// it was when that date was found: only the instants from there on can
// break the run, and if none does the date stands.
func (ch *change) candidates(cands []instant) []instant {
	if !ch.redate || ch.floor <= ch.recorded.t {
		return cands
	}
	cut := len(cands)
	for k, in := range cands {
		if in.t < ch.floor {
			cut = k
			break
		}
	}
	return cands[:max(cut, 1)]
}

// attribute is the cause of ch given the values its audience's condition
// had at the first len(holds) of its candidate instants (latest first).
// ok is false while the instants evaluated cannot tell yet: the caller
// evaluates more and asks again. It does no I/O, so the date of every
// transition, which qualification times and campaign staleness follow,
// is decided here alone.
func (ch *change) attribute(cands []instant, holds []bool) (c cause, ok bool) {
	if holds[0] != ch.entered {
		// Decided on parts evaluated at different moments (eager
		// attributes); the decision time is all that is known.
		return cause{eventTime: ch.until}, true
	}
	exhausted := len(holds) == len(cands)
	if ch.redate && ch.floor > ch.recorded.t && exhausted && !slices.Contains(holds, !ch.entered) {
		// Unbroken since the earliest new event: the date stands.
		return cause{eventTime: ch.recorded.t, message: ch.recorded.msg}, true
	}
	if since, ok := becameAt(cands[:len(holds)], holds, exhausted); ok {
		return cause{eventTime: since.t, message: since.message, lookup: since.message != ""}, true
	}
	return cause{}, false
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
	err = e.conn.Each(qctx, `SELECT audience_id, customer_id, episode, kind, argMax(event_time_ms, derived_at_ms), argMax(message_id, derived_at_ms)
FROM audience_transitions WHERE customer_id IN (SELECT id FROM ids)
GROUP BY audience_id, customer_id, episode, kind`, nil, func(rows chdb.Rows) error {
		var k transitionKey
		var d dated
		if err := rows.Scan(&k.audience, &k.customer, &k.episode, &k.kind, &d.t, &d.msg); err != nil {
			return err
		}
		out[k] = d
		return nil
	})
	if err != nil {
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
		jobs[i] = &job{ch: ch, cands: ch.candidates(pc.plan.Audiences[ch.index].instants(in, ch.until))}
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
			if c, ok := j.ch.attribute(j.cands, j.holds); ok {
				j.ch.cause, j.done = c, true
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
	err = e.conn.Each(chdb.WithExternal(ctx, bt), b.String(), nil, func(rows chdb.Rows) error {
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
			return err
		}
		in := out[id]
		if in == nil {
			return nil
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
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the inputs of %d customers: %w", len(customers), err)
	}
	return out, nil
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
	got, err := ingest.FirstLoads(ctx, e.conn, ids, msgs)
	if err != nil {
		return fmt.Errorf("read the events that caused transitions: %w", err)
	}
	for i := range changes {
		if c := &changes[i].cause; c.lookup {
			f := got[c.message]
			c.ingestTime, c.lane = f.IngestTimeMs, f.Lane
		}
	}
	return nil
}
