package ingest

import (
	"context"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// The reads of what the loader stored, for the components downstream of
// it: the evaluator dating and naming its causes, the poller checking
// follow-up events and traits. Every reader of the events table outside
// this package goes through these, so the table's layout has one owner.

// FirstLoad is what the events table holds of one message: when and on
// which lane it was first loaded (a redelivery loads it again later), and
// its type and event name.
type FirstLoad struct {
	IngestTimeMs uint64
	Lane         string
	Type, Event  string
}

// FirstLoads reads, by message id, the first load of messages of
// customers. Messages not found are absent. The sets travel as external
// tables, so they may be large.
func FirstLoads(ctx context.Context, conn *chdb.Conn, customers, messages []string) (map[string]FirstLoad, error) {
	out := map[string]FirstLoad{}
	if len(messages) == 0 {
		return out, nil
	}
	it, err := chdb.IDTable("ids", customers)
	if err != nil {
		return nil, err
	}
	mt, err := chdb.IDTable("msgs", messages)
	if err != nil {
		return nil, err
	}
	err = conn.Each(chdb.WithExternal(ctx, it, mt), `SELECT message_id, min(ingest_time_ms), argMin(lane, ingest_time_ms), any(type), any(event)
FROM events WHERE customer_id IN (SELECT id FROM ids) AND message_id IN (SELECT id FROM msgs)
GROUP BY message_id`, nil, func(rows chdb.Rows) error {
		var m string
		var f FirstLoad
		if err := rows.Scan(&m, &f.IngestTimeMs, &f.Lane, &f.Type, &f.Event); err != nil {
			return err
		}
		out[m] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Stored is an event as the events table keeps it, with the fields an
// event condition matches on.
type Stored struct {
	CustomerID, MessageID, Event string
	// Properties and Context are JSON; ContextIP is context.ip, or the
	// address the collector saw when the context has none.
	Properties, Context, ContextIP string
	EventTimeMs                    uint64
}

// EachNamed calls fn for each stored event of customers named one of names
// with an event time in [fromMs, toMs]. A redelivered message may come
// more than once. Neither list may be empty.
func EachNamed(ctx context.Context, conn *chdb.Conn, customers, names []string, fromMs, toMs uint64, fn func(Stored) error) error {
	return conn.Each(ctx, `SELECT customer_id, message_id, event, properties, context, context_ip, event_time_ms FROM events
WHERE customer_id IN ? AND event IN ? AND event_time_ms >= ? AND event_time_ms <= ?`,
		[]any{chdb.Set(customers), chdb.Set(names), fromMs, toMs}, func(rows chdb.Rows) error {
			var e Stored
			if err := rows.Scan(&e.CustomerID, &e.MessageID, &e.Event, &e.Properties, &e.Context, &e.ContextIP, &e.EventTimeMs); err != nil {
				return err
			}
			return fn(e)
		})
}

// EachLatestTraits calls fn with the traits of each customer's latest
// events that carry traits (up to 50 a customer), a customer's newest first
// (by event time, then message id). customers must not be empty.
func EachLatestTraits(ctx context.Context, conn *chdb.Conn, customers []string, fn func(customer, traits string) error) error {
	return conn.Each(ctx, `SELECT customer_id, traits FROM events
WHERE customer_id IN ? AND traits != '{}' AND traits != ''
ORDER BY customer_id, event_time_ms DESC, message_id DESC
LIMIT 50 BY customer_id`, []any{chdb.Set(customers)}, func(rows chdb.Rows) error {
		var id, traits string
		if err := rows.Scan(&id, &traits); err != nil {
			return err
		}
		return fn(id, traits)
	})
}

// CountRows is how many rows the events table holds, every delivery of a
// message counted: what the loaders inserted, where ReadTotals counts
// messages.
func CountRows(ctx context.Context, conn *chdb.Conn) (int64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// EachLoad calls fn for each load visible in the events table with an
// ingest time from sinceMs on: one insert of a lane, named by its lane and
// ingest time (every row of an insert carries the same one).
func EachLoad(ctx context.Context, conn *chdb.Conn, sinceMs uint64, fn func(lane string, ingestMs uint64) error) error {
	return conn.Each(ctx, "SELECT lane, ingest_time_ms FROM events WHERE ingest_time_ms >= ? GROUP BY lane, ingest_time_ms", []any{sinceMs},
		func(rows chdb.Rows) error {
			var lane string
			var ms uint64
			if err := rows.Scan(&lane, &ms); err != nil {
				return err
			}
			return fn(lane, ms)
		})
}

// EachLoadedEventTime calls fn with the event time of each row of one load
// (see EachLoad).
func EachLoadedEventTime(ctx context.Context, conn *chdb.Conn, lane string, ingestMs uint64, fn func(eventMs uint64) error) error {
	return conn.Each(ctx, "SELECT event_time_ms FROM events WHERE lane = ? AND ingest_time_ms = ?", []any{lane, ingestMs},
		func(rows chdb.Rows) error {
			var ms uint64
			if err := rows.Scan(&ms); err != nil {
				return err
			}
			return fn(ms)
		})
}

// WindowRows opens a read of cols (a column list of events) for the
// events received in [fromMs, toMs), restricted to topics when not empty:
// one row per message (FINAL collapses redeliveries), in Kafka order, the
// order a restore re-ingests them in. The caller closes the rows.
func WindowRows(ctx context.Context, conn *chdb.Conn, cols string, fromMs, toMs uint64, topics []string) (chdb.Rows, error) {
	q := "SELECT " + cols + "\nFROM events FINAL\nWHERE received_at_ms >= ? AND received_at_ms < ?"
	args := []any{fromMs, toMs}
	if len(topics) > 0 {
		q, args = q+" AND has(?, kafka_topic)", append(args, topics)
	}
	return conn.Query(ctx, q+"\nORDER BY kafka_topic, kafka_partition, kafka_offset", args...)
}
