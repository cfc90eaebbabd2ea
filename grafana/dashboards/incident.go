package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/barchart"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/tideline-dev/tideline/grafana/frames"
	"github.com/tideline-dev/tideline/grafana/links"
	"github.com/tideline-dev/tideline/grafana/query"
)

// IncidentUID is the incident dashboard's uid (links.IncidentURL opens it).
const IncidentUID = links.IncidentUID

// Incident is the dashboard of an incident's window: per lane the consumer
// lag, watermark, ingest delay over time and how late events arrived, what the lateness did to
// audiences (completeness, qualification latency), the qualifications'
// outcomes by decision and reason, and the backfill runs that repaired it.
func Incident() *dashboard.DashboardBuilder {
	return withVariables(dashboard.NewDashboardBuilder("Incident"), VarAudience, VarCampaign, VarLane).
		Uid(IncidentUID).
		Description("One incident's window: lag and watermarks per lane, late events, audience completeness, qualifications by decision and reason, and backfill runs.").
		Tags([]string{"tideline", "ops", "incident"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-24h", "now").
		Refresh("1m").
		Link(dashboardLink("Pipeline health", "tideline-pipeline-health")).
		Link(dashboardLink("Audience qualification", "tideline-audience-qualification")).
		WithRow(dashboard.NewRowBuilder("Lanes").Id(1)).
		WithPanel(lane(2, "Consumer lag", "Records in Kafka not yet committed by the loader, per lane, now.", "consumer_lag", "short")).
		WithPanel(lane(3, "Watermark age", "How far behind now each lane's watermark (data complete up to) is.", "watermark_age_ms", "ms")).
		WithPanel(latency(4, "Qualification latency per lane",
			"p50/p95/p99 per lane of derived time minus event time (qualification) and send time minus event time (send): a backlog shows as a climb.", 8)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Ingest delay per lane").
			Id(13).
			Description("Collector receipt to ClickHouse insert per lane over time (p50/p95/p99 and worst): how a backlog built up and drained.").
			Datasource(Datasource()).
			WithTarget(target(query.IngestDelay)).
			Unit("ms").
			Height(8).Span(24)).
		WithRow(dashboard.NewRowBuilder("Late data").Id(5)).
		WithPanel(barchart.NewPanelBuilder().
			Title("Late events").
			Id(6).
			Description("Events received in the time range per lateness class (receipt minus event time), per lane: an incident's backlog arrives in the late classes.").
			Datasource(Datasource()).
			WithTarget(target(query.LateEvents)).
			XField(frames.FieldLateness).
			Stacking(common.StackingModeNormal).
			Height(9).Span(12)).
		WithPanel(completeness(7, "Per audience, the time it is complete to and the lane holding it back: decisions late data could change wait for it.").
			Height(9).Span(12)).
		WithRow(dashboard.NewRowBuilder("Qualifications").Id(8)).
		WithPanel(outcomes(9, "Qualifications by decision and reason",
			"Ledger entries per campaign detected in the time range: fired on time, fired late, failed delivery, skipped by reason (stale: beyond the staleness budget).")).
		WithPanel(transitions(10, "Customers entering and leaving each audience per interval, by event time: a late backlog fills in past intervals.")).
		WithRow(dashboard.NewRowBuilder("Backfill").Id(11)).
		WithPanel(backfillRuns(12, 8))
}
