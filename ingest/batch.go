package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/chdb"
	tsql "github.com/tideline-dev/tideline/sql"
)

// EventsTable is the table every load inserts into. The materialized views
// that derive state from each insert name it as their source; everything
// else reads it through this package's functions.
const EventsTable = "events"

// EventColumns is the column list of every insert into events. Naming the
// columns is required by ClickHouse 18.16 and keeps inserts working when a
// later migration adds a column with a DEFAULT.
const EventColumns = "message_id, type, customer_id, user_id, anonymous_id, event, properties, traits, " +
	"event_time, event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, " +
	"kafka_topic, kafka_partition, kafka_offset, " + contextColumnList

// contextColumnList names the columns of a message's context and of the
// group and alias calls, in the order EventRows.contextCols appends them.
const contextColumnList = "previous_id, group_id, context, " +
	"context_campaign_source, context_campaign_medium, context_campaign_name, context_campaign_term, context_campaign_content, " +
	"context_page_url, context_page_path, context_page_referrer, context_page_title, " +
	"context_ip, context_user_agent, context_locale, context_timezone, context_library_name, context_library_version"

// EventRows holds a batch of events as columns, the shape the native
// protocol sends, so a flush appends whole slices instead of row by row.
// The slices are reused across flushes.
type EventRows struct {
	MessageID, Type, CustomerID, UserID, AnonymousID, Event, Properties, Traits []string
	EventTime                                                                   []time.Time
	EventTimeMs, SentAtMs, ReceivedAtMs, IngestTimeMs                           []uint64
	Source, Lane, Topic                                                         []string
	Partition                                                                   []int32
	Offset                                                                      []int64
	// Ctx holds the columns of contextColumnList, in its order.
	Ctx [contextColumnCount][]string
}

const contextColumnCount = 18

// contextCols is one row's values of contextColumnList.
func contextCols(ev *Event) [contextColumnCount]string {
	c := ev.ContextColumns()
	return [contextColumnCount]string{ev.PreviousID, ev.GroupID, jsonOrEmpty(ev.Context),
		c.CampaignSource, c.CampaignMedium, c.CampaignName, c.CampaignTerm, c.CampaignContent,
		c.PageURL, c.PagePath, c.PageReferrer, c.PageTitle,
		c.IP, c.UserAgent, c.Locale, c.Timezone, c.LibraryName, c.LibraryVersion}
}

// Len is the number of rows.
func (b *EventRows) Len() int { return len(b.MessageID) }

// Reset empties the batch, keeping its memory.
func (b *EventRows) Reset() {
	b.MessageID, b.Type, b.CustomerID, b.UserID = b.MessageID[:0], b.Type[:0], b.CustomerID[:0], b.UserID[:0]
	b.AnonymousID, b.Event, b.Properties, b.Traits = b.AnonymousID[:0], b.Event[:0], b.Properties[:0], b.Traits[:0]
	b.EventTime, b.EventTimeMs, b.SentAtMs = b.EventTime[:0], b.EventTimeMs[:0], b.SentAtMs[:0]
	b.ReceivedAtMs, b.IngestTimeMs = b.ReceivedAtMs[:0], b.IngestTimeMs[:0]
	b.Source, b.Lane, b.Topic, b.Partition, b.Offset = b.Source[:0], b.Lane[:0], b.Topic[:0], b.Partition[:0], b.Offset[:0]
	for i := range b.Ctx {
		b.Ctx[i] = b.Ctx[i][:0]
	}
}

