package trigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// route is what a campaign needs at delivery time: its destinations, the
// URL actually used and the signing secrets.
type route struct {
	c       *Campaign
	url     string
	secrets []Secret
	dests   []Destination
}

// job is the delivery of one fire to its destinations.
type job struct {
	mu        sync.Mutex
	entry     *Entry // newest version written
	body      []byte
	rt        *route
	open      int // destinations not finished
	attempts  uint32
	outcome   string // StateDelivered, StateDead or StateDisabled
	lastErr   string
	abandoned bool
	redeliver bool
	done      chan struct{}
}

// task is one destination of a job.
type task struct {
	job        *job
	dest       Destination
	destID     string
	attempts   uint32
	lastStatus int
	lastErr    string
}

type destQueue struct {
	dest Destination
	ch   chan *task
	// lim, when the destination has a throttle, paces attempts (retries
	// included). Only the in-memory queue (QueueSize) waits on it; the
	// rest of a release waits in the ledger as open entries.
	lim *rate.Limiter
}

// Dispatcher delivers fires. Each destination has its own queue and its own
// MaxInFlight workers, so a slow or failing endpoint only ever occupies its
// own workers. Retries wait on timers, not in workers. Delivery progress is
// written to the ledger in batches; the durable record of what remains to
// deliver is the ledger itself (entries in state pending or failed), so
// anything in memory here may be lost in a crash and is found again by the
// poller's open-delivery scan, then sent under the same webhook id.
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	c      *counters
	conn   *chdb.Conn
	httpc  *http.Client
	kafka  *kgo.Client
	prefix string
	routes map[string]*route
	queues map[string]*destQueue
	owns   func(customerID string) bool
	// suppressed reports a suppression of the customer added since the
	// fire was enqueued (nil: none): checked right before every attempt.
	suppressed func(customerID string) *Suppression
	writer     *progressWriter

	mu       sync.Mutex
	tracked  map[string]*job
	finished map[string]time.Time
	disabled map[string]string
	timers   map[*task]*time.Timer
	closed   bool
	idle     *sync.Cond
	workers  sync.WaitGroup
}

// newDispatcher builds a dispatcher for the campaigns' routes. kafka may be
// nil when no campaign delivers to Kafka; prefix is the topic prefix.
func newDispatcher(cfg Config, conn *chdb.Conn, routes map[string]*route, kafka *kgo.Client, prefix string, m *metrics, c *counters, log *slog.Logger) *Dispatcher {
	d := &Dispatcher{
		cfg: cfg, log: log, m: m, c: c, conn: conn, kafka: kafka, prefix: prefix, routes: routes,
		queues:     map[string]*destQueue{},
		owns:       func(string) bool { return true },
		suppressed: func(string) *Suppression { return nil },
		tracked:    map[string]*job{},
		finished:   map[string]time.Time{},
		disabled:   map[string]string{},
		timers:     map[*task]*time.Timer{},
		httpc: &http.Client{
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: cfg.MaxInFlight,
				MaxConnsPerHost:     cfg.MaxInFlight * 2,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second,
			},
			// Redirects are not followed: a webhook endpoint answers, it does
			// not send the signed body elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	d.idle = sync.NewCond(&d.mu)
	d.writer = newProgressWriter(conn, log)
	for _, rt := range routes {
		for _, dest := range rt.dests {
			q := &destQueue{dest: dest, ch: make(chan *task, cfg.QueueSize)}
			if wh := rt.c.Deliver.Webhook; wh != nil && wh.Throttle != nil && dest.Kind == DestinationWebhook {
				q.lim = rate.NewLimiter(rate.Limit(wh.Throttle.Rate), wh.Throttle.Burst)
			}
			d.queues[dest.ID()] = q
		}
	}
	return d
}

// loadDisabled reads the destinations disabled by an earlier 410.
func (d *Dispatcher) loadDisabled(ctx context.Context) error {
	dis, err := disabledDestinations(ctx, d.conn)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, reason := range dis {
		d.disabled[id] = reason
	}
	return nil
}

// start runs the workers and the ledger writer until ctx ends.
func (d *Dispatcher) start(ctx context.Context) {
	// The writer stops when ctx ends, after a last flush (see progressWriter.run).
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		d.writer.run(ctx)
	}()
	for _, q := range d.queues {
		for range d.cfg.MaxInFlight {
			d.workers.Add(1)
			// Each worker stops when ctx ends.
			go func() {
				defer d.workers.Done()
				for {
					select {
					case <-ctx.Done():
						return
					case t := <-q.ch:
						d.m.queued.WithLabelValues(q.dest.Campaign, q.dest.Kind).Dec()
						if q.lim != nil {
							// A throttled queue can hold minutes of sends: on
							// shutdown the ones not started stay open in the
							// ledger instead of holding the drain.
							d.mu.Lock()
							closing := d.closed
							d.mu.Unlock()
							if closing {
								d.abandon(t)
								continue
							}
							if err := q.lim.Wait(ctx); err != nil {
								d.abandon(t)
								continue
							}
						}
						d.attempt(ctx, t)
					}
				}
			}()
		}
	}
}

