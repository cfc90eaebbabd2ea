package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
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
// data source with a query type the backend serves.
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
				if err := tg.Validate(); err != nil || tg.Datasource.Uid == nil || *tg.Datasource.Uid != DatasourceUID {
					t.Errorf("%s: panel %q target %+v: %v", name, p.Title, tg, err)
				}
			}
		}
		if queries == 0 {
			t.Errorf("%s has no queries", name)
		}
	}
}
