// Package dashboards builds tideline's Grafana dashboards as code with the
// Grafana Foundation SDK: the marketers' "Audience qualification", the
// operators' "Pipeline health & backfill" and the "Incident" dashboard of one
// window (links.IncidentURL links to it). Every dashboard picks the data source
// with a variable, and every panel is filtered by the audience, campaign and
// lane variables its query type reads. `go run ./grafana/dashboards/gen`
// writes them as JSON beside this file (and the alert rules of package
// alerts into grafana/provisioning/alerting), where Grafana's provisioning
// (and the plugin's host test) read them; a test fails when the checked-in
// JSON is not what the code builds.
package dashboards