// wait blocks until the workers stopped (after the ctx given to start ended).
func (d *Dispatcher) wait() { d.workers.Wait() }

// drain refuses new work, abandons deliveries waiting for a retry (they
// stay open in the ledger) and waits until the queued and in-flight ones
// finished or ctx ends.
func (d *Dispatcher) drain(ctx context.Context) {
	d.mu.Lock()
	d.closed = true
	var stopped []*task
	for t, tm := range d.timers {
		if tm.Stop() {
			delete(d.timers, t)
			stopped = append(stopped, t)
		}
	}
	d.mu.Unlock()
	for _, t := range stopped {
		d.c.retrying.Add(-1)
		d.m.inRetry.WithLabelValues(t.dest.Campaign).Dec()
		d.abandon(t)
	}
	done := make(chan struct{})
	// This goroutine ends when the dispatcher is idle, or when the
	// broadcast below wakes it after ctx ended.
	go func() {
		d.mu.Lock()
		for len(d.tracked) > 0 && ctx.Err() == nil {
			d.idle.Wait()
		}
		d.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		d.mu.Lock()
		d.idle.Broadcast()
		d.mu.Unlock()
		<-done
	}
}

// enqueue starts the delivery of a fire to dests (all of its campaign's
// when nil). It returns false when the fire is already being delivered
// here, was delivered moments ago, or the dispatcher is closing.
func (d *Dispatcher) enqueue(e *Entry, body []byte, dests []Destination, redeliver bool) bool {
	return d.enqueueJob(e, body, dests, redeliver) != nil
}

