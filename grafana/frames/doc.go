// Package frames turns the rows the query statements return into Grafana
// data frames, one converter per query type. Converters are pure: they take
// the request, the scanned rows and (where it matters) the current time, so
// every frame shape, including empty results and audiences or campaigns that
// do not exist, is unit-tested without a server.
//
// Shapes: time series are one frame per audience or lane (a time field and
// value fields labelled with the audience or lane); tables (campaign
// outcomes, pipeline lag, backfill runs, live qualifications, audience
// completeness, late events) are one frame; alert metrics are one
// numeric-multi frame per labelled number, as Grafana's alert rules read.
// An empty answer keeps the fields, with no rows, so a panel shows "no data"
// rather than an error.
package frames
