package materialize

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type evalMetrics struct {
	passes      *prometheus.CounterVec
	duration    prometheus.Histogram
	customers   prometheus.Counter
	touches     prometheus.Counter
	transitions *prometheus.CounterVec
	asOfAge     prometheus.Gauge
	// completeness is how far each audience's complete time is behind the
	// freshest watermark: the part of its decisions held back by a lane.
	completeness *prometheus.GaugeVec
	redated      *prometheus.CounterVec
	shards       prometheus.Gauge
}

func newEvalMetrics(reg prometheus.Registerer) *evalMetrics {
	m := &evalMetrics{
		passes:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_materialize_passes_total", Help: "Evaluation passes, by result (ok, full_sweep, no_watermark, error)."}, []string{"result"}),
		duration:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tideline_materialize_pass_duration_seconds", Help: "Time one evaluation pass took.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		customers:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tideline_materialize_customers_evaluated_total", Help: "Customers evaluated (a customer evaluated in several passes counts each time)."}),
		touches:     prometheus.NewCounter(prometheus.CounterOpts{Name: "tideline_materialize_touches_read_total", Help: "New customer_touches rows read."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_materialize_transitions_total", Help: "Audience transitions written, by audience and kind."}, []string{"audience", "kind"}),
		asOfAge:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "tideline_materialize_as_of_age_seconds", Help: "How far the eager evaluation time (the freshest lane watermark) is behind now."}),
		completeness: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tideline_materialize_audience_held_back_seconds",
			Help: "How far an audience's complete time (the smallest watermark of its lanes) is behind the freshest lane watermark."}, []string{"audience"}),
		redated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_materialize_transitions_redated_total",
			Help: "Transitions written again with an earlier or later date because late data moved when the condition became true."}, []string{"audience"}),
		shards: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tideline_materialize_shards_owned",
			Help: "Customer shards this evaluator owns (materialize.sharding group)."}),
	}
	if reg != nil {
		reg.MustRegister(m.shards, m.passes, m.duration, m.customers, m.touches, m.transitions, m.asOfAge, m.completeness, m.redated)
	}
	return m
}

func (m *evalMetrics) observe(st Stats, err error) {
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case st.NoWatermark:
		result = "no_watermark"
	case st.FullSweep:
		result = "full_sweep"
	}
	m.passes.WithLabelValues(result).Inc()
	m.duration.Observe(st.Duration.Seconds())
	m.customers.Add(float64(st.Customers))
	m.touches.Add(float64(st.Touches))
	if st.AsOfMs > 0 {
		m.asOfAge.Set(time.Since(time.UnixMilli(int64(st.AsOfMs))).Seconds())
	}
}
