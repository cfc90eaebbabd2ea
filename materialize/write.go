package materialize

import (
	"context"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

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
	ts := make([]Transition, len(changes))
	for i, ch := range changes {
		kind := "exited"
		if ch.entered {
			kind = "entered"
		}
		c := ch.cause
		ts[i] = Transition{AudienceID: ch.audience, CustomerID: ch.customer, Episode: ch.episode, Kind: kind,
			EventTimeMs: c.eventTime, IngestTimeMs: c.ingestTime, DerivedAtMs: derived, MessageID: c.message, Lane: c.lane, Redated: ch.redate}
	}
	if err := InsertTransitions(ctx, e.conn, ts); err != nil {
		return err
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

// Transition is one row of audience_transitions: a customer entered or
// exited an audience, at the event time of the cause, ingested at
// IngestTimeMs and derived at DerivedAtMs.
type Transition struct {
	AudienceID, CustomerID string
	Episode                uint32
	// Kind is "entered" or "exited".
	Kind                                   string
	EventTimeMs, IngestTimeMs, DerivedAtMs uint64
	// MessageID and Lane are the causing event's ("" for a time-driven
	// change).
	MessageID, Lane string
	// Redated marks a row that dates an earlier transition again.
	Redated bool
}

// InsertTransitions writes transitions in one insert. The evaluator
// writes every transition through it; rows from elsewhere (a demonstration
// dataset) go in as they are.
func InsertTransitions(ctx context.Context, conn *chdb.Conn, ts []Transition) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at, redated)")
	if err != nil {
		return fmt.Errorf("prepare audience_transitions insert: %w", err)
	}
	for _, t := range ts {
		if err := b.Append(t.AudienceID, t.CustomerID, t.Episode, t.Kind, t.EventTimeMs, t.IngestTimeMs, t.DerivedAtMs,
			t.MessageID, t.Lane, time.UnixMilli(int64(t.DerivedAtMs)), boolByte(t.Redated)); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append transition: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d audience transitions: %w", len(ts), err)
	}
	return nil
}

// AudienceSizes returns the number of current members of each active
// audience.
func AudienceSizes(ctx context.Context, conn *chdb.Conn) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := conn.Each(ctx, `SELECT audience_id, countIf(m = 1)
FROM
(
    SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m
    FROM audience_membership
    GROUP BY audience_id, customer_id
)
WHERE audience_id IN (SELECT audience_id FROM audiences FINAL WHERE active = 1)
GROUP BY audience_id`, nil, func(rows chdb.Rows) error {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return err
		}
		out[id] = n
		return nil
	})
	if err != nil {
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
