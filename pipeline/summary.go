package pipeline

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/workload"
)

// Summary is what a dev run did, lane by lane, and whether everything the
// collector accepted reached ClickHouse.
type Summary struct {
	Elapsed  time.Duration
	Database string
	Lanes    []LaneSummary
	// RejectsKept are the collector's rejects the loader copied into dead_letters.
	RejectsKept int64
	// Before is what waited in each lane when dev started (left by an
	// earlier run on a persistent broker).
	Before map[string]int64
	// Left is what the loader had not loaded when loader.shutdown_timeout
	// ran out, with where it is.
	Left []ingest.Backlog
	// Drained is how many accepted records the loader had not loaded yet
	// when the collector stopped, and loaded before it stopped itself.
	Drained int64
}

// LaneSummary counts one lane.
type LaneSummary struct {
	Lane string
	// Sent and Rejected are the demo workload's requests' events.
	Sent, Rejected int64
	// Accepted is what the collector answered 2xx for (any client).
	Accepted int64
	// Before waited in the lane when dev started.
	Before int64
	// Inserted and DeadLettered are what the loader wrote to ClickHouse.
	Inserted, DeadLettered int64
}

// Missing is how many accepted records did not reach ClickHouse (negative:
// more were loaded than accepted).
func (l LaneSummary) Missing() int64 { return l.Accepted + l.Before - l.Inserted - l.DeadLettered }

// Complete reports whether every lane loaded everything it accepted.
func (s *Summary) Complete() bool {
	for _, l := range s.Lanes {
		if l.Missing() > 0 {
			return false
		}
	}
	return true
}

func (s *Summary) fill(st *status, loader *ingest.Loader, driver *workload.Driver, reg prometheus.Gatherer) {
	s.Elapsed = time.Since(st.started)
	stats := loader.Stats()
	counts := collectorCounts(reg)
	sent := driver.Lanes()
	for _, lane := range []string{"web", "server"} {
		ls := stats[lane]
		c := sent[lane]
		s.Lanes = append(s.Lanes, LaneSummary{
			Lane: lane, Sent: c.Sent.Load(), Rejected: c.Rejected.Load(),
			Accepted: counts[lane]["accepted"], Before: s.Before[lane],
			Inserted: ls.Inserted, DeadLettered: ls.DeadLettered,
		})
	}
	s.RejectsKept = stats["dlq"].DeadLettered
}

// Print writes the summary: the counts per lane, the accounting line, and
// what the downstream components report.
func (s *Summary) Print(ctx context.Context, out io.Writer, conn *chdb.Conn, comps []Component) {
	fmt.Fprintf(out, "\nsummary after %s\n", s.Elapsed.Truncate(time.Second))
	fmt.Fprintf(out, "%-8s %10s %10s %10s %10s %10s\n", "lane", "sent", "accepted", "rejected", "inserted", "dead-lett.")
	for _, l := range s.Lanes {
		fmt.Fprintf(out, "%-8s %10d %10d %10d %10d %10d\n", l.Lane, l.Sent, l.Accepted, l.Rejected, l.Inserted, l.DeadLettered)
	}
	fmt.Fprintf(out, "%-8s %10s %10s %10s %10s %10d   (collector rejects kept in dead_letters)\n", "dlq", "", "", "", "", s.RejectsKept)
	for _, l := range s.Lanes {
		fmt.Fprintln(out, l.accounting())
	}
	if s.Drained > 0 {
		fmt.Fprintf(out, "on stop the loader drained %d accepted records it was behind by\n", s.Drained)
	}
	if len(s.Left) > 0 {
		fmt.Fprintln(out, "not loaded when loader.shutdown_timeout ran out (still in Kafka; the next loader of these groups loads them):")
		for _, b := range s.Left {
			fmt.Fprintln(out, "  "+b.String())
		}
	}
	if conn != nil {
		if t, err := ingest.ReadTotals(ctx, conn); err == nil {
			fmt.Fprintf(out, "ClickHouse %s: %d unique events, %d dead letters\n", s.Database, t.Events, t.DeadLetters)
		}
	}
	for _, c := range comps {
		if c.Summary != nil {
			fmt.Fprintln(out, c.Summary(ctx))
		}
	}
	fmt.Fprintf(out, "look:  scripts/clickhouse.sh client -d %s -q '%s'\n", s.Database, ingest.LookByLane)
}

// accounting is the lane's balance in one line: equal, or the difference named.
func (l LaneSummary) accounting() string {
	lhs := fmt.Sprintf("accepted %d", l.Accepted)
	if l.Before > 0 {
		lhs += fmt.Sprintf(" + %d waiting from an earlier run", l.Before)
	}
	rhs := fmt.Sprintf("inserted %d + dead-lettered %d", l.Inserted, l.DeadLettered)
	switch m := l.Missing(); {
	case m == 0:
		return fmt.Sprintf("%-8s %s = %s: nothing accepted was lost", l.Lane, lhs, rhs)
	case m > 0:
		return fmt.Sprintf("%-8s %s, but %s: %d accepted records not loaded (listed below)", l.Lane, lhs, rhs, m)
	default:
		return fmt.Sprintf("%-8s %s, %s: %d more loaded than accepted (records Kafka took for a request that then failed and was retried, or a batch redelivered after a rebalance; duplicates collapse in events_unique)",
			l.Lane, lhs, rhs, -m)
	}
}
