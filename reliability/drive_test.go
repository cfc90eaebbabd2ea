package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// startCollector runs `tideline collect` and waits until it answers.
func startCollector(t testing.TB, env []string, args ...string) (*proc, string) {
	t.Helper()
	addr := testenv.FreeAddr(t)
	p := startProc(t, "collector", env, append([]string{"collect", "--addr", addr, "--metrics-addr", "", "--log-level", "warn"}, args...)...)
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post(url+"/v1/batch", "application/json", nil)
		if err == nil {
			resp.Body.Close()
			return p, url
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("collector did not come up on %s: %v\n%s", addr, err, p.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// driver posts batches of uniquely numbered track events to a collector and
// keeps, per outcome, which message ids the collector took or refused.
type driver struct {
	url    string
	key    string
	prefix string
	batch  int
	client *http.Client

	seq atomic.Int64

	mu                sync.Mutex
	accepted, refused []string
	statuses          map[int]int
	noRetryAfter      int
	netErrors         int
	latencies         []time.Duration
}

func newDriver(url, key, prefix string, batch int) *driver {
	return &driver{
		url: url, key: key, prefix: prefix, batch: batch, statuses: map[int]int{},
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
	}
}

// post sends one batch and records the outcome.
func (d *driver) post(ctx context.Context) {
	ids := make([]string, d.batch)
	msgs := make([]map[string]any, d.batch)
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range ids {
		s := d.seq.Add(1)
		ids[i] = fmt.Sprintf("%s%d", d.prefix, s)
		msgs[i] = map[string]any{
			"type": "track", "messageId": ids[i], "userId": fmt.Sprintf("user-%d", s%5000),
			"event": "purchase", "properties": map[string]any{"amount": 1.5, "sku": "A-1"}, "timestamp": ts,
		}
	}
	body, _ := json.Marshal(map[string]any{"batch": msgs, "sentAt": ts})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.SetBasicAuth(d.key, "")
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := d.client.Do(req)
	lat := time.Since(t0)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			d.netErrors++
		}
		// No answer: the client cannot know; count the ids as refused, and
		// report any that arrive anyway.
		d.refused = append(d.refused, ids...)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d.statuses[resp.StatusCode]++
	if resp.StatusCode/100 == 2 {
		d.accepted = append(d.accepted, ids...)
		d.latencies = append(d.latencies, lat)
		return
	}
	d.refused = append(d.refused, ids...)
	if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && resp.Header.Get("Retry-After") == "" {
		d.noRetryAfter++
	}
}

// run posts from workers goroutines, at most lim batches per second when lim
// is not nil, until ctx ends or stop returns true.
func (d *driver) run(ctx context.Context, workers int, lim *rate.Limiter, stop func() bool) {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		// Each worker stops when ctx ends or stop says so.
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !stop() {
				if lim != nil && lim.Wait(ctx) != nil {
					return
				}
				d.post(ctx)
			}
		}()
	}
	wg.Wait()
}

func (d *driver) acceptedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.accepted)
}

// snapshot copies the outcome counters.
func (d *driver) snapshot() (accepted, refused []string, statuses map[int]int, noRetryAfter, netErrors int, lat []time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := map[int]int{}
	for k, v := range d.statuses {
		st[k] = v
	}
	return slices.Clone(d.accepted), slices.Clone(d.refused), st, d.noRetryAfter, d.netErrors, slices.Clone(d.latencies)
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

// presentIDs returns the distinct message ids with prefix in events.
func presentIDs(ctx context.Context, conn *chdb.Conn, prefix string) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT message_id FROM events WHERE startsWith(message_id, ?)", prefix)
	if err != nil {
		return nil, fmt.Errorf("read message ids: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// waitAccepted polls until every accepted id is in ClickHouse or d passes,
// and returns the ids present, the accepted ones missing, and the refused
// ones present anyway.
func waitAccepted(ctx context.Context, t testing.TB, conn *chdb.Conn, prefix string, accepted, refused []string, d time.Duration) (present map[string]bool, missing []string, refusedPresent int) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var err error
		present, err = presentIDs(ctx, conn, prefix)
		if err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		for _, id := range accepted {
			if !present[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, id := range refused {
		if present[id] {
			refusedPresent++
		}
	}
	return present, missing, refusedPresent
}
