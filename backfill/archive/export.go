package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// exportColumns are the columns of events a Row holds, before its
// context columns.
const exportColumns = `message_id, type, customer_id, user_id, anonymous_id, event, properties, traits,
    event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, kafka_topic, kafka_partition, kafka_offset`

// Export writes the events received in [from, to) (restricted to topics
// when not empty) to w, calling progress with the rows written so far.
func Export(ctx context.Context, conn *chdb.Conn, w *Writer, from, to time.Time, topics []string, progress func(rows int64)) (int64, error) {
	names := make([]string, len(contextFields))
	for i, c := range contextFields {
		names[i] = c.name
	}
	cols := exportColumns + ", " + strings.Join(names, ", ")
	rows, err := ingest.WindowRows(ctx, conn, cols, uint64(from.UnixMilli()), uint64(to.UnixMilli()), topics)
	if err != nil {
		return 0, fmt.Errorf("read events to export: %w", err)
	}
	defer rows.Close()
	batch := make([]Row, 0, rowsPerBatch)
	var n int64
	for rows.Next() {
		var r Row
		dest := []any{&r.MessageID, &r.Type, &r.CustomerID, &r.UserID, &r.AnonymousID, &r.Event, &r.Properties, &r.Traits,
			&r.EventTimeMs, &r.SentAtMs, &r.ReceivedAtMs, &r.IngestTimeMs, &r.Source, &r.Lane, &r.Topic, &r.Partition, &r.Offset}
		for _, c := range contextFields {
			dest = append(dest, c.col(&r))
		}
		if err := rows.Scan(dest...); err != nil {
			return n, fmt.Errorf("scan event to export: %w", err)
		}
		batch = append(batch, r)
		if len(batch) == rowsPerBatch {
			if err := w.Write(batch); err != nil {
				return n, err
			}
			n += int64(len(batch))
			batch = batch[:0]
			if progress != nil {
				progress(n)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read events to export: %w", err)
	}
	if err := w.Write(batch); err != nil {
		return n, err
	}
	n += int64(len(batch))
	if progress != nil {
		progress(n)
	}
	return n, nil
}

// ToEvent rebuilds the event the collector produced for r. Loading it again
// gives back r's columns (the ingest time and lane say when and how it was
// loaded, and change).
func (r *Row) ToEvent() *ingest.Event {
	ev := &ingest.Event{
		MessageID:   r.MessageID,
		Type:        r.Type,
		UserID:      r.UserID,
		AnonymousID: r.AnonymousID,
		Timestamp:   msTime(r.EventTimeMs),
		SentAt:      msTime(r.SentAtMs),
		ReceivedAt:  msTime(r.ReceivedAtMs),
		Source:      r.Source,
	}
	if r.Type == ingest.TypePage || r.Type == ingest.TypeScreen {
		ev.Name = r.Event
	} else {
		ev.Event = r.Event
	}
	ev.Properties = rawObject(r.Properties)
	ev.Traits = rawObject(r.Traits)
	ev.PreviousID, ev.GroupID = r.PreviousID, r.GroupID
	ev.Context = rawObject(r.Context)
	// context_ip is context.ip when the context has one, else the address
	// the collector saw: as the event's IP it loads back the same either way.
	ev.IP = r.Ctx.IP
	return ev
}

// Value is the Kafka record value of r's event, as the collector writes it.
func (r *Row) Value() ([]byte, error) {
	b, err := json.Marshal(r.ToEvent())
	if err != nil {
		return nil, fmt.Errorf("encode archived event %s: %w", r.MessageID, err)
	}
	return b, nil
}

func msTime(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

func rawObject(s string) json.RawMessage {
	if s == "" || s == "{}" {
		return nil
	}
	return json.RawMessage(s)
}