// Add appends one event consumed from topic/partition/offset.
func (b *EventRows) Add(ev *Event, lane, topic string, partition int32, offset int64) {
	b.MessageID = append(b.MessageID, ev.MessageID)
	b.Type = append(b.Type, ev.Type)
	b.CustomerID = append(b.CustomerID, ev.CustomerID())
	b.UserID = append(b.UserID, ev.UserID)
	b.AnonymousID = append(b.AnonymousID, ev.AnonymousID)
	b.Event = append(b.Event, ev.EventName())
	b.Properties = append(b.Properties, jsonOrEmpty(ev.Properties))
	b.Traits = append(b.Traits, jsonOrEmpty(ev.Traits))
	b.EventTime = append(b.EventTime, ev.Timestamp.Truncate(time.Second))
	b.EventTimeMs = append(b.EventTimeMs, msOf(ev.Timestamp))
	b.SentAtMs = append(b.SentAtMs, msOf(ev.SentAt))
	b.ReceivedAtMs = append(b.ReceivedAtMs, msOf(ev.ReceivedAt))
	b.IngestTimeMs = append(b.IngestTimeMs, 0)
	b.Source = append(b.Source, ev.Source)
	b.Lane = append(b.Lane, lane)
	b.Topic = append(b.Topic, topic)
	b.Partition = append(b.Partition, partition)
	b.Offset = append(b.Offset, offset)
	for i, v := range contextCols(ev) {
		b.Ctx[i] = append(b.Ctx[i], v)
	}
}

// insertBlockRows is the most rows sent in one block of an insert. The
// client's column buffers are sized by a block and reused for the next
// one, instead of growing to the whole batch and being dropped after
// each insert; the server squashes the blocks of one INSERT into a single
// part (min_insert_block_size_rows, 1048576 by default, also on 18.16), so
// ClickHouse does the same work as for one big block.
const insertBlockRows = 8192

// Insert sends the batch to the events table, stamping every row with ingestMs.
func (b *EventRows) Insert(ctx context.Context, conn *chdb.Conn, ingestMs uint64) error {
	b.stamp(ingestMs)
	return b.insertRows(ctx, conn, "events")
}

// InsertLocal is Insert into one cluster node's part of the events table
// (events_local under the Distributed events), which the bench measures
// without the distribution step.
func (b *EventRows) InsertLocal(ctx context.Context, conn *chdb.Conn, ingestMs uint64) error {
	b.stamp(ingestMs)
	return b.insertRows(ctx, conn, "events"+tsql.LocalSuffix)
}

// InsertLoaded sends the batch to the events table with the ingest time
// each row holds, as if loads at those times had inserted them: rows dated
// in the past for demonstrations and tests, which a live insert (stamped
// now) cannot give.
func (b *EventRows) InsertLoaded(ctx context.Context, conn *chdb.Conn) error {
	return b.insertRows(ctx, conn, "events")
}

func (b *EventRows) insertRows(ctx context.Context, conn *chdb.Conn, table string) error {
	batch, err := openEvents(ctx, conn, table)
	if err != nil {
		return err
	}
	n := b.Len()
	if err := b.appendRows(batch, false); err != nil {
		return err
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d events: %w", n, err)
	}
	return nil
}

// openEvents starts an insert into table, a table of the events table's
// columns; the rows go in with appendTo.
func openEvents(ctx context.Context, conn *chdb.Conn, table string) (driver.Batch, error) {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+EventColumns+")")
	if err != nil {
		return nil, fmt.Errorf("prepare events insert: %w", err)
	}
	return batch, nil
}

// appendTo appends the rows to an open insert, stamped with ingestMs, and
// sends them in blocks of insertBlockRows. The last block stays in the
// client for Send unless sendLast is set, which sends it too so the
// insert can take more rows later (a lane's open insert under backlog).
// The insert is aborted on error.
func (b *EventRows) appendTo(batch driver.Batch, ingestMs uint64, sendLast bool) error {
	b.stamp(ingestMs)
	return b.appendRows(batch, sendLast)
}

// stamp sets every row's ingest time.
func (b *EventRows) stamp(ingestMs uint64) {
	for i := range b.IngestTimeMs {
		b.IngestTimeMs[i] = ingestMs
	}
}

// appendRows is appendTo with the ingest times the rows hold.
func (b *EventRows) appendRows(batch driver.Batch, sendLast bool) error {
	n := b.Len()
	for lo := 0; lo < n; lo += insertBlockRows {
		hi := min(lo+insertBlockRows, n)
		cols := []any{b.MessageID[lo:hi], b.Type[lo:hi], b.CustomerID[lo:hi], b.UserID[lo:hi], b.AnonymousID[lo:hi],
			b.Event[lo:hi], b.Properties[lo:hi], b.Traits[lo:hi], b.EventTime[lo:hi], b.EventTimeMs[lo:hi],
			b.SentAtMs[lo:hi], b.ReceivedAtMs[lo:hi], b.IngestTimeMs[lo:hi], b.Source[lo:hi], b.Lane[lo:hi],
			b.Topic[lo:hi], b.Partition[lo:hi], b.Offset[lo:hi]}
		for i := range b.Ctx {
			cols = append(cols, b.Ctx[i][lo:hi])
		}
		for i, col := range cols {
			if err := batch.Column(i).Append(col); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("append events column %d: %w", i, err)
			}
		}
		if hi == n && !sendLast {
			break
		}
		if err := batch.Flush(); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("send events block of %d rows: %w", hi-lo, err)
		}
	}
	return nil
}

