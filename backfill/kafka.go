package backfill

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// kafkaPartition is what Kafka says about one partition for a window.
type kafkaPartition struct {
	partition int32
	window    Range // offsets of the records in the window
	logStart  int64
	logEnd    int64
	committed int64 // loader's next offset (-1: the group never committed)
	truncated bool  // retention may have deleted records of the window
}

// windowOffsets finds, for each partition of topic, the offsets of the
// records whose timestamps fall in [fromMs, toMs): the first offset at or
// after fromMs up to the first offset at or after toMs, as offsets-for-times
// answers them. group is the loader's consumer group for the topic's lane.
func windowOffsets(ctx context.Context, adm *kadm.Client, topic, group string, fromMs, toMs int64) ([]kafkaPartition, error) {
	starts, err := adm.ListOffsetsAfterMilli(ctx, fromMs, topic)
	if err := listErr(topic, "offsets after the window start", starts, err); err != nil {
		return nil, err
	}
	ends, err := adm.ListOffsetsAfterMilli(ctx, toMs, topic)
	if err := listErr(topic, "offsets after the window end", ends, err); err != nil {
		return nil, err
	}
	logStarts, err := adm.ListStartOffsets(ctx, topic)
	if err := listErr(topic, "start offsets", logStarts, err); err != nil {
		return nil, err
	}
	logEnds, err := adm.ListEndOffsets(ctx, topic)
	if err := listErr(topic, "end offsets", logEnds, err); err != nil {
		return nil, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
	}
	var out []kafkaPartition
	for p, s := range starts[topic] {
		e, _ := ends.Lookup(topic, p)
		ls, _ := logStarts.Lookup(topic, p)
		le, _ := logEnds.Lookup(topic, p)
		kp := kafkaPartition{partition: p, logStart: ls.Offset, logEnd: le.Offset, committed: -1}
		kp.window = Range{From: s.Offset, To: max(e.Offset, s.Offset)}
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil {
			kp.committed = c.At
		}
		// Kafka deleted records (log start past 0) and its oldest remaining
		// record is not older than the window's start: the deleted ones may
		// have been in the window, and only an archive can tell.
		kp.truncated = ls.Offset > 0 && s.Offset == ls.Offset && (kp.window.Len() == 0 || s.Timestamp > fromMs)
		out = append(out, kp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out, nil
}

func listErr(topic, what string, l kadm.ListedOffsets, err error) error {
	if err != nil {
		return fmt.Errorf("list %s of %s: %w", what, topic, err)
	}
	if err := l.Error(); err != nil {
		return fmt.Errorf("list %s of %s (does the topic exist? run tideline ingest or tideline migrate first): %w", what, topic, err)
	}
	if len(l[topic]) == 0 {
		return fmt.Errorf("list %s of %s: topic not found", what, topic)
	}
	return nil
}
