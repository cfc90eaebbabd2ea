package backfill

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// lagBoundsMs are the upper bounds of the lag histogram's buckets.
var lagBoundsMs = []int64{1_000, 10_000, 60_000, 10 * 60_000, 3_600_000, 6 * 3_600_000, 24 * 3_600_000}

// windowFilter selects rows whose position is in the spans.
func windowFilter(spans map[string]map[int32]Range) (string, []any) {
	topics := make([]string, 0, len(spans))
	for t, ps := range spans {
		if len(ps) > 0 {
			topics = append(topics, t)
		}
	}
	sort.Strings(topics)
	var sb strings.Builder
	var args []any
	for i, t := range topics {
		if i > 0 {
			sb.WriteString(" OR ")
		}
		f, a := partitionFilter(spans[t], nil)
		sb.WriteString("(kafka_topic = ? AND (" + f + "))")
		args = append(append(args, t), a...)
	}
	if len(topics) == 0 {
		return "0", nil
	}
	return sb.String(), args
}

type topicLag struct {
	loaded, late int64
	lag          LagStats
}

// laneLateness measures, per topic, how late the window's loaded events were.
func laneLateness(ctx context.Context, conn *chdb.Conn, spans map[string]map[int32]Range, lateAfterMs int64) (map[string]topicLag, error) {
	filter, fargs := windowFilter(spans)
	var hist []string
	for range lagBoundsMs {
		hist = append(hist, "countIf(lag <= ?)")
	}
	q := "SELECT kafka_topic, count(), countIf(lag > ?), quantilesExact(0.5, 0.9, 0.99)(lag), max(lag), [" +
		strings.Join(hist, ", ") + "] FROM (" + ingest.LoadLag(filter) + ") GROUP BY kafka_topic"
	args := []any{lateAfterMs}
	for _, b := range lagBoundsMs {
		args = append(args, b)
	}
	args = append(args, fargs...)
	out := map[string]topicLag{}
	err := conn.Each(ctx, q, args, func(rows chdb.Rows) error {
		var (
			topic     string
			n, late   uint64
			qs        []int64
			mx        int64
			cumulated []uint64
		)
		if err := rows.Scan(&topic, &n, &late, &qs, &mx, &cumulated); err != nil {
			return err
		}
		tl := topicLag{loaded: int64(n), late: int64(late), lag: LagStats{Max: mx}}
		if len(qs) == 3 {
			tl.lag.P50, tl.lag.P90, tl.lag.P99 = qs[0], qs[1], qs[2]
		}
		tl.lag.Histogram = histogram(cumulated, int64(n))
		out[topic] = tl
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("measure lateness: %w", err)
	}
	return out, nil
}

// histogram turns cumulative counts (lag <= bound) into buckets.
func histogram(cumulative []uint64, total int64) []LagBucket {
	var out []LagBucket
	var prev int64
	for i, c := range cumulative {
		out = append(out, LagBucket{UpToMs: lagBoundsMs[i], Count: int64(c) - prev})
		prev = int64(c)
	}
	return append(out, LagBucket{UpToMs: 0, Count: total - prev})
}

// lateCustomers counts customers with a late event in the window, the
// distribution of each one's longest delay, and the worst few, in one scan.
func lateCustomers(ctx context.Context, conn *chdb.Conn, spans map[string]map[int32]Range, lateAfterMs int64, examples int, laneOf map[string]string) (int64, LagStats, []StaleCustomer, error) {
	filter, fargs := windowFilter(spans)
	q := "SELECT count(), quantilesExact(0.5, 0.9, 0.99)(worst), max(worst), " +
		"arraySlice(arrayReverseSort(groupArray((worst, customer_id, topic))), 1, ?) FROM (" +
		"SELECT customer_id, max(lag) AS worst, argMax(kafka_topic, lag) AS topic FROM (" +
		ingest.LoadLag(filter) + ") GROUP BY customer_id HAVING worst > ?)"
	args := append(append([]any{examples}, fargs...), lateAfterMs)
	var (
		n      uint64
		qs     []int64
		mx     int64
		tuples [][]any
	)
	// An aggregate without GROUP BY answers one row, also over no rows.
	if err := conn.QueryRow(ctx, q, args...).Scan(&n, &qs, &mx, &tuples); err != nil {
		return 0, LagStats{}, nil, fmt.Errorf("count late customers: %w", err)
	}
	stats := LagStats{}
	if n > 0 && len(qs) == 3 {
		stats = LagStats{P50: qs[0], P90: qs[1], P99: qs[2], Max: mx}
	}
	var out []StaleCustomer
	for _, t := range tuples {
		if len(t) != 3 {
			continue
		}
		ms, _ := t[0].(int64)
		cust, _ := t[1].(string)
		topic, _ := t[2].(string)
		out = append(out, StaleCustomer{CustomerID: cust, Lane: laneOf[topic], StaleForMs: ms})
	}
	return int64(n), stats, out, nil
}