// DeadLetter is one rejected record.
type DeadLetter struct {
	Topic     string
	Partition int32
	Offset    int64
	Lane      string
	Reason    string
	Field     string
	Raw       string
	AtMs      uint64
}

func deadLetterOf(r *kgo.Record, lane string, fe *FieldError, atMs uint64) DeadLetter {
	raw := r.Value
	if len(raw) > maxDeadLetterBytes {
		raw = raw[:maxDeadLetterBytes]
	}
	return DeadLetter{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Lane: lane,
		Reason: fe.Code + ": " + fe.Message, Field: fe.Field, Raw: strings.ToValidUTF8(string(raw), "\uFFFD"), AtMs: atMs,
	}
}

// InsertDeadLetters writes dead letters to ClickHouse.
func InsertDeadLetters(ctx context.Context, conn *chdb.Conn, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, lane, reason, field, raw, received_at_ms, received_at)")
	if err != nil {
		return fmt.Errorf("prepare dead_letters insert: %w", err)
	}
	for _, d := range dls {
		if err := batch.Append(d.Topic, d.Partition, d.Offset, d.Lane, d.Reason, d.Field, d.Raw, d.AtMs, time.UnixMilli(int64(d.AtMs))); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append dead letter: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d dead letters: %w", len(dls), err)
	}
	return nil
}

// Progress is a partition's committed position and watermark.
type Progress struct {
	Lane            string
	Topic           string
	Partition       int32
	CommittedOffset int64
	HighWatermark   int64
	WatermarkMs     uint64
}

// InsertProgress records partitions' progress in loader_progress.
func InsertProgress(ctx context.Context, conn *chdb.Conn, ps []Progress, atMs uint64) error {
	if len(ps) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO loader_progress (lane, kafka_topic, kafka_partition, committed_offset, high_watermark, watermark_ms, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare loader_progress insert: %w", err)
	}
	for _, p := range ps {
		if err := batch.Append(p.Lane, p.Topic, p.Partition, p.CommittedOffset, p.HighWatermark, p.WatermarkMs, atMs); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append progress: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert loader progress: %w", err)
	}
	return nil
}

// LanePartition names a partition of a lane's topic.
type LanePartition struct {
	Lane      string
	Partition int32
}

// InsertsFinished returns, per lane and partition, the time of the newest
// loader_progress row: every insert of the partition's records that a
// loader began before that time has been acknowledged, with every view of
// events filled. A loader records a partition's progress only after
// ClickHouse acknowledged its insert, and inserts and records progress one
// after the other on each lane. The partition can only have changed owner
// meanwhile if the group took it from a loader still inserting, which
// then cannot commit those records: the new owner consumes and inserts
// them again.
func InsertsFinished(ctx context.Context, conn *chdb.Conn) (map[LanePartition]uint64, error) {
	out := map[LanePartition]uint64{}
	err := conn.Each(ctx, `SELECT lane, kafka_partition, max(p_updated_at_ms) FROM
(
    SELECT kafka_topic, kafka_partition, argMax(lane, updated_at_ms) AS lane, max(updated_at_ms) AS p_updated_at_ms
    FROM loader_progress
    GROUP BY kafka_topic, kafka_partition
)
GROUP BY lane, kafka_partition`, nil, func(rows chdb.Rows) error {
		var k LanePartition
		var at uint64
		if err := rows.Scan(&k.Lane, &k.Partition, &at); err != nil {
			return err
		}
		out[k] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read loader progress: %w", err)
	}
	return out, nil
}

func jsonOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

func msOf(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixMilli())
}
