package reliability

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// codeTimeoutExceeded is ClickHouse's TIMEOUT_EXCEEDED (max_execution_time).
const codeTimeoutExceeded = 159

// TestSlowQueriesDoNotStallIngest runs heavy analyst queries (as the
// read-only analyst user) against the events table while the loader
// ingests a load, and checks that ingestion keeps moving and catches up.
// It also checks both timeouts a slow query meets end with a clear error:
// the server's max_execution_time (TIMEOUT_EXCEEDED) and the client's
// clickhouse.read_timeout (a network timeout naming the wait).
func TestSlowQueriesDoNotStallIngest(t *testing.T) {
	n := pick(40_000, 400_000)
	produceFor := pick(10*time.Second, 90*time.Second)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 15*time.Minute))
	defer cancel()
	br := faultBroker(t)
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	group := "rel-" + testenv.Name(t)
	loader := startLoader(t, "loader", loaderEnv(chCfg, br, group))
	const seed = 16

	// A query that would run for minutes on 2 cores; every variant below is
	// expected to be stopped within seconds.
	const endless = "SELECT count() FROM numbers(20000000000) WHERE NOT ignore(sipHash64(number)) /* %s */"
	t.Run("server timeout is a clear error", func(t *testing.T) {
		// No deadline on this ctx: clickhouse-go replaces max_execution_time
		// with the ctx deadline plus 5 s whenever there is one.
		qctx := chdb.Settings(context.Background(), clickhouse.Settings{"max_execution_time": 1})
		var c uint64
		err := conn.QueryRow(qctx, fmt.Sprintf(endless, "server-timeout")).Scan(&c)
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != codeTimeoutExceeded || !strings.Contains(ex.Message, "Timeout exceeded") {
			t.Fatalf("want TIMEOUT_EXCEEDED (code 159), got %v", err)
		}
		t.Logf("server timeout: %v", err)
	})
	t.Run("abandoned query stops on the server", func(t *testing.T) {
		marker := "abandoned-" + testenv.Name(t)
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		defer qcancel()
		var c uint64
		err := conn.QueryRow(qctx, fmt.Sprintf(endless, marker)).Scan(&c)
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("want the ctx deadline (or the read deadline clickhouse-go derives from it), got %v", err)
		}
		t.Logf("abandoned query: %v", err)
		// clickhouse-go sends a cancel when ctx ends, and the deadline also
		// became the query's max_execution_time (+5 s): either way the
		// server must drop it within seconds, not run it for minutes.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var running uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query LIKE ? AND query NOT LIKE '%system.processes%'", "%"+marker+"%").Scan(&running); err != nil {
				t.Fatal(err)
			}
			if running == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the abandoned query still runs on the server 30 s after its deadline")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("client read timeout is a clear error", func(t *testing.T) {
		// A server that accepts and then says nothing: the one wait
		// clickhouse.read_timeout bounds (a busy server keeps sending
		// progress packets, so a slow query alone never trips it).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		// The acceptor ends when ln is closed; it holds connections open silently.
		go func() {
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
		c := chCfg
		c.Addr, c.ReadTimeout, c.DialTimeout = ln.Addr().String(), time.Second, time.Second
		_, err = chdb.Open(ctx, c, false)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), c.Addr) {
			t.Fatalf("want a timeout error naming %s, got %v", c.Addr, err)
		}
		t.Logf("client read timeout: %v", err)
	})

	var acked atomic.Int64
	prodErr := make(chan error, 1)
	// The producer stops when it has written n events or ctx ends.
	go func() {
		prodErr <- produceFeed(ctx, br, newFeed(seed, 20_000), n, float64(n)/produceFor.Seconds(), &acked)
	}()

	analyst := readOnlyUserAt(t, chCfg, "analyst", "analyst")
	heavy := []string{
		"SELECT customer_id, uniqExact(message_id) AS m, any(properties) FROM events GROUP BY customer_id ORDER BY m DESC LIMIT 10",
		"SELECT count() FROM (SELECT number FROM system.numbers LIMIT 150000000) WHERE NOT ignore(sipHash64(number))",
		"SELECT event, quantilesExact(0.5, 0.99)(event_time_ms) FROM events GROUP BY event",
	}
	var completed, failed atomic.Int64
	var firstErr atomic.Value
	hctx, stopHeavy := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		// Each analyst stops when stopHeavy is called.
		go func() {
			defer wg.Done()
			for j := i; hctx.Err() == nil; j++ {
				rows, err := analyst.Query(hctx, heavy[j%len(heavy)])
				if err == nil {
					for rows.Next() {
					}
					err = rows.Err()
					rows.Close()
				}
				switch {
				case err == nil:
					completed.Add(1)
				case hctx.Err() == nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	loaded := func() uint64 {
		f, err := countEvents(ctx, conn, seed, n)
		if err != nil {
			t.Fatal(err)
		}
		return f.Unique
	}
	var samples []string
	var stalls int
	prev := loaded()
	for ok := false; !ok; {
		select {
		case err := <-prodErr:
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			ok = true
		case <-time.After(3 * time.Second):
		}
		cur := loaded()
		if cur == prev && cur < uint64(acked.Load()) {
			stalls++
		}
		samples = append(samples, fmt.Sprintf("%d/%d", cur, acked.Load()))
		prev = cur
	}
	behindAtEnd := acked.Load() - int64(prev)
	catchStart := time.Now()
	f := waitLoaded(ctx, t, conn, seed, n, pick(3*time.Minute, 10*time.Minute), func() string { return loader.tail(30) })
	catchUp := time.Since(catchStart)
	stopHeavy()
	wg.Wait()
	if err := loader.term(time.Minute); err != nil {
		t.Errorf("loader: %v\n%s", err, loader.tail(30))
	}
	f, err := countEvents(ctx, conn, seed, n)
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string]any{
		"analyst_queries_completed": completed.Load(), "analyst_queries_failed": failed.Load(),
		"loaded_every_3s": samples, "stalled_samples": stalls, "behind_when_production_ended": behindAtEnd,
		"catch_up_seconds": catchUp.Round(100 * time.Millisecond).Seconds(),
	}
	if e := firstErr.Load(); e != nil {
		extra["first_analyst_error"] = e
	}
	r := &report{
		Scenario: "slow analyst queries", Broker: br.Name,
		Load:     fmt.Sprintf("%d events over %s", n, produceFor),
		Faults:   "2 analysts running heavy GROUP BY / full-scan queries back to back as the read-only analyst user during the whole load",
		Produced: acked.Load(), Events: f, Lost: int64(n) - int64(f.Unique), Extra: extra,
	}
	r.publish(t, start)
	checkExactlyOnce(t, r)
	if completed.Load() == 0 {
		t.Errorf("no analyst query completed: the load did not overlap heavy queries")
	}
	if failed.Load() > 0 {
		t.Errorf("%d analyst queries failed: %v", failed.Load(), firstErr.Load())
	}
	// Samples are 3 s apart; the loader flushes at least every 200 ms, so a
	// sample without progress while events wait means ingestion stalled
	// behind the analysts. One is tolerated for a loader retry backoff.
	if stalls > 1 {
		t.Errorf("ingestion made no progress in %d of %d 3-second samples while analysts ran: %v", stalls, len(samples), samples)
	}
}

// readOnlyUserAt connects to c's database as user.
func readOnlyUserAt(t *testing.T, c chdb.Config, user, password string) *chdb.Conn {
	t.Helper()
	c.User, c.Password = user, password
	conn, err := chdb.Open(context.Background(), c, false)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
