package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/tideline-dev/tideline/grafana/plugin"
	"github.com/tideline-dev/tideline/grafana/query"
)

// The dashboards' variables. Every panel whose query reads audiences,
// campaigns or lanes is filtered by the matching variable; every panel
// queries the data source the source variable picks.
const (
	VarSource   = "source"
	VarAudience = "audience"
	VarCampaign = "campaign"
	VarLane     = "lane"
)

// The variable queries the data source answers (metricFindQuery in
// grafana/app/src/datasource.ts): the active audiences or campaigns, by
// name, or the lanes.
const (
	VariableQueryAudiences = query.ResourceAudiences
	VariableQueryCampaigns = query.ResourceCampaigns
	VariableQueryLanes     = "lanes"
)

// allOption is the "All" pick Grafana stores as a variable's current value.
func allOption() dashboard.VariableOption {
	return dashboard.VariableOption{
		Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
		Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
	}
}

func sourceVariable() *dashboard.DatasourceVariableBuilder {
	uid, name := DatasourceUID, "tideline"
	return dashboard.NewDatasourceVariableBuilder(VarSource).
		Label("Data source").
		Type(plugin.PluginID).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: &name},
			Value: dashboard.StringOrArrayOfString{String: &uid},
		})
}

// entityVariable picks audiences or campaigns by name; "All" sends
// query.AllValue, which filters nothing, rather than every id.
func entityVariable(name, label, find string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(Datasource()).
		Query(dashboard.StringOrMap{String: &find}).
		Definition(find).
		Refresh(dashboard.VariableRefreshOnDashboardLoad).
		Sort(dashboard.VariableSortAlphabeticalCaseInsensitiveAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(query.AllValue).
		Current(allOption())
}

func laneVariable() *dashboard.QueryVariableBuilder {
	return entityVariable(VarLane, "Lane", VariableQueryLanes).Sort(dashboard.VariableSortDisabled)
}

// withVariables adds the source variable and the named filter variables.
func withVariables(b *dashboard.DashboardBuilder, names ...string) *dashboard.DashboardBuilder {
	b = b.WithVariable(sourceVariable())
	for _, n := range names {
		switch n {
		case VarAudience:
			b = b.WithVariable(entityVariable(VarAudience, "Audience", VariableQueryAudiences))
		case VarCampaign:
			b = b.WithVariable(entityVariable(VarCampaign, "Campaign", VariableQueryCampaigns))
		case VarLane:
			b = b.WithVariable(laneVariable())
		}
	}
	return b
}
