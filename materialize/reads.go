package materialize

import (
	"context"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// WindowTransition is an audience transition of a window of receive time,
// as its newest row holds it: a transition that late data dated again has
// several rows, and the newest (by derived_at_ms) holds its true date and
// cause. DerivedAtMs is when it was first derived, LastDerivedAtMs when
// last.
type WindowTransition struct {
	Transition
	LastDerivedAtMs uint64
}

// EachWindowTransition calls fn for each entry to and exit from audiences
// caused by an event received in [fromMs, toMs), or, for a time-driven
// one (no message), with an event time in it. Whether a message was
// received in the window comes from ingest.ReceivedIn, which keeps every
// delivery.
func EachWindowTransition(ctx context.Context, conn *chdb.Conn, audiences []string, fromMs, toMs uint64, fn func(WindowTransition) error) error {
	q := `SELECT audience_id, customer_id, episode, kind,
    argMax(event_time_ms, derived_at_ms), argMax(ingest_time_ms, derived_at_ms), min(derived_at_ms), max(derived_at_ms),
    argMax(message_id, derived_at_ms), argMax(lane, derived_at_ms)
FROM audience_transitions
WHERE audience_id IN ? AND kind IN ?
  AND (message_id IN (` + ingest.ReceivedIn + `)
       OR (message_id = '' AND event_time_ms >= ? AND event_time_ms < ?))
GROUP BY audience_id, customer_id, episode, kind`
	args := []any{chdb.Set(audiences), chdb.Set([]string{"entered", "exited"}), fromMs, toMs, fromMs, toMs}
	return conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		var t WindowTransition
		if err := rows.Scan(&t.AudienceID, &t.CustomerID, &t.Episode, &t.Kind, &t.EventTimeMs, &t.IngestTimeMs,
			&t.DerivedAtMs, &t.LastDerivedAtMs, &t.MessageID, &t.Lane); err != nil {
			return err
		}
		return fn(t)
	})
}

// AttributeState is a customer's attribute as customer_attributes holds
// it: the latest value and the first non-null one, each with whether it is
// null.
type AttributeState struct {
	CustomerID, Attribute string
	Last                  string
	LastNull              bool
	First                 string
	FirstNull             bool
}

// EachAttributeState calls fn with every attribute of customers in
// database, a database of conn's server named by a validated identifier
// (the live one, or a replay's scratch copy). The customers travel as an
// external table: it reaches every shard with the query, where 18.16 does
// not resolve GLOBAL IN inside a subquery.
func EachAttributeState(ctx context.Context, conn *chdb.Conn, database string, customers []string, fn func(AttributeState) error) error {
	ids, err := chdb.IDTable("state_ids", customers)
	if err != nil {
		return err
	}
	q := `SELECT customer_id, attribute,
    tupleElement(argMaxMerge(last_value), 1), tupleElement(argMaxMerge(last_value), 2),
    tupleElement(argMinMerge(first_value), 1), tupleElement(argMinMerge(first_value), 2)
FROM ` + database + `.customer_attributes WHERE customer_id IN (SELECT id FROM state_ids)
GROUP BY customer_id, attribute`
	return conn.Each(chdb.WithExternal(ctx, ids), q, nil, func(rows chdb.Rows) error {
		var a AttributeState
		var lastNull, firstNull uint8
		if err := rows.Scan(&a.CustomerID, &a.Attribute, &a.Last, &lastNull, &a.First, &firstNull); err != nil {
			return err
		}
		a.LastNull, a.FirstNull = lastNull != 0, firstNull != 0
		return fn(a)
	})
}

// EachMembership calls fn with the newest membership of each of customers
// in each audience they have one in, in database (as for
// EachAttributeState).
func EachMembership(ctx context.Context, conn *chdb.Conn, database string, customers []string, fn func(audience, customer string, member bool) error) error {
	ids, err := chdb.IDTable("state_ids", customers)
	if err != nil {
		return err
	}
	q := `SELECT audience_id, customer_id, argMax(member, updated_at_ms)
FROM ` + database + `.audience_membership WHERE customer_id IN (SELECT id FROM state_ids)
GROUP BY audience_id, customer_id`
	return conn.Each(chdb.WithExternal(ctx, ids), q, nil, func(rows chdb.Rows) error {
		var aud, cust string
		var member uint8
		if err := rows.Scan(&aud, &cust, &member); err != nil {
			return err
		}
		return fn(aud, cust, member == 1)
	})
}
