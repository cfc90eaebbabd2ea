package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/barchart"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"
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
		WithPanel(timeseries.NewPanelBuilder().
			Title("Qualification latency per lane").
			Id(4).
			Description("p50/p95/p99 per lane of derived time minus event time (qualification) and send time minus event time (send): a backlog shows as a climb.").
			Datasource(Datasource()).
			WithTarget(target(query.QualificationLatency)).
			Unit("ms").
			Height(8).Span(12)).
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
		WithPanel(table.NewPanelBuilder().
			Title("Audience completeness").
			Id(7).
			Description("Per audience, the time it is complete to and the lane holding it back: decisions late data could change wait for it.").
			Datasource(Datasource()).
			WithTarget(target(query.AudienceCompleteness)).
			SortBy([]cog.Builder[common.TableSortByFieldState]{sortBy(frames.FieldCompleteTo, false)}).
			Height(9).Span(12)).
		WithRow(dashboard.NewRowBuilder("Qualifications").Id(8)).
		WithPanel(barchart.NewPanelBuilder().
			Title("Qualifications by decision and reason").
			Id(9).
			Description("Ledger entries per campaign detected in the time range: fired on time, fired late, failed delivery, skipped by reason (stale: beyond the staleness budget).").
			Datasource(Datasource()).
			WithTarget(target(query.CampaignOutcomes)).
			WithTransformation(dashboard.DataTransformerConfig{
				Id:      "organize",
				Options: map[string]any{"excludeByName": map[string]any{frames.FieldCampaignID: true}},
			}).
			XField(frames.FieldCampaign).
			Stacking(common.StackingModeNormal).
			Orientation(common.VizOrientationHorizontal).
			Height(9).Span(12)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Entries and exits").
			Id(10).
			Description("Customers entering and leaving each audience per interval, by event time: a late backlog fills in past intervals.").
			Datasource(Datasource()).
			WithTarget(target(query.Transitions)).
			DrawStyle(common.GraphDrawStyleBars).
			FillOpacity(60).
			Unit("short").
			Height(9).Span(12)).
		WithRow(dashboard.NewRowBuilder("Backfill").Id(11)).
		WithPanel(table.NewPanelBuilder().
			Title("Backfill runs").
			Id(12).
			Description("Runs of `tideline backfill` overlapping the time range, newest first, with what they re-ingested, fired and skipped.").
			Datasource(Datasource()).
			WithTarget(target(query.BackfillRuns)).
			Height(8).Span(24))
}
