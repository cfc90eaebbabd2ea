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

// Drain lets a running loader load everything the lanes hold now, for an
// orderly stop: it records the lanes' end offsets (once the producers of
// the accepted records stopped, everything accepted lies below them) and
// waits, at most grace, until the groups committed up to them. The wait is
// cut short when gone closes (the loader stopped by itself). It returns
// what is still not committed then, sorted by lane and partition, and how
// many records the groups were behind by when it started. The caller stops
// the loader afterwards. ctx's cancellation is ignored: a drain runs because
// a stop was asked for, often by cancelling that very context.
func (l *Loader) Drain(ctx context.Context, grace time.Duration, gone <-chan struct{}) (left []Backlog, behind int64, err error) {
	ctx = context.WithoutCancel(ctx)
	if grace <= 0 {
		grace = 30 * time.Second
	}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ends, err := l.Ends(ectx)
	cancel()
	if err != nil {
		return nil, 0, fmt.Errorf("read the lanes' end offsets to drain the loader: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	// Ends when the wait does or cuts it short when the loader has
	// already stopped.
	go func() {
		select {
		case <-gone:
			cancel()
		case <-wctx.Done():
		}
	}()
	if bs, berr := l.Behind(wctx, ends); berr == nil {
		for _, b := range bs {
			behind += b.Records()
		}
	}
	left, err = l.WaitLoaded(wctx, ends)
	if err != nil {
		err = fmt.Errorf("check what the loader committed: %w", err)
	}
	for _, b := range left {
		behind -= b.Records()
	}
	return left, behind, err
}

// RunDraining runs the loader until ctx ends and then stops it in order, as
// a loader process does on SIGTERM: it drains (see Drain) within
// loader.shutdown_timeout, saying what is left when the time is up, then
// stops the lanes, which insert and commit the batch in hand. A loader that
// fails by itself is not drained.
func (l *Loader) RunDraining(ctx context.Context) error {
	// The loader's context outlives ctx by the drain; stopLoad ends it.
	lctx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoad()
	done := make(chan error, 1)
	gone := make(chan struct{})
	go func() {
		done <- l.Run(lctx)
		close(gone)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	l.log.Info("stopping: loading what the lanes hold before leaving", "timeout", l.cfg.ShutdownTimeout)
	left, _, err := l.Drain(ctx, l.cfg.ShutdownTimeout, gone)
	if len(left) > 0 {
		l.log.Warn("the loader did not load everything the lanes held at the stop within loader.shutdown_timeout",
			"timeout", l.cfg.ShutdownTimeout, "left", DescribeBacklog(left))
	}
	stopLoad()
	return errors.Join(<-done, err)
}