// enqueueJob is enqueue returning the job, whose done channel closes when
// every destination finished or was abandoned.
func (d *Dispatcher) enqueueJob(e *Entry, body []byte, dests []Destination, redeliver bool) *job {
	rt := d.routes[e.CampaignID]
	if rt == nil {
		d.log.Warn("fire of an unknown campaign left in the ledger", "key", e.Key, "campaign", e.CampaignID)
		return nil
	}
	if dests == nil {
		dests = rt.dests
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.tracked[e.Key] != nil {
		return nil
	}
	if _, recent := d.finished[e.Key]; recent && !redeliver {
		return nil
	}
	for _, dest := range dests {
		q := d.queues[dest.ID()]
		if q == nil {
			return nil
		}
		if len(q.ch) >= cap(q.ch) {
			// Full: the entry stays open in the ledger and the next open
			// scan offers it again.
			return nil
		}
	}
	j := &job{entry: e, body: body, rt: rt, open: len(dests), attempts: e.Attempts, outcome: StateDelivered, redeliver: redeliver, done: make(chan struct{})}
	d.tracked[e.Key] = j
	for _, dest := range dests {
		t := &task{job: j, dest: dest, destID: dest.ID()}
		q := d.queues[t.destID]
		q.ch <- t
		d.m.queued.WithLabelValues(dest.Campaign, dest.Kind).Inc()
	}
	return j
}

// room is how many more fires of a campaign its queues take now: the
// open-delivery scan offers no more than that, so a release larger than
// the queues waits in the ledger, not in memory.
func (d *Dispatcher) room(campaignID string) int {
	rt := d.routes[campaignID]
	if rt == nil {
		return 0
	}
	free := -1
	for _, dest := range rt.dests {
		if q := d.queues[dest.ID()]; q != nil {
			if n := cap(q.ch) - len(q.ch); free < 0 || n < free {
				free = n
			}
		}
	}
	return max(free, 0)
}

// tracking reports whether key is queued, in flight, waiting for a retry,
// or finished within the last interval.
func (d *Dispatcher) tracking(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, recent := d.finished[key]
	return d.tracked[key] != nil || recent
}

// forget drops finished keys older than age, so the map stays bounded.
func (d *Dispatcher) forget(age time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cut := time.Now().Add(-age)
	for k, at := range d.finished {
		if at.Before(cut) {
			delete(d.finished, k)
		}
	}
}

func (d *Dispatcher) attempt(ctx context.Context, t *task) {
	if !d.owns(t.job.entry.CustomerID) {
		// The customer's shard moved to another poller, which finds the
		// entry open in the ledger.
		d.abandon(t)
		return
	}
	if s := d.suppressed(t.job.entry.CustomerID); s != nil {
		// Unsubscribed while the fire waited (a backlog's release, a
		// throttle, a retry): it is not sent, and the ledger says why.
		t.lastErr = "suppressed before sending: " + s.Reason
		d.m.deliveries.WithLabelValues(t.dest.Campaign, t.dest.Kind, "suppressed").Inc()
		d.finishTask(t, StateSuppressed)
		return
	}
	d.mu.Lock()
	reason, disabled := d.disabled[t.destID]
	d.mu.Unlock()
	if disabled {
		t.lastErr = "destination disabled: " + reason
		d.finishTask(t, StateDisabled)
		return
	}
	var derr *deliveryError
	switch t.dest.Kind {
	case DestinationKafka:
		derr = d.sendKafka(ctx, t)
	default:
		derr = d.sendWebhook(ctx, t)
	}
	if ctx.Err() != nil {
		d.abandon(t)
		return
	}
	t.attempts++
	t.job.mu.Lock()
	t.job.attempts++
	t.job.mu.Unlock()
	if derr == nil {
		d.m.deliveries.WithLabelValues(t.dest.Campaign, t.dest.Kind, "delivered").Inc()
		d.finishTask(t, StateDelivered)
		return
	}
	t.lastStatus, t.lastErr = derr.Status, derr.Error()
	if !derr.Retryable {
		d.m.deliveries.WithLabelValues(t.dest.Campaign, t.dest.Kind, "disabled").Inc()
		d.disable(ctx, t.dest, fmt.Sprintf("%s answered %s at %s", t.dest, derr.Error(), time.Now().UTC().Format(time.RFC3339)))
		d.finishTask(t, StateDisabled)
		return
	}
	if int(t.attempts) >= d.cfg.MaxAttempts {
		d.m.deliveries.WithLabelValues(t.dest.Campaign, t.dest.Kind, "dead").Inc()
		d.finishTask(t, StateDead)
		return
	}
	d.m.deliveries.WithLabelValues(t.dest.Campaign, t.dest.Kind, "retry").Inc()
	d.progress(t, StateFailed, t.lastErr)
	d.retryLater(t, retryDelay(d.cfg, int(t.attempts), derr.RetryAfter))
}

// retryDelay is the wait before attempt n+1 after n failed ones: the
// exponential backoff with jitter, or the server's Retry-After when that is
// longer (capped by MaxRetryAfter).
func retryDelay(cfg Config, n int, retryAfter time.Duration) time.Duration {
	backoff := cfg.BackoffBase
	for i := 1; i < n && backoff < cfg.BackoffMax; i++ {
		backoff *= 2
	}
	delay := jitter(min(backoff, cfg.BackoffMax))
	if retryAfter > delay {
		delay = min(retryAfter, cfg.MaxRetryAfter)
	}
	return delay
}

func (d *Dispatcher) retryLater(t *task, delay time.Duration) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.abandon(t)
		return
	}
	defer d.mu.Unlock()
	d.c.retrying.Add(1)
	d.m.inRetry.WithLabelValues(t.dest.Campaign).Inc()
	d.timers[t] = time.AfterFunc(delay, func() {
		d.mu.Lock()
		if _, ok := d.timers[t]; !ok {
			d.mu.Unlock()
			return
		}
		delete(d.timers, t)
		d.c.retrying.Add(-1)
		d.m.inRetry.WithLabelValues(t.dest.Campaign).Dec()
		q := d.queues[t.destID]
		pushed := false
		if !d.closed {
			select {
			case q.ch <- t:
				pushed = true
				d.m.queued.WithLabelValues(t.dest.Campaign, t.dest.Kind).Inc()
			default:
			}
		}
		d.mu.Unlock()
		if !pushed {
			d.abandon(t)
		}
	})
}

// progress records a failed attempt in the ledger.
func (d *Dispatcher) progress(t *task, state, lastErr string) {
	j := t.job
	j.mu.Lock()
	e := j.entry.next(chdb.NowMs())
	e.DeliveryState, e.Attempts, e.LastError = state, j.attempts, truncateErr(lastErr)
	j.entry = e
	j.mu.Unlock()
	d.writer.add(e)
}

