package backfill

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// positionsSQL selects the Kafka positions ClickHouse holds for a topic
// (ingest.HeldPositions); the %s is the partition filter built by
// partitionFilter.
const positionsSQL = ingest.HeldPositions

// partitionFilter returns "(kafka_partition = ? AND kafka_offset >= ? AND
// kafka_offset < ?) OR ..." for the spans, with its arguments.
func partitionFilter(spans map[int32]Range, extra func(p int32) (string, []any)) (string, []any) {
	parts := sortedPartitions(spans)
	if len(parts) == 0 {
		// No partition in range: a condition that matches nothing, so the
		// callers' "AND (...)" stays valid SQL for an empty window.
		return "0", nil
	}
	var sb strings.Builder
	var args []any
	for i, p := range parts {
		if i > 0 {
			sb.WriteString(" OR ")
		}
		sb.WriteString("(kafka_partition = ? AND kafka_offset >= ? AND kafka_offset < ?")
		args = append(args, p, spans[p].From, spans[p].To)
		if extra != nil {
			cond, a := extra(p)
			sb.WriteString(" AND " + cond)
			args = append(args, a...)
		}
		sb.WriteString(")")
	}
	return sb.String(), args
}

func sortedPartitions[V any](m map[int32]V) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// missingIn returns, per partition, the offsets of want that ClickHouse holds
// neither as an event nor as a dead letter.
//
// It counts the distinct offsets present per bucket of bucketSize offsets:
// a bucket whose count equals its size is complete and an empty one is
// wholly missing, both without listing offsets; only the offsets of partly
// present buckets are fetched. A healthy window costs one aggregate query.
func missingIn(ctx context.Context, conn *chdb.Conn, topic string, want map[int32]Ranges, bucketSize int64) (map[int32]Ranges, error) {
	spans := map[int32]Range{}
	for p, rs := range want {
		if len(rs) > 0 {
			spans[p] = Range{From: rs[0].From, To: rs[len(rs)-1].To}
		}
	}
	out := map[int32]Ranges{}
	if len(spans) == 0 {
		return out, nil
	}
	filter, fargs := partitionFilter(spans, nil)
	q := "SELECT kafka_partition, intDiv(kafka_offset, ?) AS bucket, uniqExact(kafka_offset) FROM (" +
		fmt.Sprintf(positionsSQL, filter) + ") GROUP BY kafka_partition, bucket"
	args := append([]any{bucketSize, topic}, fargs...)
	args = append(append(args, topic), fargs...)
	counts := map[int32]map[int64]uint64{}
	err := conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		var p int32
		var b int64
		var n uint64
		if err := rows.Scan(&p, &b, &n); err != nil {
			return err
		}
		if counts[p] == nil {
			counts[p] = map[int64]uint64{}
		}
		counts[p][b] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count offsets of %s in clickhouse: %w", topic, err)
	}

	partial := map[int32][]int64{}
	for p, rs := range want {
		span := spans[p]
		for b := span.From / bucketSize; b <= (span.To-1)/bucketSize; b++ {
			cover := Range{From: max(span.From, b*bucketSize), To: min(span.To, (b+1)*bucketSize)}
			wanted := rs.Clip(cover.From, cover.To)
			if wanted.Len() == 0 {
				continue
			}
			switch n := counts[p][b]; {
			case n == 0:
				out[p] = append(out[p], wanted...)
			case int64(n) >= cover.Len():
			default:
				partial[p] = append(partial[p], b)
			}
		}
	}
	if len(partial) > 0 {
		present, err := presentOffsets(ctx, conn, topic, spans, partial, bucketSize)
		if err != nil {
			return nil, err
		}
		for p, buckets := range partial {
			offs := present[p]
			for _, b := range buckets {
				cover := Range{From: max(spans[p].From, b*bucketSize), To: min(spans[p].To, (b+1)*bucketSize)}
				gaps := gapsIn(cover, offs)
				out[p] = append(out[p], intersect(gaps, want[p])...)
			}
		}
	}
	for p, rs := range out {
		out[p] = normalize(rs)
	}
	return out, nil
}

// presentOffsets lists the distinct offsets present in the given buckets,
// sorted, per partition.
func presentOffsets(ctx context.Context, conn *chdb.Conn, topic string, spans map[int32]Range, buckets map[int32][]int64, bucketSize int64) (map[int32][]int64, error) {
	sub := map[int32]Range{}
	for p := range buckets {
		sub[p] = spans[p]
	}
	filter, fargs := partitionFilter(sub, func(p int32) (string, []any) {
		return "has(?, intDiv(kafka_offset, ?))", []any{buckets[p], bucketSize}
	})
	q := "SELECT DISTINCT kafka_partition, kafka_offset FROM (" + fmt.Sprintf(positionsSQL, filter) + ") ORDER BY kafka_partition, kafka_offset"
	args := append([]any{topic}, fargs...)
	args = append(append(args, topic), fargs...)
	out := map[int32][]int64{}
	err := conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		var p int32
		var off int64
		if err := rows.Scan(&p, &off); err != nil {
			return err
		}
		out[p] = append(out[p], off)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s in clickhouse: %w", topic, err)
	}
	return out, nil
}
