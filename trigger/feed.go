package trigger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// feed is one source of qualifications: a table ordered by a position
// column (when its rows were derived or loaded) and key columns that make
// each row unique, read in (position, keys...) order past a keyset.
type feed struct {
	// id names the feed in cursors and metrics.
	id         string
	table      string
	posCol     string
	keyCols    []string
	nameCol    string
	selectCols []string
	// zero is the smallest key tuple (typed as the columns are).
	zero []any
	scan func(driver.Rows) (feedRow, error)
}

// feedRow is one row of a feed.
type feedRow struct {
	pos  uint64
	keys []any
	// Row content; which fields are set depends on the feed.
	audience, customer, kind, message, lane, event, properties, context, contextIP string
	episode                                                                        uint32
	eventMs, ingestMs                                                              uint64
}

// occurrence is the row as Match reads it; a feed's position is the
// transition's derivation time or the event's ingest time.
func (r *feedRow) occurrence() Occurrence {
	return Occurrence{
		AudienceID: r.audience, Kind: r.kind, Episode: r.episode, Event: r.event, Properties: r.properties,
		Context: r.context, ContextIP: r.contextIP,
		CustomerID: r.customer, MessageID: r.message, Lane: r.lane,
		EventTimeMs: r.eventMs, IngestTimeMs: r.ingestMs, DerivedAtMs: r.pos,
	}
}

func (r *feedRow) id() string {
	var b strings.Builder
	fmt.Fprint(&b, r.pos)
	for _, k := range r.keys {
		b.WriteByte(0)
		fmt.Fprint(&b, k)
	}
	return b.String()
}

var transitionFeed = &feed{
	id:         "transitions",
	table:      "trigger_transition_feed",
	posCol:     "derived_at_ms",
	keyCols:    []string{"audience_id", "customer_id", "episode", "kind"},
	nameCol:    "audience_id",
	selectCols: []string{"derived_at_ms", "audience_id", "customer_id", "episode", "kind", "event_time_ms", "ingest_time_ms", "message_id", "lane"},
	zero:       []any{"", "", uint32(0), ""},
	scan: func(rows driver.Rows) (feedRow, error) {
		var r feedRow
		err := rows.Scan(&r.pos, &r.audience, &r.customer, &r.episode, &r.kind, &r.eventMs, &r.ingestMs, &r.message, &r.lane)
		r.keys = []any{r.audience, r.customer, r.episode, r.kind}
		return r, err
	},
}

var eventFeed = &feed{
	id:         "events",
	table:      "trigger_event_feed",
	posCol:     "ingest_time_ms",
	keyCols:    []string{"event", "customer_id", "message_id"},
	nameCol:    "event",
	selectCols: []string{"ingest_time_ms", "event", "customer_id", "message_id", "properties", "event_time_ms", "lane", "context", "context_ip"},
	zero:       []any{"", "", ""},
	scan: func(rows driver.Rows) (feedRow, error) {
		var r feedRow
		err := rows.Scan(&r.pos, &r.event, &r.customer, &r.message, &r.properties, &r.eventMs, &r.lane, &r.context, &r.contextIP)
		r.ingestMs = r.pos
		r.keys = []any{r.event, r.customer, r.message}
		return r, err
	},
}

// feedReader reads one feed past its keyset position. Rows can become
// visible after rows with a later position (two inserts stamped in one
// order and finished in the other), so each poll also counts the rows in
// the overlap window behind the position and, if ClickHouse holds more than
// were read, reads the window again for the missing ones.
type feedReader struct {
	f *feed
	// next is the keyset position: (pos, keys...) of the last row read.
	next []any
	// read holds the rows read within the overlap window, by row id.
	read map[string]uint64
	// caughtUpMs is when a poll last reached the end of the feed.
	caughtUpMs uint64
}

func newFeedReader(f *feed, startMs uint64) *feedReader {
	r := &feedReader{f: f, read: map[string]uint64{}}
	r.rewind(startMs)
	return r
}

// pos is the position of the last row read.
func (r *feedReader) pos() uint64 { return r.next[0].(uint64) }

// rewind moves the position back to startMs (never forward).
func (r *feedReader) rewind(startMs uint64) {
	if r.next != nil && r.pos() <= startMs {
		return
	}
	r.next = append([]any{startMs}, r.f.zero...)
}

// feedBatch is what one poll read; commit applies it to the reader once
// the rows are recorded.
type feedBatch struct {
	rows     []feedRow
	next     []any
	full     bool
	polledMs uint64
}

