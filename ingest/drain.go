package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
)

// GroupOf is the consumer group that loads a lane. The topic prefix
// separates deployments sharing a cluster, so it separates their groups too.
func (c LoaderConfig) GroupOf(bc broker.Config, lane string) string {
	return bc.TopicPrefix + c.Group + "." + lane
}

// Offsets are per-lane, per-partition offsets: an end of what Kafka holds,
// or how far a lane's group has committed.
type Offsets map[string]map[int32]int64

// Backlog is a range of a partition that a lane's group has not committed
// (so not loaded): offsets [From, To) of Topic's Partition.
type Backlog struct {
	Lane      string
	Topic     string
	Group     string
	Partition int32
	From, To  int64
}

// Records is how many records the range holds.
func (b Backlog) Records() int64 { return b.To - b.From }

func (b Backlog) String() string {
	return fmt.Sprintf("lane %s: %s partition %d offsets %d-%d (%d records, group %s)",
		b.Lane, b.Topic, b.Partition, b.From, b.To-1, b.Records(), b.Group)
}

// DescribeBacklog says in one line per range what is left and where.
func DescribeBacklog(bs []Backlog) string {
	lines := make([]string, len(bs))
	for i, b := range bs {
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}

// Ends returns the end offsets of the loader's lane topics now: once the
// producers of the accepted records stopped, everything accepted lies below them.
func (l *Loader) Ends(ctx context.Context) (Offsets, error) {
	adm, done, err := l.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	out := Offsets{}
	for _, lane := range l.cfg.Lanes {
		topic := l.bc.MustTopic(lane)
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		out[lane] = map[int32]int64{}
		var perr error
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				perr = fmt.Errorf("end offset of %s partition %d: %w", topic, o.Partition, o.Err)
				return
			}
			out[lane][o.Partition] = o.Offset
		})
		if perr != nil {
			return nil, perr
		}
	}
	return out, nil
}

// Behind returns what the lanes' groups have not committed below targets,
// sorted by lane and partition; nil when everything up to targets is loaded.
// A partition without a commit counts from its log start.
func (l *Loader) Behind(ctx context.Context, targets Offsets) ([]Backlog, error) {
	adm, done, err := l.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	var out []Backlog
	for lane, parts := range targets {
		topic, group := l.bc.MustTopic(lane), l.cfg.GroupOf(l.bc, lane)
		committed, err := adm.FetchOffsets(ctx, group)
		if errors.Is(err, kerr.GroupIDNotFound) {
			// A group that never committed: everything is still to load.
			committed, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
		}
		var starts kadm.ListedOffsets
		for p, end := range parts {
			from := int64(-1)
			if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At >= 0 {
				from = c.At
			}
			if from < 0 {
				if starts == nil {
					if starts, err = adm.ListStartOffsets(ctx, topic); err != nil {
						return nil, fmt.Errorf("start offsets of %s: %w", topic, err)
					}
				}
				from = 0
				if s, ok := starts.Lookup(topic, p); ok && s.Err == nil {
					from = s.Offset
				}
			}
			if from < end {
				out = append(out, Backlog{Lane: lane, Topic: topic, Group: group, Partition: p, From: from, To: end})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Lane != out[j].Lane {
			return out[i].Lane < out[j].Lane
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// WaitLoaded waits until the lanes' groups committed everything below
// targets, or ctx ends; it returns what is still behind then. A loader
// commits only what ClickHouse acknowledged, so a commit at the target
// means every record below it is inserted or dead-lettered.
func (l *Loader) WaitLoaded(ctx context.Context, targets Offsets) ([]Backlog, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		// Each check gets its own bound, so the last one after ctx ended
		// can still say what is left.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		behind, err := l.Behind(cctx, targets)
		cancel()
		if err == nil && len(behind) == 0 {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return behind, err
		case <-tick.C:
		}
	}
}

func (l *Loader) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(broker.ClientOpts(l.seeds, nil)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka admin client for %v: %w", l.seeds, err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}
