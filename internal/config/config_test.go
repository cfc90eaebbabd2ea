package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type sample struct {
	Addr     string        `koanf:"addr"`
	Batch    int           `koanf:"batch_size"`
	Interval time.Duration `koanf:"interval"`
	Lanes    []string      `koanf:"lanes"`
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tideline.yaml")
	if err := os.WriteFile(path, []byte("loader:\n  addr: file\n  batch_size: 7\n  interval: 3s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TIDELINE_LOADER_BATCH_SIZE", "9")
	t.Setenv("TIDELINE_LOADER_LANES", "web,server")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("addr", "", "")
	if err := fs.Parse([]string{"--addr", "flag"}); err != nil {
		t.Fatal(err)
	}
	s := sample{Addr: "default", Batch: 1, Interval: time.Second, Lanes: []string{"web"}}
	if err := Load(path, fs, []Flag{{"addr", "loader.addr"}}, Sections{"loader": &s}); err != nil {
		t.Fatal(err)
	}
	want := sample{Addr: "flag", Batch: 9, Interval: 3 * time.Second, Lanes: []string{"web", "server"}}
	if s.Addr != want.Addr || s.Batch != want.Batch || s.Interval != want.Interval || len(s.Lanes) != 2 || s.Lanes[1] != "server" {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestUnknownEnvRejected(t *testing.T) {
	t.Setenv("TIDELINE_LOADER_BATCHSIZE", "9")
	s := sample{}
	err := Load("", nil, nil, Sections{"loader": &s})
	if err == nil || !contains(err.Error(), "TIDELINE_LOADER_BATCHSIZE") {
		t.Fatalf("want an error naming the misspelt variable, got %v", err)
	}
}

func TestUnknownFileKeyRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tideline.yaml")
	if err := os.WriteFile(path, []byte("loader:\n  addr: file\n  batchsize: 7\nloder:\n  addr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := sample{}
	err := Load(path, nil, nil, Sections{"loader": &s})
	if err == nil || !contains(err.Error(), "loader.batchsize") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
	err = CheckFile(path, Sections{"loader": &s, "kafka": &sample{}})
	if err == nil || !contains(err.Error(), "loader.batchsize") || !contains(err.Error(), "loder.addr") {
		t.Fatalf("want an error naming both unknown keys, got %v", err)
	}
	if err := CheckFile(path, Sections{"loader": &sample{}, "loder": &sample{}}); err == nil || contains(err.Error(), "loder") {
		t.Fatalf("want only loader.batchsize, got %v", err)
	}
}

func TestScriptVariablesOnlyIgnored(t *testing.T) {
	t.Setenv("TIDELINE_KAFKA_PORT", "19092")
	t.Setenv("TIDELINE_CH_TCP_PORT", "19000")
	s := sample{}
	if err := Load("", nil, nil, Sections{"kafka": &s}); err != nil {
		t.Fatalf("the scripts' own variables must be accepted: %v", err)
	}
	t.Setenv("TIDELINE_KAFKA_ADR", "x")
	if err := Load("", nil, nil, Sections{"kafka": &s}); err == nil || !contains(err.Error(), "TIDELINE_KAFKA_ADR") {
		t.Fatalf("want an error naming the misspelt kafka variable, got %v", err)
	}
}

func TestBadFile(t *testing.T) {
	s := sample{}
	if err := Load("/nonexistent/tideline.yaml", nil, nil, Sections{"loader": &s}); err == nil {
		t.Fatal("want an error for a missing config file")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
