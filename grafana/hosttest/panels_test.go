package hosttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"

	"github.com/tideline-dev/tideline/grafana/frames"
	"github.com/tideline-dev/tideline/grafana/query"
)

// expectedFields are the fields each query type's frames must carry.
var expectedFields = map[query.Type][]string{
	query.AudienceSize:         {frames.FieldTime, frames.FieldMembers},
	query.Transitions:          {frames.FieldTime, frames.FieldEntered, frames.FieldExited},
	query.QualificationLatency: append([]string{frames.FieldTime}, frames.LatencyFields...),
	query.CampaignOutcomes:     {frames.FieldCampaignID, frames.FieldCampaign, frames.FieldFired, frames.FieldLate, frames.FieldFailed},
	query.PipelineLag:          frames.PipelineLagFields,
	query.BackfillRuns:         frames.BackfillFields,
	query.LiveQualifications:   frames.LiveFields,
	query.AudienceCompleteness: frames.CompletenessFields,
	query.LateEvents:           {frames.FieldLateness},
	query.IngestDelay:          append([]string{frames.FieldTime}, frames.IngestDelayFields...),
}

type panel struct {
	ID              int               `json:"id"`
	Type            string            `json:"type"`
	Title           string            `json:"title"`
	Targets         []json.RawMessage `json:"targets"`
	Panels          []panel           `json:"panels"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			Include struct {
				Names []string `json:"names"`
			} `json:"include"`
			ExcludeByName map[string]bool `json:"excludeByName"`
		} `json:"options"`
	} `json:"transformations"`
	Options struct {
		XField string `json:"xField"`
		SortBy []struct {
			DisplayName string `json:"displayName"`
		} `json:"sortBy"`
	} `json:"options"`
}

// referencedFields are the field names a panel's options and
// transformations name: each must exist in the panel's frames.
func (p panel) referencedFields() []string {
	var out []string
	for _, tr := range p.Transformations {
		out = append(out, tr.Options.Include.Names...)
		for name := range tr.Options.ExcludeByName {
			out = append(out, name)
		}
	}
	if p.Options.XField != "" {
		out = append(out, p.Options.XField)
	}
	for _, s := range p.Options.SortBy {
		out = append(out, s.DisplayName)
	}
	return out
}

// TestEveryPanelAnswerable loads each generated dashboard, sends each
// panel's target as stored, with the dashboard's variables replaced by
// their stored current values as Grafana's frontend replaces them (All by
// the variable's allValue), to the running plugin over gRPC, and
// checks the answer: no error, rows from the seeded data, the query type's
// fields, and every field the panel refers to.
func TestEveryPanelAnswerable(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "dashboards", "*.json"))
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v (run go run ./grafana/dashboards/gen)", files, err)
	}
	h := start(t)
	cfg, _ := seeded(t)
	pc := pluginContext(t, 1, cfg)
	from, to := t0, t0.Add(span)
	panels := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels     []panel    `json:"panels"`
			Templating templating `json:"templating"`
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		interpolate := dash.Templating.interpolator(t)
		var all []panel
		for _, p := range dash.Panels {
			all = append(all, p)
			all = append(all, p.Panels...) // a collapsed row holds its panels
		}
		for _, p := range all {
			if p.Type == "row" {
				continue
			}
			panels++
			t.Run(filepath.Base(file)+"/"+p.Title, func(t *testing.T) {
				if len(p.Targets) == 0 {
					t.Fatal("panel has no target")
				}
				for _, stored := range p.Targets {
					raw := interpolate(stored)
					var tg struct {
						RefID     string     `json:"refId"`
						QueryType query.Type `json:"queryType"`
					}
					if err := json.Unmarshal(raw, &tg); err != nil {
						t.Fatal(err)
					}
					q := &pluginv2.DataQuery{RefId: tg.RefID, Json: raw, MaxDataPoints: 1000, IntervalMS: (5 * time.Minute).Milliseconds(),
						TimeRange: &pluginv2.TimeRange{FromEpochMS: from.UnixMilli(), ToEpochMS: to.UnixMilli()}}
					fs, r := h.queryData(t, pc, q)
					if r.Error != "" {
						t.Fatalf("%s: error %q", tg.QueryType, r.Error)
					}
					want, ok := expectedFields[tg.QueryType]
					if !ok {
						t.Fatalf("query type %q has no expected fields", tg.QueryType)
					}
					rows := 0
					for _, f := range fs {
						rows += f.Rows()
						var names []string
						for _, fl := range f.Fields {
							names = append(names, fl.Name)
						}
						for _, w := range append(want, p.referencedFields()...) {
							if !slices.Contains(names, w) {
								t.Errorf("%s frame %q has fields %v, missing %q", tg.QueryType, f.Name, names, w)
							}
						}
					}
					if rows == 0 {
						t.Errorf("%s: no rows from the seeded data", tg.QueryType)
					}
				}
			})
		}
	}
	if panels < 10 {
		t.Fatalf("only %d panels checked", panels)
	}
}

// templating is a dashboard's variables as stored.
type templating struct {
	List []struct {
		Name     string `json:"name"`
		AllValue string `json:"allValue"`
		Current  struct {
			Value json.RawMessage `json:"value"`
		} `json:"current"`
	} `json:"list"`
}

// interpolator replaces $name and ${name} in a target by the variable's
// current value: its allValue when All is picked. A multi-value pick of
// several values is not stored by the generated dashboards.
func (tp templating) interpolator(t *testing.T) func(json.RawMessage) json.RawMessage {
	t.Helper()
	var pairs []string
	for _, v := range tp.List {
		var one string
		var many []string
		if err := json.Unmarshal(v.Current.Value, &one); err != nil {
			if err := json.Unmarshal(v.Current.Value, &many); err != nil || len(many) != 1 {
				t.Fatalf("variable %s: current value %s: want one value", v.Name, v.Current.Value)
			}
			one = many[0]
		}
		if one == "$__all" {
			one = v.AllValue
		}
		pairs = append(pairs, "${"+v.Name+"}", one, "$"+v.Name, one)
	}
	r := strings.NewReplacer(pairs...)
	return func(raw json.RawMessage) json.RawMessage {
		return json.RawMessage(r.Replace(string(raw)))
	}
}