// finishTask ends one destination of a job; the last one writes the
// job's final ledger state.
func (d *Dispatcher) finishTask(t *task, state string) {
	j := t.job
	if state == StateDead || state == StateDisabled {
		d.writer.addDead(DeadLetter{
			Key: j.entry.Key, CampaignID: j.entry.CampaignID, CustomerID: j.entry.CustomerID,
			DestinationID: t.destID, Destination: t.dest.String(), Payload: string(j.body),
			Attempts: t.attempts, LastStatus: uint16(t.lastStatus), LastError: truncateErr(t.lastErr), State: StateDead,
		})
		d.log.Warn("delivery dead-lettered", "key", j.entry.Key, "campaign", j.entry.CampaignID, "destination", t.dest.String(), "attempts", t.attempts, "err", t.lastErr)
	}
	if state == StateDelivered && j.redeliver {
		d.writer.addDead(DeadLetter{Key: j.entry.Key, CampaignID: j.entry.CampaignID, CustomerID: j.entry.CustomerID,
			DestinationID: t.destID, Destination: t.dest.String(), Payload: string(j.body), Attempts: t.attempts, State: "redelivered"})
	}
	j.mu.Lock()
	j.open--
	switch {
	case state == StateDead:
		j.outcome, j.lastErr = StateDead, t.lastErr
	case state == StateDisabled && j.outcome != StateDead:
		j.outcome, j.lastErr = StateDisabled, t.lastErr
	case state == StateSuppressed:
		j.outcome, j.lastErr = StateSuppressed, t.lastErr
	}
	last := j.open == 0
	var final *Entry
	if last && !j.abandoned {
		now := chdb.NowMs()
		final = j.entry.next(now)
		final.DeliveryState, final.Attempts, final.LastError = j.outcome, j.attempts, truncateErr(j.lastErr)
		if j.outcome == StateDelivered {
			final.SentAtMs = now
			final.LastError = ""
		}
		j.entry = final
	}
	j.mu.Unlock()
	if !last {
		return
	}
	if final != nil {
		d.writer.add(final)
		switch final.DeliveryState {
		case StateSuppressed:
			d.c.suppressed.Add(1)
		case StateDelivered:
			d.c.delivered.Add(1)
			now := time.Now()
			if final.DerivedAtMs > 0 {
				d.m.latency.WithLabelValues(final.CampaignID, "derived").Observe(now.Sub(time.UnixMilli(int64(final.DerivedAtMs))).Seconds())
			}
			d.m.latency.WithLabelValues(final.CampaignID, "event").Observe(now.Sub(time.UnixMilli(int64(final.QualifiedEventTimeMs))).Seconds())
		default:
			d.c.failed.Add(1)
		}
	}
	d.untrack(j, final != nil)
}

// abandon gives up one destination of a job without recording an outcome:
// the ledger entry stays open and is delivered later (restart, new owner).
func (d *Dispatcher) abandon(t *task) {
	j := t.job
	j.mu.Lock()
	j.open--
	j.abandoned = true
	last := j.open == 0
	j.mu.Unlock()
	if last {
		d.untrack(j, false)
	}
}

func (d *Dispatcher) untrack(j *job, finished bool) {
	d.mu.Lock()
	delete(d.tracked, j.entry.Key)
	if finished {
		d.finished[j.entry.Key] = time.Now()
	}
	d.idle.Broadcast()
	d.mu.Unlock()
	close(j.done)
}

// disable records that a destination answered 410 Gone.
func (d *Dispatcher) disable(ctx context.Context, dest Destination, reason string) {
	d.mu.Lock()
	_, already := d.disabled[dest.ID()]
	d.disabled[dest.ID()] = reason
	d.mu.Unlock()
	if already {
		return
	}
	d.log.Error("destination disabled: it answered 410 Gone; re-enable with `tideline trigger redeliver --reenable`", "campaign", dest.Campaign, "destination", dest.String())
	if err := setDestination(ctx, d.conn, dest, true, reason); err != nil {
		d.log.Error("record disabled destination (it stays disabled in this process)", "destination", dest.String(), "err", err)
	}
}

