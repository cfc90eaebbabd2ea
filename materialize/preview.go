package materialize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
)

// AudiencePreview is what applying one audience definition would do now:
// the evaluator's first pass after apply, computed by the evaluator's own
// code (candidates, evaluation, decision, dating) without writing anything.
type AudiencePreview struct {
	AudienceID string `json:"audience_id"`
	Name       string `json:"name,omitempty"`
	Version    string `json:"version"`
	// Applied says whether an active audience with this id is applied;
	// Changed whether its applied version differs from this one.
	Applied bool `json:"applied"`
	Changed bool `json:"changed"`
	// Direction is how late data can change the condition; Lanes the lanes
	// whose watermarks bound it and HeldBy the one holding it back.
	Direction string   `json:"direction"`
	Lanes     []string `json:"lanes"`
	HeldBy    string   `json:"held_by,omitempty"`
	// AsOfMs is the freshest lane watermark and CompleteMs the audience's
	// complete time: entries and exits are decided as of them, as the
	// evaluator decides them (epoch ms).
	AsOfMs     uint64 `json:"as_of_ms"`
	CompleteMs uint64 `json:"complete_ms"`
	// Evaluated counts the customers evaluated (every known customer).
	Evaluated int `json:"evaluated"`
	// Size is the number of members once the pass after apply is written;
	// Entered and Exited the transitions it writes.
	Size    int `json:"size"`
	Entered int `json:"entered"`
	Exited  int `json:"exited"`
	// ByLane counts the entries by the lane of the event that made the
	// condition true ("none" for an entry no event caused: a window ending).
	ByLane map[string]int `json:"by_lane"`
	// Changes are the transitions the pass writes, dated as it dates them,
	// by customer.
	Changes []PreviewChange `json:"changes"`
	// Sample are some of the customers entering, with what qualifies them.
	Sample []PreviewMember `json:"sample"`
	// FromEvents names the attributes and signals apply has not backfilled
	// yet: the preview computed them from events, as apply's backfill will.
	FromEvents []string `json:"from_events,omitempty"`
}

// PreviewChange is one transition the pass after apply would write.
type PreviewChange struct {
	CustomerID string `json:"customer_id"`
	// Kind is "entered" or "exited"; Episode the membership episode.
	Kind    string `json:"kind"`
	Episode uint32 `json:"episode"`
	// EventTimeMs is when the condition took its new value, and MessageID,
	// Lane and IngestTimeMs the event that made it so (empty for a window
	// ending).
	EventTimeMs  uint64 `json:"event_time_ms"`
	IngestTimeMs uint64 `json:"ingest_time_ms"`
	MessageID    string `json:"message_id,omitempty"`
	Lane         string `json:"lane,omitempty"`
}

// PreviewMember is an entering customer with the inputs that qualify them.
type PreviewMember struct {
	PreviewChange
	// Attributes are the values of the attributes the audience reads, as of
	// AsOfMs (absent when not set).
	Attributes map[string]string `json:"attributes"`
	// Features are the counts and sums of the audience's event conditions
	// as of AsOfMs, by what they count.
	Features map[string]string `json:"features"`
	// Event is the type and name of the event that made the condition true.
	Event string `json:"event,omitempty"`
}

// ErrNoWatermark says no evaluated lane has loaded anything yet: there is
// no moment to evaluate as of.
var ErrNoWatermark = errors.New("no evaluated lane has a watermark yet (is the loader running? tideline ingest)")

