// Package alerts holds tideline's Grafana alert rules as code: the rules
// that page on the symptoms of a pipeline incident (a stalled lane, a
// growing consumer lag, dead letters, failing deliveries, audiences whose
// completeness falls behind), each a query of the tideline data source and
// a threshold. `make dashboards` writes them to
// grafana/provisioning/alerting, where Grafana's file provisioning loads
// them; a test fails when the checked-in file differs from the code.
package alerts
