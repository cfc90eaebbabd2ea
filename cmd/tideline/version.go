package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

// versionInfo is what `tideline --version` reports: this build, and the
// servers it talks to with the current settings when they answer.
type versionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
	ClickHouse string `json:"clickhouse"`
	Kafka      string `json:"kafka"`
}

func newVersionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of tideline and of the ClickHouse and Kafka it talks to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, nil); err != nil {
				return err
			}
			return writeVersion(cmd.Context(), cmd.OutOrStdout(), a, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeVersion(ctx context.Context, w io.Writer, a *app, asJSON bool) error {
	v := buildVersion()
	v.ClickHouse = clickHouseVersion(ctx, a.ch)
	v.Kafka = kafkaVersion(ctx, a.kafka)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	commit := v.Commit
	if commit == "" {
		commit = "unknown"
	} else if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "tideline %s\ncommit     %s %s\ngo         %s\nclickhouse %s\nkafka      %s\n", v.Version, commit, v.CommitTime, v.Go, v.ClickHouse, v.Kafka)
	return nil
}

// commit is set by `make build` (-ldflags -X main.commit=...) for builds
// made without VCS stamping (-buildvcs=false).
var commit string

func buildVersion() versionInfo {
	v := versionInfo{Version: "(unknown)", Commit: commit}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version, v.Go = bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func clickHouseVersion(ctx context.Context, c chdb.Config) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c.Database = "system"
	conn, err := chdb.Open(ctx, c, false)
	if err != nil {
		return fmt.Sprintf("not reachable at %s", c.Addr)
	}
	defer conn.Close()
	sv, err := conn.ServerVersion()
	if err != nil {
		return fmt.Sprintf("not reachable at %s: %v", c.Addr, err)
	}
	return fmt.Sprintf("%s at %s", sv.Version, c.Addr)
}

// kafkaVersion asks the broker for its API versions; a Kafka version is
// the guess franz-go makes from them (kfake answers like a recent Kafka).
func kafkaVersion(ctx context.Context, c broker.Config) string {
	seeds, what := c.Brokers, "kafka"
	if c.Mode == "embedded" {
		seeds, what = []string{fmt.Sprintf("127.0.0.1:%d", c.EmbeddedPort)}, "embedded broker (kfake)"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(2*time.Second), kgo.RequestRetries(0))
	if err != nil {
		return fmt.Sprintf("%s %v: %v", what, seeds, err)
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		if c.Mode == "embedded" {
			return fmt.Sprintf("%s not running on %v (tideline dev, collect or ingest serve it)", what, seeds)
		}
		return fmt.Sprintf("not reachable at %v", seeds)
	}
	return fmt.Sprintf("%s %s at %v", what, kversion.FromApiVersionsResponse(resp).VersionGuess(), seeds)
}
