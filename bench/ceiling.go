package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// ceilingBatches builds the ceiling's columnar batches from the first events
// of the mix (the same rows the throughput scenarios consume first). Each
// inserter cycles through its own batches, so EventRows.Insert, which
// stamps the ingest time in place, never shares one between goroutines.
func ceilingBatches(ctx context.Context, c Config, start time.Time, batchSize int, bc broker.Config) ([]*ingest.EventRows, error) {
	n := max(8, 2*c.CeilingInserters)
	batches := make([]*ingest.EventRows, n)
	for i := range batches {
		batches[i] = &ingest.EventRows{}
	}
	var mu sync.Mutex
	next := 0
	var offset atomic.Int64
	sink := func(ch *chunk) error {
		mu.Lock()
		defer mu.Unlock()
		for i, ev := range ch.events {
			for next < n && batches[next].Len() >= batchSize {
				next++
			}
			if next == n {
				return nil
			}
			lane := ch.lanes[i]
			batches[next].Add(ev, lane, bc.MustTopic(lane), 0, offset.Add(1))
		}
		return nil
	}
	if err := generate(ctx, newSource(c, start), int64(n*batchSize), sink); err != nil {
		return nil, err
	}
	return batches, nil
}

// runCeiling inserts the pre-built batches into conn's events table from
// CeilingInserters goroutines for c.Duration: no Kafka, no decoding, only
// clickhouse-go's columnar insert, the fastest any loader built on it can go.
func runCeiling(ctx context.Context, c Config, conn *chdb.Conn, batches []*ingest.EventRows) (Throughput, error) {
	return runCeilingInto(ctx, c, conn, batches, false)
}

// runCeilingInto is runCeiling, into one cluster node's local part of the
// events table when local is set.
func runCeilingInto(ctx context.Context, c Config, conn *chdb.Conn, batches []*ingest.EventRows, local bool) (Throughput, error) {
	t := Throughput{Name: "ceiling: pre-built columnar inserts"}
	var rows atomic.Int64
	var firstAt, lastAt atomic.Int64
	before, err := serverEvents(ctx, conn, localEvents)
	if err != nil {
		return t, err
	}
	cpu := cpuSeconds()
	start := time.Now()
	// No insert starts after the deadline; those in flight finish and count,
	// and the window ends at the last acknowledgement.
	deadline := start.Add(c.Duration)
	errc := make(chan error, c.CeilingInserters)
	var wg sync.WaitGroup
	for w := range c.CeilingInserters {
		wg.Add(1)
		// Each inserter stops at the deadline or on the first error.
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += c.CeilingInserters {
				b := batches[i%len(batches)]
				insert := b.Insert
				if local {
					insert = b.InsertLocal
				}
				if err := insert(ctx, conn, chdb.NowMs()); err != nil {
					errc <- err
					return
				}
				rows.Add(int64(b.Len()))
				now := time.Now().UnixNano()
				firstAt.CompareAndSwap(0, now)
				storeMax(&lastAt, now)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return t, fmt.Errorf("ceiling insert: %w", err)
	}
	t.ClientCPUSeconds = cpuSeconds() - cpu
	t.Server = serverSince(ctx, conn, localEvents, before)
	t.Rows = rows.Load()
	if l := lastAt.Load(); l > 0 {
		t.Seconds = time.Unix(0, l).Sub(start).Seconds()
		t.EventsPerSec = float64(t.Rows) / t.Seconds
		t.StartupSeconds = time.Unix(0, firstAt.Load()).Sub(start).Seconds()
	}
	t.Drained = true
	return t, nil
}

// storeMax raises v to x unless it already holds more.
func storeMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if old >= x || v.CompareAndSwap(old, x) {
			return
		}
	}
}
