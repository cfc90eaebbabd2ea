package materialize

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Direction is what data that has not arrived yet can do to a condition's
// value at a given moment. It decides which of an audience's decisions wait
// for the watermark of its lanes and which are made on the data present.
type Direction int

// Directions, from the most to the least certain.
const (
	// DirectionFixed: late data cannot change the value (attribute
	// conditions of an eager audience, which are decided on the values
	// present by policy).
	DirectionFixed Direction = iota
	// DirectionRising: late events can only make the condition true
	// (performed ... at_least). A true value is final, so entries are
	// decided on the data present; a false one waits for the watermark.
	DirectionRising
	// DirectionFalling: late events can only make the condition false
	// (not_performed, at_most). A false value is final, so exits are decided
	// on the data present; entries wait for the watermark.
	DirectionFalling
	// DirectionEither: late data can change the value either way (sums,
	// which may add negative amounts; attribute conditions under the
	// watermark policy; mixtures of rising and falling parts). Entries and
	// exits wait for the watermark.
	DirectionEither
)

func (d Direction) String() string {
	switch d {
	case DirectionFixed:
		return "fixed"
	case DirectionRising:
		return "rising"
	case DirectionFalling:
		return "falling"
	default:
		return "either"
	}
}

// directionOf classifies condition n under the attribute policy.
func directionOf(n *Condition, policy Completeness) Direction {
	switch n.Kind {
	case KindAll, KindAny:
		d := DirectionFixed
		for _, ch := range n.Children {
			d = combine(d, directionOf(ch, policy))
		}
		return d
	case KindNot:
		switch d := directionOf(n.Children[0], policy); d {
		case DirectionRising:
			return DirectionFalling
		case DirectionFalling:
			return DirectionRising
		default:
			return d
		}
	case KindAttribute:
		if policy == CompletenessEager {
			return DirectionFixed
		}
		return DirectionEither
	default:
		switch {
		case n.Sum != "":
			return DirectionEither
		case n.Negated:
			return DirectionFalling
		case n.AtMost != nil && n.AtLeast != nil:
			return DirectionEither
		case n.AtMost != nil:
			return DirectionFalling
		default:
			return DirectionRising
		}
	}
}

// combine is the direction of an all or any of parts going a and b: both
// connectives are monotone in each part, so agreeing parts keep their
// direction and opposing ones give either.
func combine(a, b Direction) Direction {
	switch {
	case a == DirectionFixed:
		return b
	case b == DirectionFixed, a == b:
		return a
	default:
		return DirectionEither
	}
}

// decide is the membership an audience of direction d gets, given its
// current membership and its condition evaluated on the data present as of
// the freshest watermark (eager) and as of the watermark of its own lanes
// (complete). Only what missing data cannot falsify is decided past the
// complete time.
func decide(d Direction, member, eager, complete bool) bool {
	switch d {
	case DirectionFixed:
		return eager
	case DirectionRising:
		// True on the data present stays true; false waits until complete.
		return eager || member && complete
	case DirectionFalling:
		// False on the data present stays false; true waits until complete.
		return complete && eager
	default:
		return complete
	}
}

// decidedAt is the moment a membership (member) is known as of, so that it
// is dated on data complete up to it: the eager time where the data present
// settles it for good (a rising entry, a falling exit, a fixed condition),
// else the audience's complete time. Dating past the complete time would
// find a start in data a late event can still change.
func decidedAt(d Direction, member, eager bool, complete, eagerMs uint64) uint64 {
	switch {
	case d == DirectionFixed,
		d == DirectionRising && member && eager,
		d == DirectionFalling && !member && !eager:
		return eagerMs
	default:
		return complete
	}
}

// inputKey names an input in input_lanes: a track, page or screen event, group calls, or traits.
type inputKey struct{ typ, event string }

var (
	traitsInput  = inputKey{"traits", ""}
	contextInput = inputKey{"context", ""}
)

// contextAttributePrefix starts the names of the attributes kept from
// events' context (campaign, page, device) rather than from traits.
const contextAttributePrefix = "context_"

// inputs are the inputs that can change c.
func (c *Compiled) inputs() []inputKey {
	var out []inputKey
	traits, context := false, false
	for _, a := range c.Attributes {
		// A trait may be named like a context attribute: such a name
		// depends on both.
		traits = true
		context = context || strings.HasPrefix(a, contextAttributePrefix)
	}
	if traits {
		out = append(out, traitsInput)
	}
	if context {
		out = append(out, contextInput)
	}
	for _, s := range c.Signals() {
		out = append(out, inputKey{s.Type, s.Event})
	}
	return out
}

