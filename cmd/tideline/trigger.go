package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/shares"
	"github.com/tideline-dev/tideline/internal/telemetry"
	"github.com/tideline-dev/tideline/trigger"
)

func init() {
	subcommands = append(subcommands, newTriggerCmd, newCampaignsCmd)
	extraSections["trigger"] = func() any { c := trigger.DefaultConfig(); return &c }
}

// campaignsFlag binds --campaigns, which every trigger and campaigns
// subcommand has (see addCampaignsFlag).
var campaignsFlag = config.Flag{Name: "campaigns", Key: "trigger.campaigns_dir"}

func addCampaignsFlag(cmd *cobra.Command, cfg *trigger.Config) {
	cmd.Flags().String("campaigns", cfg.CampaignsDir, "folder of campaign definitions (one YAML file each), or one file")
}

func newTriggerCmd(a *app) *cobra.Command {
	cfg := trigger.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Fire campaigns from qualifications: decide, record in the send ledger, deliver signed webhooks",
		Long: `trigger runs the poller. It reads audience transitions and events past its
saved positions, decides each qualification by its campaign's policy (fire,
fire late, or skip as stale, capped, not re-eligible, converted), records the
decision in the send ledger under a deterministic key, and delivers fires as
Standard Webhooks (webhook-id = the ledger key) and, when a campaign says so,
to a Kafka topic. Killed at any point, a restarted poller neither loses a
qualification nor gives one a second ledger entry; a webhook may be sent
again, always under the same id.

With trigger.sharding group (the default) any number of pollers share the
customers through a Kafka consumer group; with none, run exactly one.

  tideline trigger redeliver      send dead-lettered deliveries again
  tideline campaigns validate     check the campaign definitions`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := append([]config.Flag{campaignsFlag},
				config.Flag{Name: "metrics-addr", Key: "trigger.metrics_addr"},
				config.Flag{Name: "sharding", Key: "trigger.sharding"},
				config.Flag{Name: "instance-id", Key: "trigger.instance_id"},
				config.Flag{Name: "start-from", Key: "trigger.start_from"})
			if err := a.load(cmd, config.Sections{"trigger": &cfg}, flags...); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			err := runTrigger(cmd.Context(), a, cfg)
			if err != nil && cmd.Context().Err() != nil {
				// SIGTERM while starting: a shutdown, not a failure.
				return nil
			}
			return err
		},
	}
	addCampaignsFlag(cmd, &cfg)
	f := cmd.Flags()
	f.String("metrics-addr", cfg.MetricsAddr, "listen address of /metrics and /healthz (empty: off)")
	f.String("sharding", cfg.Sharding, "group (pollers share customers through a Kafka consumer group) or none (exactly one poller)")
	f.String("instance-id", cfg.InstanceID, "static group member id: a restarted poller takes its shards back at once")
	f.String("start-from", cfg.StartFrom, "where a shard without a saved position starts: earliest or latest")
	cmd.AddCommand(newRedeliverCmd(a))
	return cmd
}

