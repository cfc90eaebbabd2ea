package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/golden"
)

const (
	settingsBegin = "<!-- settings:begin (go test ./cmd/tideline -run TestREADMESettings -update) -->\n"
	settingsEnd   = "<!-- settings:end -->"
)

// TestREADMESettings keeps the README's settings table equal to what the
// config structs define, so no setting goes undocumented.
func TestREADMESettings(t *testing.T) {
	a := &app{ch: chdb.DefaultConfig(), kafka: broker.DefaultConfig()}
	var table bytes.Buffer
	if err := writeSettings(&table, sectionDefaults(a)); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, settingsBegin), strings.Index(s, settingsEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the settings markers %q ... %q", settingsBegin, settingsEnd)
	}
	got := s[i+len(settingsBegin) : j]
	if got == table.String() {
		return
	}
	if golden.Update() {
		s = s[:i+len(settingsBegin)] + table.String() + s[j:]
		if err := os.WriteFile("../../README.md", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md settings table is stale; run: go test ./cmd/tideline -run TestREADMESettings -update")
}

// TestComposeConfigKnown: every key of the compose stack's config file is a
// setting of some command, so each service accepts the file it shares.
func TestComposeConfigKnown(t *testing.T) {
	a := &app{ch: chdb.DefaultConfig(), kafka: broker.DefaultConfig()}
	if err := config.CheckFile("../../grafana/compose/tideline.yaml", sectionDefaults(a)); err != nil {
		t.Fatal(err)
	}
}

// TestPrintedConfigLoads: what `tideline config` prints is a config file
// every command accepts (the keys are the settings' own, embedded groups
// of settings included), with one key per row of the settings table.
func TestPrintedConfigLoads(t *testing.T) {
	a := &app{ch: chdb.DefaultConfig(), kafka: broker.DefaultConfig()}
	sections := sectionDefaults(a)
	keyed, err := config.Keyed(sections)
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(keyed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := config.CheckFile(path, sections); err != nil {
		t.Fatalf("the printed configuration is not a valid config file: %v", err)
	}
	for _, key := range []string{"campaigns_dir:", "coordination_topic: evaluate.shards", "coordination_topic: trigger.shards", "dial_timeout:"} {
		if !strings.Contains(string(out), key) {
			t.Errorf("the printed configuration lacks %q", key)
		}
	}
	var table bytes.Buffer
	if err := writeSettings(&table, sections); err != nil {
		t.Fatal(err)
	}
	rows := strings.Count(table.String(), "\n") - 2
	var leaves func(v any) int
	leaves = func(v any) int {
		m, ok := v.(map[string]any)
		if !ok {
			return 1
		}
		n := 0
		for _, x := range m {
			n += leaves(x)
		}
		return n
	}
	if n := leaves(map[string]any(keyed)); n != rows {
		t.Errorf("the printed configuration has %d settings, the settings table %d", n, rows)
	}
}