// inputLanes reads which lanes have carried which inputs; the loader's
// package owns the record.
func inputLanes(ctx context.Context, conn *chdb.Conn) (map[inputKey][]string, error) {
	got, err := ingest.InputLanes(ctx, conn)
	if err != nil {
		return nil, err
	}
	out := make(map[inputKey][]string, len(got))
	for in, lanes := range got {
		out[inputKey{typ: in.Type, event: in.Event}] = lanes
	}
	return out, nil
}

// audienceLanes are the lanes whose watermarks c waits for: its lanes:
// setting, else every evaluated lane that has carried one of its inputs.
// An input no evaluated lane has carried yet could arrive on any of them,
// so it makes the audience wait for all.
func audienceLanes(c *Compiled, carried map[inputKey][]string, evaluated []string) []string {
	if len(c.Audience.Lanes) > 0 {
		return sortedCopy(c.Audience.Lanes)
	}
	known := map[string]bool{}
	for _, l := range evaluated {
		known[l] = true
	}
	set := map[string]bool{}
	for _, in := range c.inputs() {
		found := false
		for _, l := range carried[in] {
			if known[l] {
				set[l] = true
				found = true
			}
		}
		if !found {
			return sortedCopy(evaluated)
		}
	}
	out := make([]string, 0, len(set))
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// laneTime is the evaluation time of a set of lanes: the smallest of their
// watermarks (a lane without one counts as 0: nothing of it is known to be
// loaded), with the lane that sets it.
func laneTime(lanes []string, wms map[string]uint64) (ms uint64, heldBy string) {
	for i, l := range lanes {
		if wm := wms[l]; i == 0 || wm < ms {
			ms, heldBy = wm, l
		}
	}
	return ms, heldBy
}

// timeKey names the evaluation time of a set of lanes in evaluator_times.
func timeKey(lanes []string) string { return "lanes:" + strings.Join(lanes, ",") }

// eagerKey names the freshest watermark in evaluator_times.
const eagerKey = "eager"

// AudienceCompleteness is how complete one audience's result is.
type AudienceCompleteness struct {
	AudienceID string
	// Lanes are the lanes that can change it.
	Lanes []string
	// Direction says which of its decisions wait for CompleteMs.
	Direction string
	// CompleteMs is the smallest watermark of its lanes; EagerMs the
	// freshest lane watermark, epoch ms.
	CompleteMs, EagerMs uint64
	// HeldBy is the lane whose watermark is CompleteMs when it is behind
	// EagerMs, else "".
	HeldBy      string
	UpdatedAtMs uint64
}

// InsertCompleteness writes completeness rows in one insert, as the
// evaluator records them.
func InsertCompleteness(ctx context.Context, conn *chdb.Conn, rows []AudienceCompleteness) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO audience_completeness (audience_id, lanes, direction, complete_ms, eager_ms, held_by, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare audience_completeness insert: %w", err)
	}
	for _, r := range rows {
		if err := b.Append(r.AudienceID, r.Lanes, r.Direction, r.CompleteMs, r.EagerMs, r.HeldBy, r.UpdatedAtMs); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append audience_completeness: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write audience_completeness: %w", err)
	}
	return nil
}

// ReadCompleteness returns what the evaluator last recorded of every
// audience's completeness, by audience id.
func ReadCompleteness(ctx context.Context, conn *chdb.Conn) (map[string]AudienceCompleteness, error) {
	out := map[string]AudienceCompleteness{}
	err := conn.Each(ctx, `SELECT audience_id, argMax(lanes, updated_at_ms), argMax(direction, updated_at_ms),
    argMax(complete_ms, updated_at_ms), argMax(eager_ms, updated_at_ms), argMax(held_by, updated_at_ms), max(updated_at_ms)
FROM audience_completeness GROUP BY audience_id`, nil, func(rows chdb.Rows) error {
		var c AudienceCompleteness
		if err := rows.Scan(&c.AudienceID, &c.Lanes, &c.Direction, &c.CompleteMs, &c.EagerMs, &c.HeldBy, &c.UpdatedAtMs); err != nil {
			return err
		}
		out[c.AudienceID] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audience_completeness: %w", err)
	}
	return out, nil
}
