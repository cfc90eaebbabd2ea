package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/tideline-dev/tideline/grafana/links"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/backfill/drill"
	"github.com/tideline-dev/tideline/backfill/report"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

func init() {
	subcommands = append(subcommands, newBackfillCmd)
	extraSections["backfill"] = func() any { c := backfill.DefaultConfig(); return &c }
}

func newBackfillCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Reconcile an incident window: plan what is missing, apply it, see past runs",
		Long: `backfill makes the recovery from a processing incident a command.

  tideline backfill plan --from 2025-12-14T18:00:00Z --to 2025-12-14T22:30:00Z
      compares Kafka with ClickHouse for the window (exact missing offset
      ranges per partition), measures how late events were, replays raw events
      to find customers whose attributes or memberships are stale, and lists
      qualifications without a send-ledger entry with what each campaign's
      staleness policy would do. Writes a plan file and a summary; changes nothing.
  tideline backfill apply PLAN [--dry-run] [--yes]
      re-ingests the missing records through the events.backfill lane (which
      yields to live traffic), re-derives stale customers and decides the
      unledgered qualifications through the same send ledger the poller uses.
      Resumable and idempotent: a killed apply continues where it stopped, a
      second apply of the same plan changes nothing.
  tideline backfill status
      runs in progress and past runs, from the backfill_runs table.
  tideline backfill report PLAN|RUN
      an incident report with charts (HTML, and Markdown for a status page).

When Kafka's retention has deleted the window, export it beforehand
(tideline export) and pass the archive with --source.`,
	}
	cmd.AddCommand(newBackfillPlanCmd(a), newBackfillApplyCmd(a), newBackfillStatusCmd(a), newBackfillDrillCmd(a), newBackfillReportCmd(a))
	return cmd
}

// backfillFlags are the flags of the backfill section shared by plan and apply.
func backfillFlags(cmd *cobra.Command, cfg *backfill.Config) []config.Flag {
	f := cmd.Flags()
	f.String("loader-group", cfg.LoaderGroup, "the loader's consumer group prefix (loader.group)")
	f.Duration("late-after", cfg.LateAfter, "an event loaded later than this after its receipt counts as late")
	return []config.Flag{
		{Name: "loader-group", Key: "backfill.loader_group"},
		{Name: "late-after", Key: "backfill.late_after"},
	}
}

// backfillEnv is what plan and apply share once the config is loaded.
type backfillEnv struct {
	conn   *chdb.Conn
	replay *backfill.Replay
	seeds  []string
	state  backfill.StateReplayer
	qual   backfill.Qualifier
}

func (a *app) backfillEnv(ctx context.Context, needKafka bool, d *derivedSections) (*backfillEnv, error) {
	env := &backfillEnv{}
	if needKafka {
		env.seeds = a.kafka.Brokers
		if a.kafka.Mode == "embedded" {
			// An operator tool never starts its own empty broker: it talks
			// to the embedded broker of the running `tideline dev`.
			env.seeds = []string{fmt.Sprintf("127.0.0.1:%d", a.kafka.EmbeddedPort)}
			if !broker.Answers(ctx, env.seeds[0]) {
				return nil, fmt.Errorf("no embedded broker answers on %s: start `tideline dev` (or `tideline collect`) first, or use --broker kafka --brokers HOST:PORT", env.seeds[0])
			}
		}
	}
	conn, err := chdb.Open(ctx, a.ch, false)
	if err != nil {
		return nil, err
	}
	env.conn = conn
	env.replay, env.qual, err = backfillDerivation(a, conn, d)
	if err != nil {
		conn.Close()
		return nil, err
	}
	env.state = env.replay
	return env, nil
}

// close drops the replay's scratch database and closes the connection.
func (env *backfillEnv) close() {
	env.replay.Close()
	env.conn.Close()
}

// campaignsDirFlag binds --campaigns as the poller's command does.
var campaignsDirFlag = config.Flag{Name: "campaigns", Key: "trigger.campaigns_dir"}

func commandLine() string { return strings.Join(os.Args, " ") }

