package trigger

import (
	"context"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Cursor is a poller's newest saved position in one feed and shard.
type Cursor struct {
	// Feed is the feed's id: "transitions" or "events".
	Feed  string
	Shard int32
	// PositionMs is the feed position every row before it was read at.
	PositionMs uint64
	// UpdatedAtMs is when a poller last saved the position; a recent one
	// means a poller is running.
	UpdatedAtMs uint64
}

// ReadCursors reads the newest saved position of every feed and shard.
// It is the one reader of trigger_cursors: the poller resumes from it, the
// backfill tells from it whether a poller is running and how far it read,
// and drills wait on it.
func ReadCursors(ctx context.Context, conn *chdb.Conn) ([]Cursor, error) {
	var out []Cursor
	err := conn.Each(ctx, qCursors, nil, func(rows chdb.Rows) error {
		var (
			c     Cursor
			shard uint32
		)
		if err := rows.Scan(&c.Feed, &shard, &c.PositionMs, &c.UpdatedAtMs); err != nil {
			return err
		}
		c.Shard = int32(shard)
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	return out, nil
}

// CursorPositions arranges cursors by feed and shard, the form the poller
// resumes from and the backfill compares with.
func CursorPositions(cs []Cursor) map[string]map[int32]uint64 {
	out := map[string]map[int32]uint64{}
	for _, c := range cs {
		if out[c.Feed] == nil {
			out[c.Feed] = map[int32]uint64{}
		}
		out[c.Feed][c.Shard] = c.PositionMs
	}
	return out
}

// ResetCursors forgets every saved position, as a poller that lost its
// state would: the next poller starts where its start option says.
func ResetCursors(ctx context.Context, conn *chdb.Conn) error {
	if err := conn.Delete(ctx, "trigger_cursors", "1", time.Minute); err != nil {
		return fmt.Errorf("reset positions: %w", err)
	}
	return nil
}

// CaughtUp tells whether the saved positions have reached the newest row
// of every feed: the pollers have read all that is there to read.
func CaughtUp(ctx context.Context, conn *chdb.Conn) (bool, error) {
	cursors, err := ReadCursors(ctx, conn)
	if err != nil {
		return false, err
	}
	read := map[string]uint64{}
	for _, c := range cursors {
		read[c.Feed] = max(read[c.Feed], c.PositionMs)
	}
	for _, f := range []*feed{transitionFeed, eventFeed} {
		var newest uint64
		if err := conn.QueryRow(ctx, "SELECT max("+f.posCol+") FROM "+f.table).Scan(&newest); err != nil {
			return false, fmt.Errorf("read the newest %s position: %w", f.id, err)
		}
		if read[f.id] < newest {
			return false, nil
		}
	}
	return true, nil
}
