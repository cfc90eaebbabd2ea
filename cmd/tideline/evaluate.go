package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/telemetry"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
)

func newEvaluateCmd(a *app) *cobra.Command {
	mc := materialize.DefaultConfig()
	apply := true
	cmd := &cobra.Command{
		Use:   "evaluate",
		Short: "Keep audience memberships and transitions current (the evaluator)",
		Long: `evaluate applies the audience definitions (unless --apply=false) and then,
every materialize.interval, reads the customers touched since its last
position and those whose windows the lane watermark moved, evaluates the
applied audiences for them as of the watermark, and writes an entered or
exited transition for every membership change. Its position is durable;
after a crash it repeats work, which writes nothing new. With
materialize.sharding none (the default) run one per database (or per
materialize.evaluator_id); with materialize.sharding group run any number
against an external Kafka (kafka.mode kafka): they split the customers
into materialize.shards shards through a consumer group, each evaluating
and writing only its own, and a leaving or failed evaluator's shards are
taken over from where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{"materialize": &mc},
				config.Flag{Name: "dir", Key: "materialize.audiences_dir"},
				config.Flag{Name: "interval", Key: "materialize.interval"},
				config.Flag{Name: "metrics-addr", Key: "materialize.metrics_addr"}); err != nil {
				return err
			}
			return a.withConn(cmd, func(ctx context.Context, conn *chdb.Conn) error {
				reg := telemetry.NewRegistry()
				env := component.Env{Conn: conn, Registry: reg, Log: a.log}
				if mc.Sharding == "group" {
					if a.kafka.Mode != "kafka" {
						return fmt.Errorf("materialize.sharding group: the evaluators share customers through a Kafka consumer group, which needs kafka.mode kafka (an embedded broker is one process's own); got kafka.mode %q", a.kafka.Mode)
					}
					seeds, stop, err := broker.Connect(ctx, a.kafka, a.log)
					if err != nil {
						return err
					}
					defer stop()
					env.Kafka, env.Seeds = a.kafka, seeds
				}
				ev, err := startEvaluator(ctx, a, mc, apply, env)
				if err != nil {
					return err
				}
				if err := telemetry.Serve(ctx, mc.MetricsAddr, reg, func(ctx context.Context) error { return conn.Ping(ctx) }, a.log); err != nil {
					return err
				}
				return ev.Run(ctx)
			})
		},
	}
	f := cmd.Flags()
	f.String("dir", mc.AudiencesDir, "folder of audience definitions (materialize.audiences_dir)")
	f.Duration("interval", mc.Interval, "pause between evaluation passes")
	f.String("metrics-addr", mc.MetricsAddr, "listen address of /metrics and /healthz (empty: off)")
	f.BoolVar(&apply, "apply", apply, "apply the definitions in --dir before evaluating (as `tideline audiences apply`)")
	return cmd
}

// startEvaluator applies the definitions when asked and builds the evaluator.
func startEvaluator(ctx context.Context, a *app, mc materialize.Config, apply bool, env component.Env) (*materialize.Evaluator, error) {
	conn := env.Conn
	if err := mc.Validate(); err != nil {
		return nil, err
	}
	if apply {
		p, err := materialize.LoadPlan(mc)
		if err != nil {
			return nil, err
		}
		rep, err := materialize.Apply(ctx, conn, p, mc.ApplySettle, a.log)
		if err != nil {
			return nil, err
		}
		a.log.Info("audiences applied", "applied", rep.Applied, "unchanged", len(rep.Unchanged), "deactivated", rep.Deactivated, "views_created", len(rep.ViewsCreated))
	}
	return materialize.NewEvaluator(mc, env)
}

// devEvaluator is the evaluator `tideline dev` runs, with the audience
// sizes on the status line.
func devEvaluator(ctx context.Context, a *app, mc materialize.Config, conn *chdb.Conn, reg prometheus.Registerer) (pipeline.Component, error) {
	// dev starts from an empty or demo database: nothing to wait for.
	mc.ApplySettle = 0
	// dev runs one evaluator on its own broker: it owns every customer.
	mc.Sharding = "none"
	ev, err := startEvaluator(ctx, a, mc, true, component.Env{Conn: conn, Registry: reg, Log: a.log})
	if err != nil {
		return pipeline.Component{}, err
	}
	sizes := func(ctx context.Context) []pipeline.Reading {
		s, err := materialize.AudienceSizes(ctx, conn)
		if err != nil {
			return nil
		}
		out := make([]pipeline.Reading, 0, len(s))
		for _, id := range sortedIDs(s) {
			out = append(out, pipeline.Reading{Group: "audiences", Name: id, Value: int64(s[id])})
		}
		return out
	}
	return pipeline.Component{
		Name:   "evaluator",
		Run:    ev.Run,
		Status: sizes,
		Summary: func(ctx context.Context) string {
			n, _ := materialize.Transitions(ctx, conn)
			parts := []string{}
			for _, r := range sizes(ctx) {
				parts = append(parts, fmt.Sprintf("%s=%d", r.Name, r.Value))
			}
			return fmt.Sprintf("audiences %s; %d transitions (look: %s)", strings.Join(parts, " "), n, materialize.LookMembers)
		},
	}, nil
}
