package ingest

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// The reads of what a window of Kafka positions or of receive time
// loaded, for the backfill's plan and apply. They read event_positions,
// which keeps every delivery, so what they count does not change when
// events merges. A position filter (where) is a condition on its
// kafka_topic, kafka_partition and kafka_offset columns (and lane, the
// lane that loaded the row), with its arguments.

// ReceivedIn is a subquery of the ids of the messages received in
// [?, ?), receive times in epoch milliseconds.
const ReceivedIn = "SELECT message_id FROM event_positions WHERE received_at_ms >= ? AND received_at_ms < ?"

// Deliveries is what event_positions holds for the positions of one topic
// matching a filter: distinct positions, distinct messages, and rows (a
// position loaded twice has two).
type Deliveries struct {
	Positions, Messages, Rows uint64
}

// DeliveriesByTopic counts, per topic, the deliveries of the positions
// matching where.
func DeliveriesByTopic(ctx context.Context, conn *chdb.Conn, where string, args []any) (map[string]Deliveries, error) {
	out := map[string]Deliveries{}
	err := conn.Each(ctx, "SELECT kafka_topic, uniqExact(kafka_partition, kafka_offset), uniqExact(customer_id, message_id), count() FROM event_positions WHERE "+where+" GROUP BY kafka_topic", args, func(rows chdb.Rows) error {
		var topic string
		var d Deliveries
		if err := rows.Scan(&topic, &d.Positions, &d.Messages, &d.Rows); err != nil {
			return err
		}
		out[topic] = d
		return nil
	})
	return out, err
}

// PositionCustomers lists the customers of the positions matching where.
func PositionCustomers(ctx context.Context, conn *chdb.Conn, where string, args []any) ([]string, error) {
	return conn.Strings(ctx, "SELECT DISTINCT customer_id FROM event_positions WHERE "+where, args...)
}

// EachPosition calls fn with the customer and position of every loaded
// row matching where.
func EachPosition(ctx context.Context, conn *chdb.Conn, where string, args []any, fn func(customer, topic string, partition int32, offset int64) error) error {
	return conn.Each(ctx, "SELECT customer_id, kafka_topic, kafka_partition, kafka_offset FROM event_positions WHERE "+where, args, func(rows chdb.Rows) error {
		var c, t string
		var p int32
		var off int64
		if err := rows.Scan(&c, &t, &p, &off); err != nil {
			return err
		}
		return fn(c, t, p, off)
	})
}

// LoadLag is a subquery of one row per Kafka position matching where
// (kafka_topic, customer_id, lag) with the delay in milliseconds between
// the collector receiving the event and ClickHouse first holding it
// (redeliveries and re-ingests keep the first load). Its arguments are
// where's.
func LoadLag(where string) string {
	return fmt.Sprintf(`SELECT kafka_topic, any(customer_id) AS customer_id,
    greatest(toInt64(min(ingest_time_ms)) - toInt64(any(received_at_ms)), 0) AS lag
FROM event_positions WHERE %s
GROUP BY kafka_topic, kafka_partition, kafka_offset`, where)
}

// Received is an event received in a window, once per message, with its
// first and last load.
type Received struct {
	Stored
	FirstLoadMs, LastLoadMs uint64
	Lane                    string
}

// EachReceived calls fn for each message received in [fromMs, toMs) whose
// event is named one of names (not empty). Whether a message was received
// in the window, and when it was first and last loaded, come from
// event_positions: in events a merge keeps one delivery of a retried
// message, whose receive and ingest times may lie elsewhere.
func EachReceived(ctx context.Context, conn *chdb.Conn, names []string, fromMs, toMs uint64, fn func(Received) error) error {
	return conn.Each(ctx, `SELECT customer_id, message_id, any(event), any(properties), any(context), any(context_ip),
    any(event_time_ms), any(first_ms), any(last_ms), any(lane)
FROM (
    SELECT customer_id, message_id, event, properties, context, context_ip, event_time_ms, lane FROM events WHERE event IN ?
) AS e
ANY INNER JOIN (
    SELECT customer_id, message_id, min(ingest_time_ms) AS first_ms, max(ingest_time_ms) AS last_ms
    FROM event_positions WHERE received_at_ms >= ? AND received_at_ms < ?
    GROUP BY customer_id, message_id
) AS w USING (customer_id, message_id)
GROUP BY customer_id, message_id`, []any{chdb.Set(names), fromMs, toMs}, func(rows chdb.Rows) error {
		var r Received
		if err := rows.Scan(&r.CustomerID, &r.MessageID, &r.Event, &r.Properties, &r.Context, &r.ContextIP,
			&r.EventTimeMs, &r.FirstLoadMs, &r.LastLoadMs, &r.Lane); err != nil {
			return err
		}
		return fn(r)
	})
}

// LoadedMessages calls fn for each (customer, message) of events with a
// customer in customers and a message in messages (neither empty).
func LoadedMessages(ctx context.Context, conn *chdb.Conn, customers, messages []string, fn func(customer, message string) error) error {
	return conn.Each(ctx, "SELECT DISTINCT customer_id, message_id FROM events WHERE customer_id IN ? AND message_id IN ?", []any{chdb.Set(customers), chdb.Set(messages)}, func(rows chdb.Rows) error {
		var c, m string
		if err := rows.Scan(&c, &m); err != nil {
			return err
		}
		return fn(c, m)
	})
}

// CopyEvents copies into conn's events the rows of database's events
// (another database of the same server) of customers: a scratch database
// replays them.
func CopyEvents(ctx context.Context, conn *chdb.Conn, database string, customers []string) error {
	ids, err := chdb.IDTable("copy_ids", customers)
	if err != nil {
		return err
	}
	return conn.Exec(chdb.WithExternal(ctx, ids), "INSERT INTO events ("+EventColumns+") SELECT "+EventColumns+" FROM "+database+
		".events WHERE customer_id IN (SELECT id FROM copy_ids)")
}
