package materialize

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// touch is one row of customer_touches: an inserted event and the customer
// it touched.
type touch struct {
	at                     uint32
	customer               string
	alias, hasTraits, link bool
	message, typ, event    string
	lane                   string
	eventTime, ingestTime  uint64
	// partition is the Kafka partition the row was consumed from (-1 when
	// unknown).
	partition int32
}

// touchReader reads customer_touches past a cursor. Rows are stamped with
// the server's clock when their insert is processed but become visible only
// when the insert commits, so each read goes back TouchOverlap behind the
// cursor. To avoid re-processing that overlap, the reader remembers how many
// rows each recent second had and which it handed out: a first cheap query
// counts rows per second, and only seconds whose count changed are fetched.
//
// One insert fills all views of events one after the other (on 18.16 in
// the order of their names, so customer_touches before identity_links and
// the signals), so a touch can be visible before the same insert's
// attribute, signal and identity rows are. A touch is therefore handed out
// when first seen, for low latency, and again once it has settled. On one
// server a touch has settled as soon as the loader's progress shows its
// insert finished (insertsDone): every view's rows are visible then, so a
// touch whose insert is known finished when first read is handed out once,
// and one whose insert finishes later is looked at again by the next pass,
// not TouchSettle later. On a cluster (replicated) the tables every server
// holds a copy of (identity claims and links, input lanes) reach the
// evaluator's server by replication after the insert, so there a touch
// settles a whole TouchSettle after it, and after its insert finished
// where that can be told. A touch whose finish cannot be told settles
// TouchSettle after it.
type touchReader struct {
	overlap, settle uint32
	// replicated: the evaluator reads a cluster, where a finished insert
	// does not make its replicated rows visible everywhere.
	replicated bool
	max        int
	counts     map[uint32]uint64
	seen       map[uint32]map[string]bool
	unsettled  []touch
}

func newTouchReader(overlapSec, settleSec uint32, max int, replicated bool) *touchReader {
	r := &touchReader{overlap: overlapSec, settle: settleSec, max: max, replicated: replicated}
	r.reset()
	return r
}

func (t *touch) key() string {
	return t.customer + "\x00" + t.message + "\x00" + t.lane + "\x00" + strconv.FormatUint(t.ingestTime, 10)
}

// read returns the rows not handed out before, from cursor - overlap on, at
// most max rows (whole seconds), and the new cursor. cursor 0 starts at the
// server's now less the overlap (a first pass sweeps every customer anyway).
func (r *touchReader) read(ctx context.Context, conn *chdb.Conn, cursor uint32) ([]touch, uint32, error) {
	var now uint32
	if err := conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&now); err != nil {
		return nil, cursor, fmt.Errorf("read server time: %w", err)
	}
	if cursor == 0 {
		cursor = now
	}
	fresh, next, err := r.readNew(ctx, conn, cursor)
	if err != nil {
		return nil, cursor, err
	}
	finished, err := ingest.InsertsFinished(ctx, conn)
	if err != nil {
		return nil, cursor, err
	}
	done := insertsDone(finished)
	// Hand out again the touches that have settled since they were first
	// read; keep the fresh ones for a second look.
	out := fresh
	kept := r.unsettled[:0]
	for _, t := range r.unsettled {
		if r.settled(t, done, now) {
			out = append(out, t)
		} else {
			kept = append(kept, t)
		}
	}
	r.unsettled = kept
	for _, t := range fresh {
		if !r.settled(t, done, now) {
			r.unsettled = append(r.unsettled, t)
		}
	}
	return out, next, nil
}

// settled reports whether a look at t as of the server's second now sees
// every row of its insert: on one server once its insert is known
// finished; otherwise once it is a whole settle time old (touched_at is
// truncated to its second, so a touch of second s is settle old from
// s+1+settle on, not at s+settle) and, where the loader's progress can
// tell, its insert finished. A live touch whose insert's progress never
// comes (the insert failed and the partition fell idle) is taken as
// settled after the overlap, the longest an insert is assumed to take to
// become visible.
func (r *touchReader) settled(t touch, done insertsDone, now uint32) bool {
	older := func(wait uint32) bool { return uint64(t.at)+uint64(wait) < uint64(now) }
	switch {
	case done.finished(t) && !r.replicated:
		return true
	case done.knows(t) && !done.finished(t):
		return older(r.overlap)
	}
	return older(r.settle)
}

