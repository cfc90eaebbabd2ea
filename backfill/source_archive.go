package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill/archive"
)

// ArchiveSource reads records from a Parquet or Arrow IPC archive written
// by `tideline export`, for windows Kafka no longer holds.
type ArchiveSource struct {
	Path string

	index map[string]map[int32][]posTime // positions by topic and partition, sorted
}

type posTime struct {
	offset       int64
	receivedAtMs uint64
}

// Name implements Source.
func (a *ArchiveSource) Name() string { return a.Path }

// scan calls fn with every batch of archived rows.
func (a *ArchiveSource) scan(ctx context.Context, fn func([]archive.Row) error) error {
	r, err := archive.Open(ctx, a.Path)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rows, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rows); err != nil {
			return err
		}
	}
}

// ArchiveWindow returns the window an archive was exported for.
func ArchiveWindow(ctx context.Context, path string) (Window, error) {
	r, err := archive.Open(ctx, path)
	if err != nil {
		return Window{}, err
	}
	defer r.Close()
	from, to, err := r.Window()
	return Window{From: from, To: to}, err
}

// Window implements Source: the archived positions of the topic's events
// received in the window.
func (a *ArchiveSource) Window(ctx context.Context, topic, _ string, w Window) ([]SourcePartition, error) {
	if a.index == nil {
		idx := map[string]map[int32][]posTime{}
		err := a.scan(ctx, func(rows []archive.Row) error {
			for i := range rows {
				r := &rows[i]
				if idx[r.Topic] == nil {
					idx[r.Topic] = map[int32][]posTime{}
				}
				idx[r.Topic][r.Partition] = append(idx[r.Topic][r.Partition], posTime{r.Offset, r.ReceivedAtMs})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, ps := range idx {
			for _, pts := range ps {
				sort.Slice(pts, func(i, j int) bool { return pts[i].offset < pts[j].offset })
			}
		}
		a.index = idx
	}
	var out []SourcePartition
	for p, pts := range a.index[topic] {
		var offs []int64
		for _, pt := range pts {
			if int64(pt.receivedAtMs) >= w.FromMs() && int64(pt.receivedAtMs) < w.ToMs() {
				offs = append(offs, pt.offset)
			}
		}
		if len(offs) == 0 {
			continue
		}
		held := RangesOf(offs)
		out = append(out, SourcePartition{Partition: p, Held: held, Span: Range{From: held[0].From, To: held[len(held)-1].To}, Committed: -1})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// Read implements Source.
func (a *ArchiveSource) Read(ctx context.Context, want map[string]map[int32]Ranges, fn func([]*kgo.Record) error) (map[string]map[int32]Ranges, error) {
	seen := map[string]map[int32][]int64{}
	err := a.scan(ctx, func(rows []archive.Row) error {
		var batch []*kgo.Record
		for i := range rows {
			r := &rows[i]
			rs, ok := want[r.Topic][r.Partition]
			if !ok || !rs.Contains(r.Offset) {
				continue
			}
			value, err := r.Value()
			if err != nil {
				return err
			}
			batch = append(batch, &kgo.Record{
				Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
				Key: []byte(r.CustomerID), Value: value,
				Timestamp: time.UnixMilli(int64(r.ReceivedAtMs)),
			})
			if seen[r.Topic] == nil {
				seen[r.Topic] = map[int32][]int64{}
			}
			seen[r.Topic][r.Partition] = append(seen[r.Topic][r.Partition], r.Offset)
		}
		if len(batch) == 0 {
			return nil
		}
		return fn(batch)
	})
	if err != nil {
		return nil, fmt.Errorf("read archive %s: %w", a.Path, err)
	}
	unavailable := map[string]map[int32]Ranges{}
	for t, ps := range want {
		for p, rs := range ps {
			var gaps Ranges
			offs := seen[t][p]
			sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
			for _, r := range rs {
				gaps = append(gaps, gapsIn(r, offs)...)
			}
			if len(gaps) > 0 {
				if unavailable[t] == nil {
					unavailable[t] = map[int32]Ranges{}
				}
				unavailable[t][p] = gaps
			}
		}
	}
	return unavailable, nil
}
