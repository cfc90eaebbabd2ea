package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/frames"
	"github.com/tideline-dev/tideline/grafana/query"
)

// streamOverlap is how far behind its cursor a poll reads again: rows the
// evaluator derived just before a poll can land in ClickHouse just after
// it, and re-reading a short window (deduplicated by key) catches them.
const streamOverlap = 5 * time.Second

// SubscribeStream allows the live/... paths that QueryData hands out.
func (d *Datasource) SubscribeStream(_ context.Context, req *backend.SubscribeStreamRequest) (*backend.SubscribeStreamResponse, error) {
	if _, err := query.ParseLivePath(req.Path); err != nil {
		d.log.Debug("subscribe refused", "path", req.Path, "error", err)
		return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusNotFound}, nil
	}
	return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusOK}, nil
}

// PublishStream is denied: the live channel is read-only.
func (d *Datasource) PublishStream(context.Context, *backend.PublishStreamRequest) (*backend.PublishStreamResponse, error) {
	return &backend.PublishStreamResponse{Status: backend.PublishStreamStatusPermissionDenied}, nil
}

// RunStream pushes the qualifications derived after the stream started,
// polling every d.poll, until Grafana cancels ctx (the last subscriber
// left). A failed poll is logged and retried: a ClickHouse restart pauses
// the panel rather than ending it.
func (d *Datasource) RunStream(ctx context.Context, req *backend.RunStreamRequest, sender *backend.StreamSender) error {
	audiences, err := query.ParseLivePath(req.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	names := d.audienceNames(ctx)
	l := newLiveCursor(uint64(d.now().UnixMilli()))
	ticker := time.NewTicker(d.poll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		var rows []frames.Qualification
		err := d.each(ctx, query.LivePoll(audiences, l.from()), func(r driver.Rows) error {
			q, err := scanQualification(r)
			rows = append(rows, q)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.Warn("live poll failed; retrying", "path", req.Path, "error", err)
			continue
		}
		fresh := l.take(rows, query.PollLimit)
		if len(fresh) == 0 {
			continue
		}
		for _, q := range fresh {
			if _, ok := names[q.AudienceID]; !ok {
				names = d.audienceNames(ctx)
				break
			}
		}
		if err := sender.SendFrame(frames.Live(fresh, names), data.IncludeAll); err != nil {
			return fmt.Errorf("send live frame: %w", err)
		}
	}
}

// audienceNames maps ids to names; without them the panel shows ids.
func (d *Datasource) audienceNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	err := d.each(ctx, query.EntityList(false), func(rows driver.Rows) error {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return err
		}
		names[id] = name
		return nil
	})
	if err != nil {
		d.log.Warn("load audience names", "error", err)
	}
	return names
}

// liveCursor decides which polled rows are new. It remembers the keys it
// saw within the overlap window and skips rows derived before the stream
// started (the panel's query already showed those).
type liveCursor struct {
	start  uint64
	cursor uint64
	// full is set when the last poll hit its limit: the next poll starts at
	// the cursor itself rather than the overlap before it, so a backlog
	// larger than the limit is read forward.
	full bool
	seen map[frames.Key]uint64
}

func newLiveCursor(startMs uint64) *liveCursor {
	return &liveCursor{start: startMs, cursor: startMs, seen: map[frames.Key]uint64{}}
}

// from is where the next poll starts reading.
func (l *liveCursor) from() uint64 {
	overlap := uint64(streamOverlap.Milliseconds())
	if l.full || l.cursor < overlap {
		return l.cursor
	}
	return l.cursor - overlap
}

// take returns the rows of a poll (oldest first, at most limit) not seen
// before, and advances the cursor.
func (l *liveCursor) take(rows []frames.Qualification, limit int) []frames.Qualification {
	var fresh []frames.Qualification
	first, last := uint64(0), uint64(0)
	for i, q := range rows {
		if i == 0 {
			first = q.DerivedAtMs
		}
		last = max(last, q.DerivedAtMs)
		k := q.Key()
		if _, dup := l.seen[k]; dup {
			continue
		}
		l.seen[k] = q.DerivedAtMs
		if q.DerivedAtMs >= l.start {
			fresh = append(fresh, q)
		}
	}
	l.full = len(rows) >= limit
	if last > l.cursor {
		l.cursor = last
	}
	if l.full && first == last {
		// A whole poll of one millisecond: step past it rather than read
		// the same rows forever (the rest of that millisecond is skipped).
		l.cursor = last + 1
	}
	horizon := uint64(0)
	if overlap := uint64(streamOverlap.Milliseconds()); l.cursor > overlap {
		horizon = l.cursor - overlap
	}
	for k, at := range l.seen {
		if at < horizon {
			delete(l.seen, k)
		}
	}
	return fresh
}