func newBackfillPlanCmd(a *app) *cobra.Command {
	cfg := backfill.DefaultConfig()
	var (
		from, to, out, source string
		campaigns             []string
		asJSON                bool
		bound                 []config.Flag
		derived               = newDerivedSections()
	)
	cmd := &cobra.Command{
		Use:   "plan --from T1 --to T2",
		Short: "Find what a window is missing and write a plan (changes nothing)",
		Long: `plan compares, for the window [--from, --to) of Kafka record time (when the
collector received each event), per lane and partition: the Kafka offsets of
the window (offsets-for-times) with the offsets ClickHouse holds, as exact
missing ranges; how late the loaded events were; each customer's
materialized attributes and memberships with a replay of their raw events;
and the qualifications without a send-ledger entry, with what each campaign's
staleness policy would decide now. It writes the plan to --out and prints a
summary. Times: RFC 3339, "2025-12-14 18:58" (UTC), epoch ms, now, or -6h.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, derived.sections(config.Sections{"backfill": &cfg}), append(bound, config.Flag{Name: "lane", Key: "backfill.lanes"}, config.Flag{Name: "replay", Key: "backfill.replay"}, campaignsDirFlag)...); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			now := time.Now()
			var w backfill.Window
			var err error
			if source != "" && from == "" && to == "" {
				if w, err = backfill.ArchiveWindow(ctx, source); err != nil {
					return err
				}
			} else {
				if w.From, err = backfill.ParseTime(from, now); err != nil {
					return fmt.Errorf("--from: %w", err)
				}
				if w.To, err = backfill.ParseTime(to, now); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
			}
			derived.replayTimeout = cfg.ReplayTimeout
			env, err := a.backfillEnv(ctx, source == "", derived)
			if err != nil {
				return err
			}
			defer env.close()
			p := &backfill.Planner{Cfg: cfg, Conn: env.conn, Kafka: a.kafka, State: env.state, Qualifier: env.qual, Log: a.log,
				Source: sourceOf(source, env.seeds, a), Progress: a.progress("plan")}
			plan, err := p.Plan(ctx, backfill.PlanRequest{Window: w, Lanes: cfg.Lanes, Campaigns: campaigns, Command: commandLine()})
			if err != nil {
				return err
			}
			if out == "" {
				out = "backfill-" + plan.ID + ".json"
			}
			if err := plan.Save(out); err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(plan); err != nil {
					return err
				}
				return planExit(plan)
			}
			if err := backfill.WriteSummary(os.Stdout, plan, out); err != nil {
				return err
			}
			fmt.Printf("\nPlan written to %s\n", out)
			if cfg.GrafanaURL != "" {
				fmt.Printf("The window on the incident dashboard: %s\n", links.IncidentURL(cfg.GrafanaURL, plan.Window.From, plan.Window.To))
			}
			return planExit(plan)
		},
	}
	bound = backfillFlags(cmd, &cfg)
	f := cmd.Flags()
	cmd.Flags().String("campaigns", derived.trg.CampaignsDir, "folder of campaign definitions, as the poller uses (trigger.campaigns_dir)")
	f.StringVar(&from, "from", "", "window start (inclusive)")
	f.StringVar(&to, "to", "", "window end (exclusive)")
	f.StringSlice("lane", cfg.Lanes, "lanes to cover: web, server")
	f.String("replay", cfg.Replay, "customers to replay for stale state: window (all of the window's), affected (those with late or missing events), off")
	f.StringSliceVar(&campaigns, "campaign", nil, "only these campaigns' qualifications (default all)")
	f.StringVar(&source, "source", "", "compare with this archive (.parquet or .arrow from tideline export) instead of Kafka; its window is the default")
	f.StringVarP(&out, "out", "o", "", "plan file (default backfill-<plan id>.json)")
	f.BoolVar(&asJSON, "json", false, "print the plan as JSON instead of the summary")
	return cmd
}

func sourceOf(path string, seeds []string, a *app) backfill.Source {
	if path != "" {
		return &backfill.ArchiveSource{Path: path}
	}
	return &backfill.KafkaSource{Seeds: seeds, Log: a.log}
}

func newBackfillApplyCmd(a *app) *cobra.Command {
	cfg := backfill.DefaultConfig()
	var (
		source      string
		dryRun, yes bool
		bound       []config.Flag
		derived     = newDerivedSections()
	)
	cmd := &cobra.Command{
		Use:   "apply [PLAN]",
		Short: "Execute a plan: re-ingest, re-derive, decide unledgered qualifications",
		Long: `apply executes a plan made by backfill plan. It re-ingests the missing
records through the events.backfill lane (the loader pauses that lane while
live lanes lag; the rows keep their original Kafka position), waits until
ClickHouse holds them, re-derives the customers whose state differs, and
decides the qualifications without a ledger entry through the poller's
decision function and the shared send ledger, so nothing already decided is
sent again.

It is resumable (progress is checkpointed; after a crash or kill, run it
again) and idempotent (an apply of a plan that is done changes nothing and
says so). It refuses a window overlapping an apply still running, and asks
before sending more than backfill.confirm_above campaigns (--yes to skip; off
a terminal it refuses instead). Every apply is recorded in backfill_runs.

With --source FILE the records come from an archive made by tideline export
(for windows Kafka no longer holds); without PLAN, the archive's whole window
is planned and applied in one go.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd, derived.sections(config.Sections{"backfill": &cfg}), append(bound, campaignsDirFlag)...); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if len(args) == 0 && source == "" {
				return errors.New("give a plan file (from tideline backfill plan), or --source ARCHIVE to restore an archive")
			}
			ctx := cmd.Context()
			derived.replayTimeout = cfg.ReplayTimeout
			env, err := a.backfillEnv(ctx, true, derived)
			if err != nil {
				return err
			}
			defer env.close()
			src := sourceOf(source, env.seeds, a)
			var plan *backfill.Plan
			if len(args) == 1 {
				if plan, err = backfill.LoadPlan(args[0]); err != nil {
					return err
				}
				if source == "" && plan.Source != "kafka" {
					src = &backfill.ArchiveSource{Path: plan.Source}
				}
			} else {
				w, err := backfill.ArchiveWindow(ctx, source)
				if err != nil {
					return err
				}
				p := &backfill.Planner{Cfg: cfg, Conn: env.conn, Kafka: a.kafka, State: env.state, Qualifier: env.qual, Log: a.log, Source: src}
				if plan, err = p.Plan(ctx, backfill.PlanRequest{Window: w, Command: commandLine()}); err != nil {
					return err
				}
				if err := backfill.WriteSummary(os.Stdout, plan, ""); err != nil {
					return err
				}
				fmt.Println()
			}
			ap := &backfill.Applier{Cfg: cfg, Conn: env.conn, Kafka: a.kafka, Seeds: env.seeds, Source: src,
				State: env.state, Qualifier: env.qual, Log: a.log, Yes: yes, DryRun: dryRun, Command: commandLine(), Out: os.Stdout}
			ap.Progress = a.progress("backfill")
			ap.Confirm = terminalAsk()
			res, err := ap.Apply(ctx, plan)
			if res != nil && !dryRun {
				printApplyResult(os.Stdout, plan, res)
			}
			return err
		},
	}
	bound = append(backfillFlags(cmd, &cfg),
		config.Flag{Name: "rate", Key: "backfill.rate_limit"},
		config.Flag{Name: "confirm-above", Key: "backfill.confirm_above"},
		config.Flag{Name: "include-backlog", Key: "backfill.include_backlog"},
		config.Flag{Name: "load-timeout", Key: "backfill.load_timeout"})
	cmd.Flags().String("campaigns", derived.trg.CampaignsDir, "folder of campaign definitions, as the poller uses (trigger.campaigns_dir)")
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "re-ingest from this archive (.parquet or .arrow from tideline export) instead of Kafka")
	f.BoolVar(&dryRun, "dry-run", false, "print what apply would do now and change nothing")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.Float64("rate", cfg.RateLimit, "cap re-ingest at this many records per second (0: no cap)")
	f.Int("confirm-above", cfg.ConfirmAbove, "ask before sending more than this many campaigns")
	f.Bool("include-backlog", cfg.IncludeBacklog, "also re-ingest missing records the live loader has not reached yet")
	f.Duration("load-timeout", cfg.LoadTimeout, "give up when the backfill lane makes no progress this long")
	return cmd
}

