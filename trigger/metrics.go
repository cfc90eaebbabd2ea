package trigger

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	decisions   *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	cursorAge   *prometheus.GaugeVec
	inRetry     *prometheus.GaugeVec
	queued      *prometheus.GaugeVec
	pollSeconds prometheus.Histogram
	pollErrors  prometheus.Counter
	shards      prometheus.Gauge
	waiting     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tideline_trigger_decisions_total",
			Help: "Qualifications decided, by campaign, decision (fire, fire_late, skip) and reason.",
		}, []string{"campaign", "decision", "reason"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tideline_trigger_deliveries_total",
			Help: "Delivery attempts by campaign, destination kind and outcome (delivered, retry, dead, disabled).",
		}, []string{"campaign", "kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tideline_trigger_send_latency_seconds",
			Help:    "Time from the qualification (since=derived: when it was derived; since=event: its event time) to the destination's acknowledgement.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"campaign", "since"}),
		cursorAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tideline_trigger_cursor_age_seconds",
			Help: "How far the poller's position in each feed is behind now.",
		}, []string{"feed"}),
		inRetry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tideline_trigger_deliveries_in_retry",
			Help: "Deliveries waiting for their next attempt after a failure, by campaign.",
		}, []string{"campaign"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tideline_trigger_queue_depth",
			Help: "Deliveries queued for a worker, by destination.",
		}, []string{"campaign", "kind"}),
		pollSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tideline_trigger_poll_duration_seconds",
			Help:    "Time of one poll: read the feeds, decide, record.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tideline_trigger_poll_errors_total",
			Help: "Polls that failed and were retried.",
		}),
		shards: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tideline_trigger_shards_owned",
			Help: "Customer shards this poller owns.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tideline_trigger_qualifications_waiting",
			Help: "Qualifications held until the lane watermarks pass the end of their unless window.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.deliveries, m.latency, m.cursorAge, m.inRetry, m.queued, m.pollSeconds, m.pollErrors, m.shards, m.waiting)
	}
	return m
}

// Stats counts what a poller did since it started.
type Stats struct {
	// Fired and Late count new fire and fire_late decisions.
	Fired, Late int64
	// Skipped counts new skip decisions; SkippedBy splits them by reason.
	Skipped   int64
	SkippedBy map[string]int64
	// Reused counts qualifications read again that already had a ledger entry.
	Reused int64
	// Delivered counts fires every destination acknowledged.
	Delivered int64
	// Failed counts fires dead-lettered (retries exhausted or destination disabled).
	Failed int64
	// Retrying is the number of deliveries waiting for a retry now.
	Retrying int64
	// Waiting is the number of qualifications held for the watermark now.
	Waiting int64
	// Suppressed counts fires not sent because the customer was suppressed
	// after the decision.
	Suppressed int64
}

type counters struct {
	fired, late, skipped, reused     atomic.Int64
	stale, capped, notReeligible     atomic.Int64
	converted, otherSkip             atomic.Int64
	delivered, failed, retrying, wai atomic.Int64
	suppressed                       atomic.Int64
}

func (c *counters) decided(d Decision) {
	switch d.Action {
	case Fire:
		c.fired.Add(1)
	case FireLate:
		c.late.Add(1)
	case Skip:
		c.skipped.Add(1)
		switch d.Reason {
		case ReasonStale:
			c.stale.Add(1)
		case ReasonCapped:
			c.capped.Add(1)
		case ReasonNotReeligible:
			c.notReeligible.Add(1)
		case ReasonConverted:
			c.converted.Add(1)
		default:
			c.otherSkip.Add(1)
		}
	}
}

func (c *counters) stats() Stats {
	s := Stats{
		Fired: c.fired.Load(), Late: c.late.Load(), Skipped: c.skipped.Load(), Reused: c.reused.Load(),
		Delivered: c.delivered.Load(), Failed: c.failed.Load(), Retrying: c.retrying.Load(), Waiting: c.wai.Load(),
		Suppressed: c.suppressed.Load(), SkippedBy: map[string]int64{},
	}
	for reason, v := range map[string]int64{
		ReasonStale: c.stale.Load(), ReasonCapped: c.capped.Load(), ReasonNotReeligible: c.notReeligible.Load(),
		ReasonConverted: c.converted.Load(), "other": c.otherSkip.Load(),
	} {
		if v > 0 {
			s.SkippedBy[reason] = v
		}
	}
	return s
}
