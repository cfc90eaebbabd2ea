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
}

func newEvalMetrics(reg prometheus.Registerer) *evalMetrics {
	m := &evalMetrics{
		passes:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_materialize_passes_total", Help: "Evaluation passes, by result (ok, full_sweep, no_watermark, error)."}, []string{"result"}),
		duration:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tideline_materialize_pass_duration_seconds", Help: "Time one evaluation pass took.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		customers:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tideline_materialize_customers_evaluated_total", Help: "Customers evaluated (a customer evaluated in several passes counts each time)."}),
		touches:     prometheus.NewCounter(prometheus.CounterOpts{Name: "tideline_materialize_touches_read_total", Help: "New customer_touches rows read."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_materialize_transitions_total", Help: "Audience transitions written, by audience and kind."}, []string{"audience", "kind"}),
		asOfAge:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "tideline_materialize_as_of_age_seconds", Help: "How far the evaluation time (the lane watermark) is behind now."}),
	}
	if reg != nil {
		reg.MustRegister(m.passes, m.duration, m.customers, m.touches, m.transitions, m.asOfAge)
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
