package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Target is a collector and the write keys of its web and server sources.
type Target struct {
	URL       string
	WebKey    string
	ServerKey string
}

// Counts are what a drive sent and how the collector answered, per lane.
type Counts struct {
	Sent     atomic.Int64
	Accepted atomic.Int64
	Rejected atomic.Int64
	// Retried counts requests answered 429/503 and sent again.
	Retried atomic.Int64
}

// Driver sends generated messages to a collector in batches at a target rate.
type Driver struct {
	Target Target
	Gen    *Generator
	// Rate is events per second (0: as fast as the collector answers).
	Rate float64
	// BatchSize is messages per /v1/batch request (default 100).
	BatchSize int
	// Workers is the number of concurrent requests (default 4).
	Workers int
	Client  *http.Client

	mu    sync.Mutex
	lanes map[string]*Counts
}

// Lanes returns the per-lane counts.
func (d *Driver) Lanes() map[string]*Counts {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lanes == nil {
		d.lanes = map[string]*Counts{"web": {}, "server": {}}
	}
	return d.lanes
}

type batchReq struct {
	lane string
	msgs []Message
}

// Run sends n events (0: until ctx ends) and returns when done.
func (d *Driver) Run(ctx context.Context, n int64) error {
	return d.RunUntil(ctx, ctx.Done(), n)
}

// RunUntil sends n events (0: until stop is closed or ctx ends). Closing
// stop ends the sending of new batches but lets requests in flight get
// their answer, so every event the collector accepted is counted as
// accepted; ending ctx cuts them short.
func (d *Driver) RunUntil(ctx context.Context, stop <-chan struct{}, n int64) error {
	if d.BatchSize <= 0 {
		d.BatchSize = 100
	}
	if d.Workers <= 0 {
		d.Workers = 4
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 30 * time.Second}
	}
	lanes := d.Lanes()
	work := make(chan batchReq, d.Workers*2)
	errc := make(chan error, d.Workers)
	var wg sync.WaitGroup
	for range d.Workers {
		wg.Add(1)
		// Workers stop when work is closed.
		go func() {
			defer wg.Done()
			for b := range work {
				if err := d.send(ctx, b, lanes[b.lane]); err != nil && ctx.Err() == nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	err := d.produce(ctx, stop, n, work)
	close(work)
	wg.Wait()
	select {
	case e := <-errc:
		return e
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *Driver) produce(ctx context.Context, stop <-chan struct{}, n int64, work chan<- batchReq) error {
	pending := map[string][]Message{}
	start := time.Now()
	var made int64
	flush := func(lane string) bool {
		if len(pending[lane]) == 0 {
			return true
		}
		select {
		case work <- batchReq{lane: lane, msgs: pending[lane]}:
			pending[lane] = nil
			return true
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
	for n == 0 || made < n {
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		default:
		}
		m := d.Gen.Next()
		made++
		pending[m.Lane] = append(pending[m.Lane], m)
		if len(pending[m.Lane]) >= d.BatchSize && !flush(m.Lane) {
			return nil
		}
		if d.Rate > 0 {
			due := start.Add(time.Duration(float64(made) / d.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				// Flush what is pending before sleeping so low rates stay live.
				if !flush("web") || !flush("server") {
					return nil
				}
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return nil
				case <-stop:
					return nil
				}
			}
		}
	}
	flush("web")
	flush("server")
	return nil
}

// send posts one batch; malformed messages go one by one so each rejection
// is observed and counted, as a real SDK's retry logic would see it.
func (d *Driver) send(ctx context.Context, b batchReq, c *Counts) error {
	var good []map[string]any
	for _, m := range b.msgs {
		if m.Malformed {
			c.Sent.Add(1)
			status, err := d.post(ctx, b.lane, "/v1/"+m.Body["type"].(string), m.Body)
			if err != nil {
				return err
			}
			if status >= 400 && status < 500 {
				c.Rejected.Add(1)
			} else {
				c.Accepted.Add(1)
			}
			continue
		}
		good = append(good, m.Body)
	}
	if len(good) == 0 {
		return nil
	}
	c.Sent.Add(int64(len(good)))
	body := map[string]any{"batch": good, "sentAt": time.Now().UTC().Format(time.RFC3339Nano)}
	status, err := d.post(ctx, b.lane, "/v1/batch", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		c.Rejected.Add(int64(len(good)))
		return fmt.Errorf("batch of %d rejected with %d", len(good), status)
	}
	c.Accepted.Add(int64(len(good)))
	return nil
}

// post sends body, retrying 429 and 503 after the advertised Retry-After.
func (d *Driver) post(ctx context.Context, lane, path string, body any) (int, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	key := d.Target.WebKey
	if lane == "server" {
		key = d.Target.ServerKey
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Target.URL+path, bytes.NewReader(payload))
		if err != nil {
			return 0, err
		}
		req.SetBasicAuth(key, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := d.Client.Do(req)
		if err != nil {
			if ctx.Err() != nil || attempt >= 5 {
				return 0, fmt.Errorf("post %s: %w", path, err)
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			return resp.StatusCode, nil
		}
		d.Lanes()[lane].Retried.Add(1)
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