// Preview evaluates audience a, as compiled with cfg's attribute settings,
// as the evaluator's next pass would after `tideline audiences apply`: as
// of the current lane watermarks, over every known customer, against the
// current memberships. Attributes and signals apply has not backfilled yet
// are read from events the way its backfill computes them. sample bounds
// the members described with their inputs. It writes nothing.
func Preview(ctx context.Context, conn *chdb.Conn, cfg Config, a *Audience, sample int, log *slog.Logger) (*AudiencePreview, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	plan, err := Compile([]*Audience{a}, cfg.attributeSettings())
	if err != nil {
		return nil, err
	}
	c := plan.Audiences[0]
	out := &AudiencePreview{AudienceID: a.ID, Name: a.Name, Version: c.Version, Direction: c.Direction.String(), ByLane: map[string]int{},
		Changes: []PreviewChange{}, Sample: []PreviewMember{}}
	if plan.unkept, err = unkeptInputs(ctx, conn, plan); err != nil {
		return nil, err
	}
	for _, n := range plan.unkept.attributes {
		out.FromEvents = append(out.FromEvents, "attribute "+n)
	}
	for _, s := range plan.unkept.signals {
		out.FromEvents = append(out.FromEvents, "signal "+s.ID)
	}
	applied, err := readAudiences(ctx, conn)
	if err != nil {
		return nil, err
	}
	if have, ok := applied[a.ID]; ok && have.active {
		out.Applied, out.Changed = true, have.version != c.Version
	}

	e, err := NewEvaluator(cfg, component.Env{Conn: conn, Log: log})
	if err != nil {
		return nil, err
	}
	wms, err := laneWatermarks(ctx, conn)
	if err != nil {
		return nil, err
	}
	var freshest uint64
	for _, l := range cfg.Lanes {
		freshest = max(freshest, wms[l])
	}
	if freshest == 0 {
		return nil, ErrNoWatermark
	}
	st, err := e.loadState(ctx, e.cfg.positionKeys())
	if err != nil {
		return nil, err
	}
	carried, err := inputLanes(ctx, conn)
	if err != nil {
		return nil, err
	}
	pc := newPass(plan, st, wms, freshest, carried, cfg.Lanes)
	pc.touchesOf = map[string][]touch{}
	out.AsOfMs, out.CompleteMs, out.Lanes, out.HeldBy = pc.eager, pc.complete[0], pc.lanes[0], pc.heldBy[0]

	// A changed definition makes the evaluator sweep every customer.
	res, err := e.candidates(ctx, pc, nil, true)
	if err != nil {
		return nil, err
	}
	customers := res.customers()
	out.Evaluated = len(customers)
	var changes []change
	for i := 0; i < len(customers); i += cfg.BatchCustomers {
		chs, members, err := e.decideBatch(ctx, pc, customers[i:min(i+cfg.BatchCustomers, len(customers))], res)
		if err != nil {
			return nil, err
		}
		out.Size += members[0]
		for _, ch := range chs {
			if !ch.redate {
				changes = append(changes, ch)
			}
		}
	}
	if err := e.lookupCauses(ctx, changes); err != nil {
		return nil, err
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].customer < changes[j].customer })
	var entering []change
	for _, ch := range changes {
		pv := PreviewChange{CustomerID: ch.customer, Kind: "exited", Episode: ch.episode, EventTimeMs: ch.cause.eventTime,
			IngestTimeMs: ch.cause.ingestTime, MessageID: ch.cause.message, Lane: ch.cause.lane}
		if ch.entered {
			pv.Kind = "entered"
			out.Entered++
			lane := pv.Lane
			if lane == "" {
				lane = "none"
			}
			out.ByLane[lane]++
			entering = append(entering, ch)
		} else {
			out.Exited++
		}
		out.Changes = append(out.Changes, pv)
	}
	if len(entering) > sample {
		entering = entering[:max(sample, 0)]
	}
	if out.Sample, err = e.describe(ctx, pc, res, entering); err != nil {
		return nil, err
	}
	return out, nil
}

// AppliedConfig is base with the attribute settings apply recorded: the
// attributes maintained and those that keep their first value. A reader
// without the settings apply ran with (the Grafana data source) previews
// with it.
func AppliedConfig(ctx context.Context, conn *chdb.Conn, base Config) (Config, error) {
	attrs, err := readAttributeCatalog(ctx, conn)
	if err != nil {
		return base, err
	}
	base.Attributes, base.SetOnce = nil, nil
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if a := attrs[name]; a.active {
			base.Attributes = append(base.Attributes, name)
			if a.setOnce {
				base.SetOnce = append(base.SetOnce, name)
			}
		}
	}
	return base, nil
}

