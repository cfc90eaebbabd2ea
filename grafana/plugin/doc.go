// Package plugin is tideline's Grafana backend data source: one instance per
// configured data source, holding a ClickHouse connection pool. It answers
// QueryData for every query type of package query (statements from the
// builder, rows turned into frames by package frames), alert rules included
// (alert_metric answers numbers Grafana's alerting evaluates), CheckHealth
// (connectivity, schema version, tables), the audiences and campaigns
// resources the query editor's pickers load, and the live_qualifications
// stream: RunStream polls audience_transitions past a cursor and pushes new
// qualifications to Grafana Live.
//
// Settings come from the data source's jsonData and, for the password, only
// from its decrypted secure JSON; LoadSettings validates them in one place.
// Errors that come from ClickHouse are marked as downstream errors, so
// Grafana tells them apart from the plugin's own.
package plugin
