package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/barchart"
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/tideline-dev/tideline/grafana/frames"
	"github.com/tideline-dev/tideline/grafana/query"
)

// Files maps each dashboard's file name to the dashboard.
func Files() (map[string]dashboard.Dashboard, error) {
	out := map[string]dashboard.Dashboard{}
	for name, b := range map[string]*dashboard.DashboardBuilder{
		"audience-qualification.json": AudienceQualification(),
		"pipeline-health.json":        PipelineHealth(),
		"incident.json":               Incident(),
	} {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		out[name] = d
	}
	return out, nil
}

// JSON is a dashboard as written to its file: indented, newline-terminated.
func JSON(d dashboard.Dashboard) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode dashboard %s: %w", deref(d.Title), err)
	}
	return b.Bytes(), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// filterFields keeps only the named fields of a panel's frames.
func filterFields(names ...string) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{
		Id:      "filterFieldsByName",
		Options: map[string]any{"include": map[string]any{"names": names}},
	}
}

// AudienceQualification is the marketers' dashboard: audience sizes,
// entries and exits, the live feed of qualifications, qualification and
// send latency, and campaign outcomes.
func AudienceQualification() *dashboard.DashboardBuilder {
	return withVariables(dashboard.NewDashboardBuilder("Audience qualification"), VarAudience, VarCampaign, VarLane).
		Uid("tideline-audience-qualification").
		Description("Audience sizes, entries and exits, live qualifications, latency and campaign outcomes, from tideline.").
		Tags([]string{"tideline", "marketing"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-6h", "now").
		Refresh("30s").
		WithRow(dashboard.NewRowBuilder("Audiences").Id(1)).
		WithPanel(timeseries.NewPanelBuilder().
			Title("Audience size").
			Id(2).
			Description("Members of each audience at the end of each interval (event time): entries minus exits since the audience began.").
			Datasource(Datasource()).
			WithTarget(target(query.AudienceSize)).
			Unit("short").
			Min(0).
			Height(9).Span(12)).
		WithPanel(transitions(3, "Customers entering and leaving each audience per interval (event time).")).
		WithPanel(table.NewPanelBuilder().
			Title("Live qualifications").
			Id(4).
			Description("Entries and exits as the evaluator derives them; the panel updates without refresh (Grafana Live).").
			Datasource(Datasource()).
			WithTarget(target(query.LiveQualifications)).
			SortBy([]cog.Builder[common.TableSortByFieldState]{sortBy(frames.FieldTime, true)}).
			Height(10).Span(24)).
		WithRow(dashboard.NewRowBuilder("Latency and campaigns").Id(5)).
		WithPanel(latency(6, "Qualification and send latency",
			"p50/p95/p99 per lane of derived time minus event time (qualification) and send time minus event time (send).", 9)).
		WithPanel(outcomes(7, "Campaign outcomes",
			"Ledger entries per campaign in the time range: fired on time, fired late, failed delivery, skipped by reason. The classes do not overlap."))
}

// PipelineHealth is the operators' dashboard: consumer lag, watermark age,
// ingest delay and dead letters per lane, and backfill runs.
func PipelineHealth() *dashboard.DashboardBuilder {
	return withVariables(dashboard.NewDashboardBuilder("Pipeline health & backfill"), VarAudience, VarLane).
		Uid("tideline-pipeline-health").
		Description("Per-lane consumer lag, watermarks, ingest delay and dead letters, and backfill runs, from tideline.").
		Tags([]string{"tideline", "ops"}).
		Editable().
		Time("now-6h", "now").
		Refresh("30s").
		Link(dashboardLink("Incident", IncidentUID)).
		WithRow(dashboard.NewRowBuilder("Lanes").Id(1)).
		WithPanel(lane(2, "Consumer lag", "Records in Kafka not yet committed by the loader, per lane (lane_watermarks).", "consumer_lag", "short")).
		WithPanel(lane(3, "Watermark age", "How far behind now each lane's watermark (data complete up to) is.", "watermark_age_ms", "ms")).
		WithPanel(lane(4, "Ingest delay p95", "95th percentile of collector receipt to ClickHouse insert, over the time range.", "ingest_delay_p95_ms", "ms")).
		WithPanel(lane(5, "Dead letters", "Records dead-lettered in the time range, per lane (the collector included).", frames.FieldDeadLetters, "short")).
		WithPanel(table.NewPanelBuilder().
			Title("Lanes").
			Id(6).
			Description("Everything tideline knows about each lane; empty cells: the loader never reported the lane.").
			Datasource(Datasource()).
			WithTarget(target(query.PipelineLag)).
			Height(7).Span(24)).
		WithPanel(completeness(9, "Per audience, the time its result is complete to (decisions late data could change are made up to here) and the lane holding it back; empty: the evaluator has not recorded the audience yet.").
			Height(8).Span(24)).
		WithRow(dashboard.NewRowBuilder("Backfill").Id(7)).
		WithPanel(backfillRuns(8, 10))
}

// lane is a bar per lane of one pipeline_lag field.
func lane(id uint32, title, description, field, unit string) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Title(title).
		Id(id).
		Description(description).
		Datasource(Datasource()).
		WithTarget(target(query.PipelineLag)).
		WithTransformation(filterFields(frames.FieldLane, field)).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Values(true).Calcs([]string{"lastNotNull"})).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		Orientation(common.VizOrientationHorizontal).
		Unit(unit).
		Min(0).
		Height(8).Span(6)
}

