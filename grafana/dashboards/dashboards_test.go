package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/grafana/links"
	"github.com/tideline-dev/tideline/grafana/plugin"
	"github.com/tideline-dev/tideline/grafana/query"
)

// TestCheckedInJSONIsGenerated fails when a dashboard file differs from
// what the code builds: change the code, then run go run ./grafana/dashboards/gen.
func TestCheckedInJSONIsGenerated(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := filepath.Glob("*.json")
	if len(onDisk) != len(files) {
		t.Errorf("%d dashboard files on disk, the generator makes %d: %v", len(onDisk), len(files), onDisk)
	}
	for name, d := range files {
		want, err := JSON(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run go run ./grafana/dashboards/gen)", err)
		}
		if string(got) != string(want) {
			t.Errorf("grafana/dashboards/%s is not what the generator builds: run go run ./grafana/dashboards/gen", name)
		}
	}
}

// TestPanelsWellFormed: unique panel ids, every panel queries the tideline
// data source the source variable picks with a query type the backend
// serves.
func TestPanelsWellFormed(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range files {
		b, _ := JSON(d)
		var parsed struct {
			UID    string `json:"uid"`
			Panels []struct {
				ID      int      `json:"id"`
				Type    string   `json:"type"`
				Title   string   `json:"title"`
				Targets []Target `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &parsed); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if parsed.UID == "" {
			t.Errorf("%s has no uid: provisioning would give it a new one on every start", name)
		}
		ids := map[int]bool{}
		queries := 0
		for _, p := range parsed.Panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %q has id %d, not unique", name, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) != 1 {
				t.Errorf("%s: panel %q has %d targets", name, p.Title, len(p.Targets))
			}
			for _, tg := range p.Targets {
				queries++
				if err := tg.Validate(); err != nil || tg.Datasource.Uid == nil || *tg.Datasource.Uid != "${"+VarSource+"}" {
					t.Errorf("%s: panel %q target %+v: %v", name, p.Title, tg, err)
				}
			}
		}
		if queries == 0 {
			t.Errorf("%s has no queries", name)
		}
	}
}

type parsedDashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			Query    any    `json:"query"`
			Multi    bool   `json:"multi"`
			AllValue string `json:"allValue"`
			Current  struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []Target `json:"targets"`
	} `json:"panels"`
}

func parsed(t *testing.T) map[string]parsedDashboard {
	t.Helper()
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]parsedDashboard{}
	for name, d := range files {
		b, err := JSON(d)
		if err != nil {
			t.Fatal(err)
		}
		var p parsedDashboard
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = p
	}
	return out
}

// TestVariablesUsedWhereTheyApply: every dashboard picks its data source
// with the source variable (default: the provisioned one); every panel is
// filtered by the audience, campaign and lane variables its query type
// reads, each defined on the dashboard with "All" sending query.AllValue;
// and every filter variable a dashboard defines is used by some panel.
func TestVariablesUsedWhereTheyApply(t *testing.T) {
	for name, d := range parsed(t) {
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			switch v.Name {
			case VarSource:
				if v.Type != "datasource" || v.Query != plugin.PluginID || v.Current.Value != DatasourceUID {
					t.Errorf("%s: source variable %+v: want a datasource variable of %s defaulting to %s", name, v, plugin.PluginID, DatasourceUID)
				}
			case VarAudience, VarCampaign, VarLane:
				if v.Type != "query" || !v.Multi || v.AllValue != query.AllValue {
					t.Errorf("%s: variable %s %+v: want a multi-value query variable whose All is %q", name, v.Name, v, query.AllValue)
				}
			default:
				t.Errorf("%s: unexpected variable %s", name, v.Name)
			}
		}
		if !vars[VarSource] {
			t.Errorf("%s has no %s variable", name, VarSource)
		}
		used := map[string]bool{}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				f := query.Model{QueryType: tg.QueryType, Metric: tg.Metric}.Filters()
				for _, c := range []struct {
					applies bool
					name    string
					got     []string
				}{{f.Audiences, VarAudience, tg.Audiences}, {f.Campaigns, VarCampaign, tg.Campaigns}, {f.Lanes, VarLane, tg.Lanes}} {
					want := []string(nil)
					if c.applies {
						want = []string{"$" + c.name}
						used[c.name] = true
						if !vars[c.name] {
							t.Errorf("%s: panel %q uses $%s, which the dashboard does not define", name, p.Title, c.name)
						}
					}
					if !slices.Equal(c.got, want) {
						t.Errorf("%s: panel %q (%s) filters %s by %v, want %v", name, p.Title, tg.QueryType, c.name, c.got, want)
					}
				}
			}
		}
		for v := range vars {
			if v != VarSource && !used[v] {
				t.Errorf("%s: variable %s is used by no panel", name, v)
			}
		}
	}
}

// TestIncidentDashboard: the incident dashboard shows lag and watermark per
// lane, late events, qualifications by decision and reason, and backfill
// runs, and IncidentURL opens it on a window.
func TestIncidentDashboard(t *testing.T) {
	d, ok := parsed(t)["incident.json"]
	if !ok || d.UID != IncidentUID {
		t.Fatalf("incident.json missing or uid %q", d.UID)
	}
	have := map[query.Type][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			have[tg.QueryType] = append(have[tg.QueryType], p.Title)
		}
	}
	for _, want := range []query.Type{query.PipelineLag, query.LateEvents, query.CampaignOutcomes, query.BackfillRuns, query.QualificationLatency, query.AudienceCompleteness, query.IngestDelay} {
		if len(have[want]) == 0 {
			t.Errorf("incident dashboard has no %s panel (has %v)", want, have)
		}
	}
	from := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	got := links.IncidentURL("http://grafana:3000/", from, from.Add(90*time.Minute))
	want := "http://grafana:3000/d/tideline-incident/incident?from=1793613600000&to=1793619000000"
	if got != want {
		t.Errorf("IncidentURL = %s, want %s", got, want)
	}
	if !strings.Contains(links.IncidentURL("https://g.example/grafana", from, from), "https://g.example/grafana/d/") {
		t.Error("IncidentURL drops a base path")
	}
}

// TestVariableQueriesServed: the data source's frontend answers every
// variable query the dashboards use (metricFindQuery in datasource.ts).
func TestVariableQueriesServed(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "app", "src", "datasource.ts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{VariableQueryAudiences, VariableQueryCampaigns, VariableQueryLanes} {
		if !strings.Contains(string(src), "case '"+q+"':") {
			t.Errorf("grafana/app/src/datasource.ts metricFindQuery does not answer %q", q)
		}
	}
}