// insertsDone is, per lane and partition, when the last insert known to
// be finished began (ingest.InsertsFinished).
type insertsDone map[ingest.LanePartition]uint64

// knows reports whether the loader's progress can tell when t's insert
// finished. A touch of the backfill lane carries the partition of its
// original lane, not the one it was consumed from, so it cannot.
func (d insertsDone) knows(t touch) bool {
	return t.partition >= 0 && t.lane != "backfill" && t.ingestTime != 0
}

// finished reports whether t's insert has certainly finished.
func (d insertsDone) finished(t touch) bool {
	return d.knows(t) && d[ingest.LanePartition{Lane: t.lane, Partition: t.partition}] > t.ingestTime
}

// readNew returns the touches not handed out before.
func (r *touchReader) readNew(ctx context.Context, conn *chdb.Conn, cursor uint32) ([]touch, uint32, error) {
	from := uint32(0)
	if cursor > r.overlap {
		from = cursor - r.overlap
	}
	type second struct {
		s uint32
		n uint64
	}
	var secs []second
	err := conn.Each(ctx, "SELECT toUInt32(touched_at) AS s, count() FROM customer_touches WHERE touched_at >= toDateTime(?) GROUP BY s ORDER BY s", []any{from},
		func(rows chdb.Rows) error {
			var sc second
			if err := rows.Scan(&sc.s, &sc.n); err != nil {
				return err
			}
			secs = append(secs, sc)
			return nil
		})
	if err != nil {
		return nil, cursor, fmt.Errorf("count customer touches: %w", err)
	}
	first := -1
	for i, sc := range secs {
		if r.counts[sc.s] != sc.n {
			first = i
			break
		}
	}
	newCursor := cursor
	if len(secs) > 0 && secs[len(secs)-1].s > newCursor {
		newCursor = secs[len(secs)-1].s
	}
	if first < 0 {
		r.prune(newCursor)
		return nil, newCursor, nil
	}
	// Whole seconds from the first changed one, up to max rows (at least one second).
	last, total := first, uint64(0)
	for i := first; i < len(secs); i++ {
		if i > first && total+secs[i].n > uint64(r.max) {
			break
		}
		total += secs[i].n
		last = i
	}
	if last < len(secs)-1 {
		newCursor = secs[last].s
	}
	fetched := map[uint32]uint64{}
	var out []touch
	err = conn.Each(ctx, `SELECT toUInt32(touched_at), customer_id, alias, message_id, type, event, has_traits, link, event_time_ms, ingest_time_ms, lane, kafka_partition
FROM customer_touches WHERE touched_at >= toDateTime(?) AND touched_at <= toDateTime(?)`, []any{secs[first].s, secs[last].s}, func(rows chdb.Rows) error {
		var t touch
		var alias, traits, link uint8
		if err := rows.Scan(&t.at, &t.customer, &alias, &t.message, &t.typ, &t.event, &traits, &link, &t.eventTime, &t.ingestTime, &t.lane, &t.partition); err != nil {
			return err
		}
		t.alias, t.hasTraits, t.link = alias == 1, traits == 1, link == 1
		fetched[t.at]++
		seen := r.seen[t.at]
		if seen == nil {
			seen = map[string]bool{}
			r.seen[t.at] = seen
		}
		k := t.key()
		if seen[k] {
			return nil
		}
		seen[k] = true
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, cursor, fmt.Errorf("read customer touches: %w", err)
	}
	for s, n := range fetched {
		r.counts[s] = n
	}
	r.prune(newCursor)
	return out, newCursor, nil
}

// prune forgets seconds that will not be read again.
func (r *touchReader) prune(cursor uint32) {
	if cursor <= r.overlap {
		return
	}
	for s := range r.counts {
		if s < cursor-r.overlap {
			delete(r.counts, s)
			delete(r.seen, s)
		}
	}
	for s := range r.seen {
		if s < cursor-r.overlap {
			delete(r.seen, s)
		}
	}
}

// reset forgets everything, as after a restart: the next read goes back
// the whole overlap, which is longer than the settle time.
func (r *touchReader) reset() {
	r.counts, r.seen, r.unsettled = map[uint32]uint64{}, map[uint32]map[string]bool{}, nil
}