// runTrigger runs the poller until ctx ends.
func runTrigger(ctx context.Context, a *app, cfg trigger.Config) error {
	campaigns, err := trigger.LoadCampaigns(cfg.CampaignsDir)
	if err != nil {
		return err
	}
	seeds, stop, err := triggerSeeds(ctx, a, cfg, campaigns)
	if err != nil {
		return err
	}
	defer stop()
	conn, err := chdb.Open(ctx, a.ch, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := telemetry.NewRegistry()
	p, err := trigger.NewPoller(cfg, campaigns, component.Env{Conn: conn, Kafka: a.kafka, Seeds: seeds, Registry: reg, Log: a.log})
	if err != nil {
		return err
	}
	if err := telemetry.Serve(ctx, cfg.MetricsAddr, reg, func(ctx context.Context) error { return conn.Ping(ctx) }, a.log); err != nil {
		return err
	}
	return p.Run(ctx)
}

// needsKafka reports whether the poller talks to Kafka with this config.
func needsKafka(cfg trigger.Config, cs []*trigger.Campaign) bool {
	if cfg.Sharding == "group" {
		return true
	}
	for _, c := range cs {
		if c.Active && c.Deliver.KafkaTopic != "" {
			return true
		}
	}
	return false
}

// triggerSeeds returns the Kafka seeds when the poller needs Kafka,
// starting the embedded broker in embedded mode.
func triggerSeeds(ctx context.Context, a *app, cfg trigger.Config, cs []*trigger.Campaign) ([]string, func(), error) {
	if !needsKafka(cfg, cs) {
		return nil, func() {}, nil
	}
	seeds, stop, err := broker.Connect(ctx, a.kafka, a.log)
	if err != nil {
		return nil, func() {}, err
	}
	if a.kafka.Mode == "kafka" {
		if err := broker.EnsureTopics(ctx, seeds, a.kafka); err != nil {
			stop()
			return nil, func() {}, err
		}
	}
	return seeds, stop, nil
}

func newRedeliverCmd(a *app) *cobra.Command {
	cfg := trigger.DefaultConfig()
	var opts trigger.RedeliverOptions
	cmd := &cobra.Command{
		Use:   "redeliver",
		Short: "Send dead-lettered deliveries again, under their original webhook ids",
		Long: `redeliver reads trigger_dead_letters (deliveries that exhausted their retries
or met a destination disabled by 410 Gone) and sends each again with its
stored body and its original webhook id, through the same retry policy. A
success marks the dead letter redelivered and the ledger entry delivered.

A destination disabled by 410 stays disabled until --reenable: use it once
the endpoint is back.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{"trigger": &cfg}, campaignsFlag); err != nil {
				return err
			}
			campaigns, err := trigger.LoadCampaigns(cfg.CampaignsDir)
			if err != nil {
				return err
			}
			return a.withConn(cmd, func(ctx context.Context, conn *chdb.Conn) error {
				var kafka *kgo.Client
				if needsKafka(trigger.Config{Config: shares.Config{Sharding: "none"}}, campaigns) && !opts.DryRun {
					if a.kafka.Mode == "embedded" {
						// An operator tool talks to the broker of the running
						// `tideline dev`, never to an empty one of its own.
						a.kafka.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", a.kafka.EmbeddedPort)}
					}
					kafka, err = kgo.NewClient(append(broker.ClientOpts(a.kafka.Brokers, a.log), kgo.RequiredAcks(kgo.AllISRAcks()))...)
					if err != nil {
						return fmt.Errorf("kafka producer: %w", err)
					}
					defer kafka.Close()
				}
				res, err := trigger.Redeliver(ctx, conn, campaigns, cfg, kafka, a.kafka.TopicPrefix, opts, a.log)
				for _, d := range res.Reenabled {
					fmt.Printf("re-enabled %s\n", d)
				}
				for _, d := range res.Disabled {
					fmt.Printf("still disabled (pass --reenable once the endpoint is back): %s\n", d)
				}
				if err != nil {
					return err
				}
				verb := "redelivered"
				if opts.DryRun {
					verb = "would redeliver"
				}
				fmt.Printf("%s: %d selected, %d delivered, %d failed (still dead), %d suppressed (not sent), %d of campaigns no longer defined\n",
					verb, res.Selected, res.Delivered, res.Failed, res.Suppressed, res.Unknown)
				if res.Failed > 0 {
					return errSilent
				}
				return nil
			})
		},
	}
	addCampaignsFlag(cmd, &cfg)
	f := cmd.Flags()
	f.StringVar(&opts.Campaign, "campaign", "", "only this campaign's dead letters")
	f.StringSliceVar(&opts.Keys, "key", nil, "only these webhook ids (repeatable)")
	f.BoolVar(&opts.Reenable, "reenable", false, "re-enable destinations disabled by 410 Gone first")
	f.BoolVar(&opts.DryRun, "dry-run", false, "count what would be sent and change nothing")
	return cmd
}

func newCampaignsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "campaigns",
		Short: "Validate, list, explain and apply campaign definitions",
		Long: `campaigns works on the YAML definitions in trigger.campaigns_dir (--campaigns):

  tideline campaigns validate [PATH]   check definitions: errors name file, line and field
  tideline campaigns list              one line per campaign
  tideline campaigns explain ID        what the poller reads, decides and sends for it
  tideline campaigns apply             record the definitions in the campaigns table
                                       (the poller also does this when it starts)`,
	}
	cmd.AddCommand(newCampaignsValidateCmd(a), newCampaignsListCmd(a), newCampaignsExplainCmd(a), newCampaignsApplyCmd(a))
	return cmd
}

// loadCampaignsCmd loads the config and the definitions (from path when given).
func loadCampaignsCmd(a *app, cmd *cobra.Command, cfg *trigger.Config, path string) ([]*trigger.Campaign, error) {
	if err := a.load(cmd, config.Sections{"trigger": cfg}, campaignsFlag); err != nil {
		return nil, err
	}
	if path == "" {
		path = cfg.CampaignsDir
	}
	return trigger.LoadCampaigns(path)
}

func newCampaignsValidateCmd(a *app) *cobra.Command {
	cfg := trigger.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check campaign definitions (a folder or one file)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ""
			if len(args) == 1 {
				path = args[0]
			}
			cs, err := loadCampaignsCmd(a, cmd, &cfg, path)
			if err != nil {
				var de *trigger.DefinitionError
				if errors.As(err, &de) {
					fmt.Fprintln(os.Stderr, err)
					return errSilent
				}
				return err
			}
			for _, w := range trigger.Warnings(cs, os.Getenv) {
				fmt.Fprintln(os.Stderr, "warning:", w)
			}
			fmt.Printf("%d campaign definitions are valid\n", len(cs))
			return nil
		},
	}
	addCampaignsFlag(cmd, &cfg)
	return cmd
}

func newCampaignsListCmd(a *app) *cobra.Command {
	cfg := trigger.DefaultConfig()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the campaigns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := loadCampaignsCmd(a, cmd, &cfg, "")
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(campaignRows(cs))
			}
			return trigger.List(os.Stdout, cs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addCampaignsFlag(cmd, &cfg)
	return cmd
}

func newCampaignsExplainCmd(a *app) *cobra.Command {
	cfg := trigger.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "explain ID",
		Short: "Explain what the poller reads, decides and sends for a campaign",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := loadCampaignsCmd(a, cmd, &cfg, "")
			if err != nil {
				return err
			}
			c, err := trigger.FindCampaign(cs, args[0])
			if err != nil {
				return err
			}
			return trigger.Explain(os.Stdout, c, cfg, a.kafka.TopicPrefix)
		},
	}
	addCampaignsFlag(cmd, &cfg)
	return cmd
}

func newCampaignsApplyCmd(a *app) *cobra.Command {
	cfg := trigger.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Record the campaign definitions in the campaigns table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := loadCampaignsCmd(a, cmd, &cfg, "")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			conn, err := chdb.Open(ctx, a.ch, false)
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := trigger.ApplyCampaigns(ctx, conn, cs); err != nil {
				return err
			}
			fmt.Printf("%d campaign definitions applied to %s.campaigns\n", len(cs), a.ch.Database)
			return nil
		},
	}
	addCampaignsFlag(cmd, &cfg)
	return cmd
}

// campaignRow is one campaign in `campaigns list --json`.
type campaignRow struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	Trigger   string `json:"trigger"`
	Audience  string `json:"audience,omitempty"`
	Event     string `json:"event,omitempty"`
	Staleness string `json:"staleness"`
	File      string `json:"file"`
	Version   string `json:"version"`
}

func campaignRows(cs []*trigger.Campaign) []campaignRow {
	out := make([]campaignRow, 0, len(cs))
	for _, c := range cs {
		out = append(out, campaignRow{ID: c.ID, Name: c.Name, Active: c.Active, Trigger: string(c.Trigger.Kind),
			Audience: c.Trigger.Audience, Event: c.Trigger.Event.Name, Staleness: c.Staleness.String(), File: c.File, Version: c.Version})
	}
	return out
}