func (d *Dispatcher) sendWebhook(ctx context.Context, t *task) *deliveryError {
	j := t.job
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.rt.url, bytes.NewReader(j.body))
	if err != nil {
		return &deliveryError{Retryable: true, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tideline-trigger")
	SetHeaders(req.Header, j.rt.secrets, j.entry.Key, time.Now(), j.body)
	resp, err := d.httpc.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &deliveryError{Retryable: true, Err: fmt.Errorf("no answer within %s", d.cfg.WebhookTimeout)}
		}
		return &deliveryError{Retryable: true, Err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return &deliveryError{Status: resp.StatusCode, Err: errors.New("the endpoint is gone and asked for no more deliveries")}
	default:
		return &deliveryError{Status: resp.StatusCode, Retryable: true, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
}

func (d *Dispatcher) sendKafka(ctx context.Context, t *task) *deliveryError {
	if d.kafka == nil {
		return &deliveryError{Retryable: true, Err: errors.New("no Kafka client: configure kafka to deliver to topics")}
	}
	j := t.job
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WebhookTimeout)
	defer cancel()
	rec := &kgo.Record{
		Topic: d.prefix + t.dest.Target,
		Key:   []byte(j.entry.Key),
		Value: j.body,
		Headers: []kgo.RecordHeader{
			{Key: HeaderWebhookID, Value: []byte(j.entry.Key)},
			{Key: HeaderWebhookTimestamp, Value: []byte(strconv.FormatInt(time.Now().Unix(), 10))},
			{Key: "campaign-id", Value: []byte(j.entry.CampaignID)},
		},
	}
	if err := d.kafka.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return &deliveryError{Retryable: true, Err: fmt.Errorf("produce to %s: %w", rec.Topic, err)}
	}
	return nil
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func truncateErr(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}

// progressWriter batches delivery progress: dead letters and ledger rows.
// Each flush writes the dead letters before the ledger rows, so an entry is
// never "dead" in the ledger without its dead letter. Ledger progress rows
// are advisory: if they are lost, an entry looks open after a restart and
// is delivered again under the same webhook id.
type progressWriter struct {
	conn *chdb.Conn
	log  *slog.Logger
	mu   sync.Mutex
	rows []*Entry
	dead []DeadLetter
	kick chan struct{}
	// limit bounds the ledger rows kept while ClickHouse refuses them.
	limit int
}

// progressLimit is the default bound of pending progress rows: beyond it
// the oldest are dropped. A lost progress row only makes its entry look
// open again, to be sent again under the same webhook id.
const progressLimit = 100_000

func newProgressWriter(conn *chdb.Conn, log *slog.Logger) *progressWriter {
	return &progressWriter{conn: conn, log: log, kick: make(chan struct{}, 1), limit: progressLimit}
}

// compactProgress keeps the newest row of each key (a later row carries
// the whole entry, so an older one adds nothing), then at most limit
// rows, the newest ones. The dead letters are never dropped: an entry is
// only written dead after its dead letter.
func compactProgress(rows []*Entry, limit int) []*Entry {
	newest := make(map[string]int, len(rows))
	for i, e := range rows {
		if j, ok := newest[e.Key]; !ok || e.UpdatedAtMs >= rows[j].UpdatedAtMs {
			newest[e.Key] = i
		}
	}
	out := rows[:0:0]
	for i, e := range rows {
		if newest[e.Key] == i {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

func (w *progressWriter) add(e *Entry) {
	w.mu.Lock()
	w.rows = append(w.rows, e)
	n := len(w.rows)
	w.mu.Unlock()
	if n >= 1000 {
		w.wake()
	}
}

func (w *progressWriter) addDead(dl DeadLetter) {
	w.mu.Lock()
	w.dead = append(w.dead, dl)
	w.mu.Unlock()
}

func (w *progressWriter) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run flushes every 100ms until ctx ends, then once more.
func (w *progressWriter) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := w.flush(fctx); err != nil {
				w.log.Warn("last write of delivery progress failed; open deliveries are retried after the next start", "err", err)
			}
			cancel()
			return
		case <-tick.C:
		case <-w.kick:
		}
		if err := w.flush(ctx); err != nil && ctx.Err() == nil {
			failures++
			w.log.Warn("write delivery progress (retrying)", "attempt", failures, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(jitter(min(100*time.Millisecond<<min(failures, 6), 5*time.Second))):
			}
			continue
		}
		failures = 0
	}
}

func (w *progressWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	rows, dead := w.rows, w.dead
	w.rows, w.dead = nil, nil
	w.mu.Unlock()
	requeue := func(rows []*Entry, dead []DeadLetter) {
		w.mu.Lock()
		w.rows = compactProgress(append(rows, w.rows...), w.limit)
		w.dead = append(dead, w.dead...)
		w.mu.Unlock()
	}
	if len(dead) > 0 {
		if err := InsertDeadLetters(ctx, w.conn, dead); err != nil {
			requeue(rows, dead)
			return err
		}
	}
	if len(rows) > 0 {
		if err := NewLedger(w.conn).Insert(ctx, rows); err != nil {
			requeue(rows, nil)
			return err
		}
	}
	return nil
}
