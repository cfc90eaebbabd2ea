// Package dashboards builds tideline's Grafana dashboards as code with the
// Grafana Foundation SDK: the marketers' "Audience qualification" and the
// operators' "Pipeline health & backfill". `go run ./grafana/dashboards/gen`
// writes them as JSON beside this file, where Grafana's provisioning (and
// the plugin's host test) read them; a test fails when the checked-in JSON
// is not what the code builds.
package dashboards
