package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"

	"github.com/tideline-dev/tideline/grafana/plugin"
	"github.com/tideline-dev/tideline/grafana/query"
)

// DatasourceUID is the uid provisioning gives the tideline data source:
// the source variable's default.
const DatasourceUID = "tideline"

// Datasource references the tideline data source the dashboard's source
// variable picks.
func Datasource() common.DataSourceRef {
	typ, uid := plugin.PluginID, "${"+VarSource+"}"
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

// Target is a panel query of the tideline data source, in the JSON the
// frontend stores (TidelineQuery in grafana/app/src/types.ts).
type Target struct {
	RefID      string               `json:"refId"`
	Datasource common.DataSourceRef `json:"datasource"`
	QueryType  query.Type           `json:"queryType"`
	Audiences  []string             `json:"audiences,omitempty"`
	Campaigns  []string             `json:"campaigns,omitempty"`
	Lanes      []string             `json:"lanes,omitempty"`
	Metric     query.Metric         `json:"metric,omitempty"`
}

var _ variants.Dataquery = Target{}

// ImplementsDataqueryVariant marks Target as a panel query for the SDK.
func (Target) ImplementsDataqueryVariant() {}

// DataqueryType is the plugin id, as the SDK's own query types return theirs.
func (Target) DataqueryType() string { return plugin.PluginID }

// Validate rejects a target whose query type the backend does not serve.
func (t Target) Validate() error {
	if !t.QueryType.Valid() {
		return fmt.Errorf("%w %q", query.ErrUnknownType, t.QueryType)
	}
	return nil
}

// Equals compares two targets by their JSON.
func (t Target) Equals(other variants.Dataquery) bool {
	a, err1 := json.Marshal(t)
	b, err2 := json.Marshal(other)
	return err1 == nil && err2 == nil && string(a) == string(b)
}

// targetBuilder is a Target as the SDK's panels take it.
type targetBuilder struct{ t Target }

func (b targetBuilder) Build() (variants.Dataquery, error) { return b.t, nil }

// target makes the query of a panel: refId A of the tideline data source,
// filtered by the dashboard variable of each filter the query type reads.
func target(typ query.Type) targetBuilder {
	t := Target{RefID: "A", Datasource: Datasource(), QueryType: typ}
	f := query.Model{QueryType: typ}.Filters()
	if f.Audiences {
		t.Audiences = []string{"$" + VarAudience}
	}
	if f.Campaigns {
		t.Campaigns = []string{"$" + VarCampaign}
	}
	if f.Lanes {
		t.Lanes = []string{"$" + VarLane}
	}
	return targetBuilder{t}
}