func printApplyResult(w io.Writer, plan *backfill.Plan, res *backfill.Result) {
	if res.Noop {
		fmt.Fprintf(w, "Nothing to do: plan %s is applied (every missing record is loaded, no stale customer, no qualification without a ledger entry). Recorded as run %s.\n", plan.ID, res.Run.RunID)
		if res.Backlog > 0 {
			fmt.Fprintf(w, "%d records are still in the live loader's backlog; it will load them.\n", res.Backlog)
		}
		printQualificationNotes(w, res)
		return
	}
	state := res.Run.State
	fmt.Fprintf(w, "Apply of plan %s: %s (run %s", plan.ID, state, res.Run.RunID)
	if res.Resumed != "" {
		fmt.Fprintf(w, ", continuing run %s", res.Resumed)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "  events:    %d re-ingested, %d restored", res.Reingested, res.Restored)
	if res.Backlog > 0 {
		fmt.Fprintf(w, ", %d left to the live loader", res.Backlog)
	}
	if res.Unavailable > 0 {
		fmt.Fprintf(w, ", %d unavailable", res.Unavailable)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  customers: %d re-derived", res.Rederived)
	if res.StillDiffer > 0 {
		fmt.Fprintf(w, ", %d still differ from a replay", res.StillDiffer)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  campaigns: %d fire, %d fire late, %d skip written to the ledger; %d decided by the poller first\n",
		res.Decided["fire"], res.Decided["fire_late"], res.Decided["skip"], res.AlreadyDecided)
	printQualificationNotes(w, res)
	const exact = "2006-01-02T15:04:05.000Z07:00"
	fmt.Fprintf(w, "Check: tideline backfill plan --from %s --to %s should now find nothing to do.\n",
		plan.Window.From.UTC().Format(exact), plan.Window.To.UTC().Format(exact))
}

func newBackfillDrillCmd(a *app) *cobra.Command {
	cfg := drill.DefaultConfig()
	ld := ingest.DefaultLoaderConfig()
	derived := newDerivedSections()
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Reproduce the status page's incident locally, to rehearse plan and apply",
		Long: `drill builds a throw-away deployment in its own database (default
tideline_drill) with the embedded broker (or --broker kafka), the repo's
audiences and campaigns (webhooks go to a local receiver), a loader, the
evaluator and the poller, and replays the incident: a steady workload on
both lanes; the server lane's loader and the poller stop while events keep
arriving; a batch is lost before ClickHouse saw it; the loader resumes and
works off its backlog; the poller comes back without its positions; a share
of the outage's rows is deleted after the fact. Event times span --hours
while everything happens in seconds.

It then prints the backfill commands to run in another terminal and keeps
the pipeline running (the backfill lane needs a loader) until Ctrl-C.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, derived.sections(config.Sections{"loader": &ld}), campaignsDirFlag); err != nil {
				return err
			}
			if !cmd.Flags().Changed("clickhouse-database") && os.Getenv("TIDELINE_CLICKHOUSE_DATABASE") == "" {
				a.ch.Database = "tideline_drill"
			}
			// A drill is throw-away: its embedded broker keeps nothing on
			// disk, so it never mixes with dev's log.
			a.kafka.EmbeddedDataDir = ""
			cfg.ClickHouse, cfg.Kafka, cfg.Loader, cfg.Materialize, cfg.Trigger = a.ch, a.kafka, ld, derived.mat, derived.trg
			cfg.Out, cfg.Log = os.Stdout, a.log
			db := "--clickhouse-database " + a.ch.Database
			if a.kafka.Mode == "kafka" {
				db += " --broker kafka --brokers " + strings.Join(a.kafka.Brokers, ",")
			}
			var rep *drill.Report
			defer func() {
				if rep != nil {
					c := rep.Receiver.Counts()
					fmt.Printf("\ndrill: stopped; the local webhook receiver got %d verified deliveries under %d distinct webhook ids\n", c.Accepted, c.UniqueAccepted)
				}
			}()
			return drill.Run(cmd.Context(), cfg, func(r *drill.Report) {
				rep = r
				const exact = "2006-01-02T15:04:05.000Z07:00"
				fmt.Printf(`
drill: the incident is in place: %d events, the server lane stopped from %s to %s,
       %d records lost on the way in, %d deleted afterwards.

In another terminal, from this directory:

  tideline backfill plan %s --from %s --to %s -o drill-plan.json
  tideline backfill apply drill-plan.json %s --dry-run
  tideline backfill apply drill-plan.json %s
  tideline backfill status %s
  tideline backfill plan %s --from %s --to %s -o after.json   # finds nothing to do

The pipeline keeps running here (loaders, evaluator, poller delivering to a
local webhook receiver); Ctrl-C stops it.
`, r.Produced, r.From.UTC().Format(exact), r.To.UTC().Format(exact), r.Lost, r.Deleted,
					db, r.From.UTC().Format(exact), r.To.UTC().Format(exact), db, db, db,
					db, r.From.UTC().Format(exact), r.To.UTC().Format(exact))
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Events, "events", cfg.Events, "events to produce")
	f.IntVar(&cfg.Customers, "customers", cfg.Customers, "distinct customers")
	f.DurationVar(&cfg.Hours, "hours", cfg.Hours, "event time the workload spans, ending now")
	f.DurationVar(&cfg.Outage, "outage", cfg.Outage, "how long (wall clock) the server lane stays stopped")
	f.IntVar(&cfg.Lost, "lost", cfg.Lost, "records per server partition lost before reaching ClickHouse")
	f.IntVar(&cfg.DeleteEvery, "delete-every", cfg.DeleteEvery, "delete every n-th server row of the outage afterwards (0: none)")
	f.String("campaigns", derived.trg.CampaignsDir, "folder of campaign definitions (trigger.campaigns_dir)")
	return cmd
}

func printQualificationNotes(w io.Writer, res *backfill.Result) {
	if res.LeftToPoller > 0 {
		fmt.Fprintf(w, "  %d qualifications are ahead of the running poller's position: it decides them itself.\n", res.LeftToPoller)
	}
	if res.Waiting > 0 {
		fmt.Fprintf(w, "  %d qualifications wait until the watermarks pass the end of their unless window: apply again later to decide them.\n", res.Waiting)
	}
	if res.UnrecordedProgress > 0 {
		fmt.Fprintf(w, "  %d progress writes to backfill_runs failed (see the log): status lagged during the run; the final row is complete.\n", res.UnrecordedProgress)
	}
}

func newBackfillStatusCmd(a *app) *cobra.Command {
	cfg := backfill.DefaultConfig()
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show backfill runs in progress and past runs with their results",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{"backfill": &cfg}); err != nil {
				return err
			}
			conn, err := chdb.Open(cmd.Context(), a.ch, false)
			if err != nil {
				return err
			}
			defer conn.Close()
			runs, err := backfill.ListRuns(cmd.Context(), conn, "", limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(runs)
			}
			return backfill.WriteStatus(os.Stdout, runs, time.Now(), cfg.StaleAfter)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many runs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// derivedSections are the other components' settings the backfill reads:
// the evaluator's (to replay and re-derive state as it does) and the
// poller's (its campaigns and watermark lanes).
type derivedSections struct {
	mat materialize.Config
	trg trigger.Config
	// replayTimeout is backfill.replay_timeout.
	replayTimeout time.Duration
}

func newDerivedSections() *derivedSections {
	return &derivedSections{mat: materialize.DefaultConfig(), trg: trigger.DefaultConfig()}
}

func (d *derivedSections) sections(own config.Sections) config.Sections {
	own["materialize"] = &d.mat
	own["trigger"] = &d.trg
	return own
}

// backfillDerivation returns the replay of derived state and the
// qualification finder the backfill uses.
func backfillDerivation(a *app, conn *chdb.Conn, d *derivedSections) (*backfill.Replay, backfill.Qualifier, error) {
	replay := &backfill.Replay{Conn: conn, CH: a.ch, Materialize: d.mat, Log: a.log, Timeout: d.replayTimeout}
	campaigns, err := loadCampaigns(a, d.trg.CampaignsDir, "qualifications are not checked")
	if err != nil || campaigns == nil {
		return replay, nil, err
	}
	q := &backfill.CampaignQualifier{Conn: conn, Campaigns: campaigns, WatermarkLanes: d.trg.WatermarkLanes, Shards: d.trg.Shards, Log: a.log}
	return replay, q, nil
}

// loadCampaigns reads the campaign definitions in dir. When dir is the
// default and does not exist (a binary run outside the repository), it
// warns that without campaigns what follows (missing says what) and
// returns none.
func loadCampaigns(a *app, dir, missing string) ([]*trigger.Campaign, error) {
	campaigns, err := trigger.LoadCampaigns(dir)
	if err != nil {
		if _, statErr := os.Stat(dir); os.IsNotExist(statErr) && dir == trigger.DefaultConfig().CampaignsDir {
			a.log.Warn("no campaign definitions here: "+missing+" (set trigger.campaigns_dir)", "dir", dir)
			return nil, nil
		}
		return nil, err
	}
	return campaigns, nil
}

// planExit is errPending (exit status 3) when apply would change
// something: missing events to re-ingest, customers whose state differs
// from a replay, or qualifications the backfill would decide.
func planExit(p *backfill.Plan) error {
	_, _, missing, _, _, _ := p.Totals()
	pending := 0
	for _, q := range p.Qualifications.Pending {
		if q.Owner == backfill.OwnerBackfill {
			pending++
		}
	}
	if missing > 0 || len(p.StaleCustomers()) > 0 || pending > 0 {
		return errPending
	}
	return nil
}

func newBackfillReportCmd(a *app) *cobra.Command {
	var out string
	var lateAfter time.Duration
	cmd := &cobra.Command{
		Use:   "report PLAN|RUN",
		Short: "Write an incident report with charts for a plan file or a recorded run",
		Long: `report writes a self-contained HTML page (one file, no network) and a
Markdown version for a status page, with charts of the window: per-lane lag
and watermark age, events received vs loaded per interval, the missing
offset ranges, customers with stale state over time, pending qualifications
by decision and reason, and what each apply of the plan did. PLAN is a plan
file from 'backfill plan'; RUN is a run id from 'backfill status' (its
window and the applies of its plan). It changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd, nil); err != nil {
				return err
			}
			ctx := cmd.Context()
			src := report.Source{LateAfter: lateAfter}
			if _, err := os.Stat(args[0]); err == nil {
				plan, err := backfill.LoadPlan(args[0])
				if err != nil {
					return err
				}
				src.Plan = plan
			} else {
				src.RunID = args[0]
			}
			conn, err := chdb.Open(ctx, a.ch, false)
			if err != nil {
				return err
			}
			defer conn.Close()
			d, err := report.Gather(ctx, conn, src)
			if err != nil {
				return err
			}
			if out == "" {
				id := src.RunID
				if src.Plan != nil {
					id = src.Plan.ID
				}
				out = "report-" + id + ".html"
			}
			md, err := d.WriteFiles(out)
			if err != nil {
				return err
			}
			fmt.Printf("Report written to %s (Markdown: %s)\n", out, md)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "HTML file (default report-<plan or run id>.html; the Markdown goes beside it)")
	cmd.Flags().DurationVar(&lateAfter, "late-after", 0, "a customer is stale while an event waits longer than this (default the plan's threshold, else 1m)")
	return cmd
}