// poll reads up to limit new rows: first past the position, then rows the
// overlap check finds missing behind it.
func (r *feedReader) poll(ctx context.Context, conn *chdb.Conn, names []string, shard string, shardArgs []any, limit int, overlap time.Duration, nowMs uint64) (*feedBatch, error) {
	b := &feedBatch{next: r.next, polledMs: nowMs}
	if len(names) == 0 {
		return b, nil
	}
	set := chdb.Set(names)
	args := append([]any{r.pos(), nowMs}, r.next...)
	args = append(args, set)
	args = append(args, shardArgs...)
	args = append(args, uint64(limit))
	// The overlap check runs beside the read, on the window behind the
	// current position, so it costs no extra round trip.
	lo := sub(r.pos(), ms(overlap))
	type check struct {
		missing bool
		err     error
	}
	checked := make(chan check, 1)
	go func() {
		m, err := r.missing(ctx, conn, set, shard, shardArgs, lo, r.next)
		checked <- check{m, err}
	}()
	page, err := r.query(ctx, conn, feedQuery(r.f, shard, false), args)
	chk := <-checked
	if err != nil {
		return nil, err
	}
	if chk.err != nil {
		return nil, chk.err
	}
	seen := map[string]bool{}
	for i := range page {
		id := page[i].id()
		if _, done := r.read[id]; !done && !seen[id] {
			seen[id] = true
			b.rows = append(b.rows, page[i])
		}
	}
	if len(page) > 0 {
		last := page[len(page)-1]
		b.next = append([]any{last.pos}, last.keys...)
	}
	b.full = len(page) >= limit
	if chk.missing {
		late, err := r.window(ctx, conn, set, shard, shardArgs, lo, r.next, limit, seen)
		if err != nil {
			return nil, err
		}
		b.rows = append(b.rows, late...)
	}
	return b, nil
}

// missing reports whether ClickHouse holds more distinct rows between lo
// and next than this reader has read. It only reads the reader's state, so
// it may run beside a read of the rows past next.
func (r *feedReader) missing(ctx context.Context, conn *chdb.Conn, set any, shard string, shardArgs []any, lo uint64, next []any) (bool, error) {
	args := append([]any{lo}, next...)
	args = append(args, set)
	args = append(args, shardArgs...)
	var n uint64
	if err := conn.QueryRow(ctx, feedQuery(r.f, shard, true), args...).Scan(&n); err != nil {
		return false, fmt.Errorf("count %s feed window: %w", r.f.id, err)
	}
	var have uint64
	for _, p := range r.read {
		if p >= lo {
			have++
		}
	}
	return n > have, nil
}

// window reads the rows between lo and next that were not read yet, up to limit.
func (r *feedReader) window(ctx context.Context, conn *chdb.Conn, set any, shard string, shardArgs []any, lo uint64, next []any, limit int, seen map[string]bool) ([]feedRow, error) {
	var out []feedRow
	from := append([]any{lo}, r.f.zero...)
	for len(out) < limit {
		args := append([]any{lo}, from...)
		args = append(args, next...)
		args = append(args, set)
		args = append(args, shardArgs...)
		args = append(args, uint64(limit))
		page, err := r.query(ctx, conn, windowQuery(r.f, shard), args)
		if err != nil {
			return nil, err
		}
		for i := range page {
			id := page[i].id()
			if _, done := r.read[id]; !done && !seen[id] {
				seen[id] = true
				out = append(out, page[i])
			}
		}
		if len(page) < limit {
			break
		}
		last := page[len(page)-1]
		from = append([]any{last.pos}, last.keys...)
	}
	return out, nil
}

func (r *feedReader) query(ctx context.Context, conn *chdb.Conn, q string, args []any) ([]feedRow, error) {
	var out []feedRow
	err := conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		row, err := r.f.scan(rows)
		if err != nil {
			return err
		}
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s feed: %w", r.f.id, err)
	}
	return out, nil
}

// commit records a batch as read and forgets rows behind the overlap window.
func (r *feedReader) commit(b *feedBatch, overlap time.Duration) {
	for i := range b.rows {
		r.read[b.rows[i].id()] = b.rows[i].pos
	}
	if b.next[0].(uint64) >= r.pos() {
		r.next = b.next
	}
	if !b.full {
		r.caughtUpMs = b.polledMs
	}
	lo := sub(r.pos(), ms(overlap))
	for id, p := range r.read {
		if p < lo {
			delete(r.read, id)
		}
	}
}
