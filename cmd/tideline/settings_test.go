package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

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