// dashboardLink links to another tideline dashboard with the same time
// range and variables.
func dashboardLink(title, uid string) *dashboard.DashboardLinkBuilder {
	return dashboard.NewDashboardLinkBuilder(title).
		Type(dashboard.DashboardLinkTypeLink).
		Url("/d/" + uid).
		KeepTime(true).
		IncludeVars(true)
}

// latency is qualification and send latency per lane over time.
func latency(id uint32, title, description string, height uint32) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Id(id).
		Description(description).
		Datasource(Datasource()).
		WithTarget(target(query.QualificationLatency)).
		Unit("ms").
		Height(height).Span(12)
}

// transitions is entries and exits per audience and interval, as bars.
func transitions(id uint32, description string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title("Entries and exits").
		Id(id).
		Description(description).
		Datasource(Datasource()).
		WithTarget(target(query.Transitions)).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(60).
		Unit("short").
		Height(9).Span(12)
}

// outcomes is the ledger's entries per campaign and outcome, stacked.
func outcomes(id uint32, title, description string) *barchart.PanelBuilder {
	return barchart.NewPanelBuilder().
		Title(title).
		Id(id).
		Description(description).
		Datasource(Datasource()).
		WithTarget(target(query.CampaignOutcomes)).
		WithTransformation(dashboard.DataTransformerConfig{
			Id:      "organize",
			Options: map[string]any{"excludeByName": map[string]any{frames.FieldCampaignID: true}},
		}).
		XField(frames.FieldCampaign).
		Stacking(common.StackingModeNormal).
		Orientation(common.VizOrientationHorizontal).
		Height(9).Span(12)
}

// completeness is each audience's complete-to time, least complete first;
// the caller sizes it.
func completeness(id uint32, description string) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title("Audience completeness").
		Id(id).
		Description(description).
		Datasource(Datasource()).
		WithTarget(target(query.AudienceCompleteness)).
		SortBy([]cog.Builder[common.TableSortByFieldState]{sortBy(frames.FieldCompleteTo, false)})
}

// backfillRuns lists the backfill runs overlapping the time range.
func backfillRuns(id, height uint32) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title("Backfill runs").
		Id(id).
		Description("Runs of `tideline backfill` overlapping the time range, newest first, with what they re-ingested, fired and skipped.").
		Datasource(Datasource()).
		WithTarget(target(query.BackfillRuns)).
		Height(height).Span(24)
}

func sortBy(field string, desc bool) *common.TableSortByFieldStateBuilder {
	return common.NewTableSortByFieldStateBuilder().DisplayName(field).Desc(desc)
}