// unkeptInputs are the attributes and signals of plan that apply would
// backfill: not in the catalogs, or inactive there.
func unkeptInputs(ctx context.Context, conn *chdb.Conn, plan *Plan) (*unkept, error) {
	attrs, sigs, err := readCatalogs(ctx, conn)
	if err != nil {
		return nil, err
	}
	u := &unkept{}
	for _, m := range plan.queryAttributes() {
		if have, ok := attrs[m.Name]; !ok || !have.active {
			u.attributes = append(u.attributes, m.Name)
		}
	}
	for _, s := range plan.Signals {
		if have, ok := sigs[s.ID]; !ok || !have.active {
			u.signals = append(u.signals, s)
		}
	}
	return u, nil
}

// describe reads, for the entering changes, the values of the audience's
// attributes and features as of the pass and the event that caused each.
func (e *Evaluator) describe(ctx context.Context, pc *pass, res *resolution, changes []change) ([]PreviewMember, error) {
	out := make([]PreviewMember, 0, len(changes))
	if len(changes) == 0 {
		return out, nil
	}
	at := make([][3]any, len(changes))
	for i, ch := range changes {
		at[i] = [3]any{ch.customer, pc.eager, pc.eager}
	}
	bt, tt, _, _, err := evalTables(res, at)
	if err != nil {
		return nil, err
	}
	attrs := pc.plan.queryAttributes()
	q := pc.plan.valuesQuery(runLow(pc.eager))
	type values struct {
		attrs, feats map[string]string
	}
	got := map[string]values{}
	err = e.conn.Each(chdb.WithExternal(ctx, bt, tt), q, nil, func(rows chdb.Rows) error {
		var id string
		var at uint64
		vals := make([]string, len(attrs))
		has := make([]uint8, len(attrs))
		feats := make([]string, len(pc.plan.Features))
		dest := []any{&id, &at}
		for i := range attrs {
			dest = append(dest, &vals[i], &has[i])
		}
		for i := range feats {
			dest = append(dest, &feats[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		v := values{attrs: map[string]string{}, feats: map[string]string{}}
		for i, a := range attrs {
			if has[i] == 1 {
				v.attrs[a.Name] = vals[i]
			}
		}
		for i, f := range pc.plan.Features {
			v.feats[f.Describe()] = feats[i]
		}
		got[id] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the inputs of %d previewed members: %w", len(changes), err)
	}
	events, err := e.causeEvents(ctx, changes)
	if err != nil {
		return nil, err
	}
	for _, ch := range changes {
		v := got[ch.customer]
		out = append(out, PreviewMember{
			PreviewChange: PreviewChange{CustomerID: ch.customer, Kind: "entered", Episode: ch.episode, EventTimeMs: ch.cause.eventTime,
				IngestTimeMs: ch.cause.ingestTime, MessageID: ch.cause.message, Lane: ch.cause.lane},
			Attributes: v.attrs, Features: v.feats, Event: events[ch.cause.message],
		})
	}
	return out, nil
}

// valuesQuery returns, per (customer_id, t) of the times table, the value
// and presence of every attribute the audiences read and every feature as
// text, in plan order.
func (p *Plan) valuesQuery(low lowBound) string {
	// t is selected, though not needed, because 18.16 drops a subquery's
	// unselected columns even when the kept ones are computed from them.
	cols := []string{"customer_id", "t"}
	for _, a := range p.queryAttributes() {
		cols = append(cols, "if("+hasColumn(a.Name)+" = 1, "+attrColumn(a.Name)+", '')", hasColumn(a.Name))
	}
	for _, f := range p.Features {
		cols = append(cols, "toString("+f.Column+")")
	}
	return "SELECT " + strings.Join(cols, ", ") + "\nFROM\n(\n    " + indentLines(p.inputsAt(low), "    ") + "\n)"
}

// causeEvents names the events that caused changes: "track purchase",
// "identify", by message id.
func (e *Evaluator) causeEvents(ctx context.Context, changes []change) (map[string]string, error) {
	var ids, msgs []string
	for _, ch := range changes {
		if ch.cause.message != "" {
			ids = append(ids, ch.members...)
			msgs = append(msgs, ch.cause.message)
		}
	}
	loads, err := ingest.FirstLoads(ctx, e.conn, ids, msgs)
	if err != nil {
		return nil, fmt.Errorf("read the events that qualify previewed members: %w", err)
	}
	out := make(map[string]string, len(loads))
	for m, f := range loads {
		out[m] = strings.TrimSpace(f.Type + " " + f.Event)
	}
	return out, nil
}
