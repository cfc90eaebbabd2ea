package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
)

// Source holds the records a window should have loaded: Kafka itself, or
// an archive exported before retention deleted them.
type Source interface {
	// Name is "kafka" or the archive's path.
	Name() string
	// Window returns, per partition of topic, the positions of the window's
	// records the source holds and what Kafka says about them.
	Window(ctx context.Context, topic, group string, w Window) ([]SourcePartition, error)
	// Read passes the records at the wanted positions to fn in batches, in
	// offset order per partition, each with its original topic, partition
	// and offset, and returns the wanted positions it does not hold.
	Read(ctx context.Context, want map[string]map[int32]Ranges, fn func([]*kgo.Record) error) (unavailable map[string]map[int32]Ranges, err error)
}

// SourcePartition is one partition's positions in a window.
type SourcePartition struct {
	Partition int32
	// Held lists the offsets of the window's records the source holds.
	Held Ranges
	// Span is the window's offset range (Held's bounds for an archive).
	Span      Range
	LogStart  int64
	Committed int64
	Truncated bool
}

// KafkaSource reads records from the brokers.
type KafkaSource struct {
	Seeds []string
	Log   *slog.Logger
	// IdlePolls ends a partition's read after this many empty polls of
	// PollTimeout, for offsets that cannot be fetched (compacted away or
	// transaction markers). Defaults 3 and 5s.
	IdlePolls   int
	PollTimeout time.Duration
}

// Name implements Source.
func (k *KafkaSource) Name() string { return "kafka" }

func (k *KafkaSource) admin() (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(broker.ClientOpts(k.Seeds, k.Log)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client for %v: %w", k.Seeds, err)
	}
	return kadm.NewClient(cl), cl, nil
}

// Window implements Source with offsets-for-times.
func (k *KafkaSource) Window(ctx context.Context, topic, group string, w Window) ([]SourcePartition, error) {
	adm, cl, err := k.admin()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	kps, err := windowOffsets(ctx, adm, topic, group, w.FromMs(), w.ToMs())
	if err != nil {
		return nil, err
	}
	out := make([]SourcePartition, 0, len(kps))
	for _, kp := range kps {
		sp := SourcePartition{Partition: kp.partition, Span: kp.window, LogStart: kp.logStart, Committed: kp.committed, Truncated: kp.truncated}
		if kp.window.Len() > 0 {
			sp.Held = Ranges{kp.window}
		}
		out = append(out, sp)
	}
	return out, nil
}

type readState struct {
	want     Ranges
	idx      int   // first wanted range not yet passed
	pos      int64 // offset after the last record seen
	idle     int   // polls in a row without records
	done     bool  // every wanted offset was passed
	finished bool  // accounted for and paused
}

// advance notes that the record at off was seen: every wanted offset
// below off+1 is passed, and the read is done once none is left.
func (s *readState) advance(off int64) {
	s.pos = off + 1
	for s.idx < len(s.want) && s.want[s.idx].To <= s.pos {
		s.idx++
	}
	if s.idx == len(s.want) {
		s.done = true
	}
}

// jumpAfter is how far ahead the next wanted range must start for the
// reader to seek instead of reading through the records in between.
const jumpAfter = 20000

// Read implements Source, consuming the wanted partitions directly (no
// consumer group) from the first wanted offset and seeking over long
// stretches that are not wanted.
func (k *KafkaSource) Read(ctx context.Context, want map[string]map[int32]Ranges, fn func([]*kgo.Record) error) (map[string]map[int32]Ranges, error) {
	idlePolls, pollTimeout := k.IdlePolls, k.PollTimeout
	if idlePolls <= 0 {
		idlePolls = 3
	}
	if pollTimeout <= 0 {
		pollTimeout = 5 * time.Second
	}
	unavailable := map[string]map[int32]Ranges{}
	addUnavailable := func(t string, p int32, rs Ranges) {
		if rs.Len() == 0 {
			return
		}
		if unavailable[t] == nil {
			unavailable[t] = map[int32]Ranges{}
		}
		unavailable[t][p] = normalize(append(unavailable[t][p], rs...))
	}
	var topics []string
	for t := range want {
		topics = append(topics, t)
	}
	if len(topics) == 0 {
		return unavailable, nil
	}
	adm, acl, err := k.admin()
	if err != nil {
		return nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = ends.Error()
		}
	}
	acl.Close()
	if err != nil {
		return nil, fmt.Errorf("list offsets of %v: %w", topics, err)
	}

	states := map[string]map[int32]*readState{}
	offsets := map[string]map[int32]kgo.Offset{}
	for t, ps := range want {
		for p, rs := range ps {
			s, _ := starts.Lookup(t, p)
			e, _ := ends.Lookup(t, p)
			// What retention deleted, or what was never written, cannot be read.
			addUnavailable(t, p, rs.Clip(0, s.Offset))
			addUnavailable(t, p, rs.Clip(max(e.Offset, 0), 1<<62))
			held := rs.Clip(s.Offset, e.Offset)
			if len(held) == 0 {
				continue
			}
			if states[t] == nil {
				states[t], offsets[t] = map[int32]*readState{}, map[int32]kgo.Offset{}
			}
			states[t][p] = &readState{want: held}
			offsets[t][p] = kgo.NewOffset().At(held[0].From)
		}
	}
	pending := 0
	for _, ps := range states {
		pending += len(ps)
	}
	if pending == 0 {
		return unavailable, nil
	}
	cl, err := kgo.NewClient(append(broker.ClientOpts(k.Seeds, k.Log),
		kgo.ConsumePartitions(offsets),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(16<<20),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer for %v: %w", k.Seeds, err)
	}
	defer cl.Close()

	finish := func(t string, p int32, st *readState) {
		if !st.done {
			addUnavailable(t, p, st.want[st.idx:].Clip(st.pos, 1<<62))
		}
		st.finished = true
		pending--
		cl.PauseFetchPartitions(map[string][]int32{t: {p}})
	}
	var batch []*kgo.Record
	for pending > 0 {
		pctx, cancel := context.WithTimeout(ctx, pollTimeout)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		got := map[*readState]bool{}
		batch = batch[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			st := states[fp.Topic][fp.Partition]
			if st == nil || st.finished || st.done {
				return
			}
			for _, rec := range fp.Records {
				if st.done {
					break
				}
				if st.want[st.idx].Contains(rec.Offset) {
					batch = append(batch, rec)
				}
				st.advance(rec.Offset)
			}
			if len(fp.Records) > 0 {
				got[st] = true
			}
			if !st.done {
				last := fp.Records[len(fp.Records)-1].Offset
				if next := st.want[st.idx].From; next > last+jumpAfter {
					cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{fp.Topic: {fp.Partition: {Epoch: -1, Offset: next}}})
				}
			}
		})
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return nil, err
			}
		}
		for t, ps := range states {
			for p, st := range ps {
				switch {
				case st.finished:
				case st.done:
					finish(t, p, st)
				case got[st]:
					st.idle = 0
				default:
					if st.idle++; st.idle >= idlePolls {
						k.logger().Warn("offsets could not be fetched; counting them unavailable", "topic", t, "partition", p, "from", max(st.pos, st.want[st.idx].From))
						finish(t, p, st)
					}
				}
			}
		}
	}
	return unavailable, nil
}

func (k *KafkaSource) logger() *slog.Logger {
	if k.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Log
}
