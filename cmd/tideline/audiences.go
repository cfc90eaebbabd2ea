package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/confirm"
	"github.com/tideline-dev/tideline/internal/telemetry"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
)

func init() {
	subcommands = append(subcommands, newAudiencesCmd, newEvaluateCmd)
	extraSections["materialize"] = func() any { c := materialize.DefaultConfig(); return &c }
}

func newAudiencesCmd(a *app) *cobra.Command {
	mc := materialize.DefaultConfig()
	trg := trigger.DefaultConfig()
	load := func(cmd *cobra.Command, flags ...config.Flag) error {
		if err := a.load(cmd, config.Sections{"materialize": &mc, "trigger": &trg}, append(flags, config.Flag{Name: "dir", Key: "materialize.audiences_dir"})...); err != nil {
			return err
		}
		return mc.Validate()
	}
	// impactFlags are the flags of the commands that preview the impact on
	// campaigns.
	impactFlags := []config.Flag{campaignsDirFlag}
	// plan compiles the local definitions, printing every problem.
	plan := func() (*materialize.Plan, error) {
		p, err := materialize.LoadPlan(mc)
		var des materialize.DefinitionErrors
		if errors.As(err, &des) {
			for _, e := range des {
				fmt.Fprintln(os.Stderr, e)
			}
			fmt.Fprintf(os.Stderr, "%d problem(s) in %s\n", len(des), mc.AudiencesDir)
			return nil, errSilent
		}
		return p, err
	}
	cmd := &cobra.Command{
		Use:   "audiences",
		Short: "Validate, apply, list and explain audience definitions",
		Long: `Audiences are YAML files in materialize.audiences_dir (default
materialize/audiences), one audience each:

  id: gold_repeat_buyers
  name: Gold plan, 2+ purchases in 7 days
  when:
    all:
      - attribute: plan
        equals: gold
      - performed: purchase
        at_least: 2
        within: 7d

Conditions: attribute (equals, not_equals, in, not_in, lt, lte, gt, gte,
exists), performed / not_performed (type track|page, where: property
filters, within: a window such as 30m, 12h, 7d, at_least / at_most, or
sum: a numeric property with at_least / at_most), nested with all, any and not.

validate checks the files, explain prints the SQL an audience compiles to,
apply installs the views it needs (backfilled from the events already
loaded) and records it for the evaluator, list shows what is applied.`,
	}
	cmd.PersistentFlags().String("dir", mc.AudiencesDir, "folder of audience definitions (materialize.audiences_dir)")

	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check every definition; errors name the file, line, column and field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := load(cmd); err != nil {
				return err
			}
			p, err := plan()
			if err != nil {
				return err
			}
			ids := make([]string, len(p.Audiences))
			for i, c := range p.Audiences {
				ids[i] = c.Audience.ID
			}
			fmt.Printf("%d audiences valid in %s: %s\n", len(ids), mc.AudiencesDir, strings.Join(ids, ", "))
			return nil
		},
	})

	var views bool
	explain := &cobra.Command{
		Use:   "explain ID | --views",
		Short: "Print the condition, view SQL and evaluation query an audience compiles to",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := load(cmd); err != nil {
				return err
			}
			if len(args) == 0 && !views {
				return errors.New("name an audience (tideline audiences list shows them), or give --views")
			}
			p, err := plan()
			if err != nil {
				return err
			}
			if views {
				fmt.Print(p.ViewsSQL())
				return nil
			}
			text, err := p.Explain(args[0])
			if errors.Is(err, materialize.ErrUnknownAudience) {
				var ids []string
				for _, c := range p.Audiences {
					ids = append(ids, c.Audience.ID)
				}
				return fmt.Errorf("no audience %q in %s; defined: %s", args[0], mc.AudiencesDir, strings.Join(ids, ", "))
			}
			if err != nil {
				return err
			}
			fmt.Print(text)
			printDerivedLanes(cmd.Context(), a, args[0])
			return nil
		},
	}
	explain.Flags().BoolVar(&views, "views", false, "print the two views apply maintains for all definitions (attributes, signals)")
	cmd.AddCommand(explain)

	var (
		yes       bool
		applyJSON bool
	)
	applyCmd := &cobra.Command{
		Use:   "apply",
		Short: "Install the definitions: create and backfill their views, record them for the evaluator",
		Long: `apply installs the definitions in --dir: it creates the views their
attributes and signals need (backfilled from the events already loaded) and
records them, so the evaluator's next pass re-evaluates every customer.

First it previews every new or changed audience (as tideline audiences
preview does) and prints what the pass after apply would change and send.
When the campaigns in --campaigns would send more than
materialize.confirm_above messages at once, it asks for confirmation
(--yes to skip; off a terminal it refuses instead).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := load(cmd, append(impactFlags, config.Flag{Name: "confirm-above", Key: "materialize.confirm_above"})...); err != nil {
				return err
			}
			p, err := plan()
			if err != nil {
				return err
			}
			return a.withConn(cmd, func(ctx context.Context, conn *chdb.Conn) error {
				reports, err := applyImpact(ctx, a, conn, mc, trg, p)
				if err != nil {
					return err
				}
				sends := 0
				for _, r := range reports {
					sends += r.Sends
				}
				if !applyJSON {
					for _, r := range reports {
						printAudienceReport(os.Stdout, r, false)
						fmt.Println()
					}
				}
				gate := confirm.Gate{Above: mc.ConfirmAbove, Setting: "materialize.confirm_above", Yes: yes, Ask: terminalAsk()}
				if err := gate.Check(int64(sends), "this apply"); err != nil {
					return err
				}
				rep, err := materialize.Apply(ctx, conn, p, mc.ApplySettle, a.log)
				if err != nil {
					return err
				}
				if applyJSON {
					return writeJSON(struct {
						*materialize.ApplyReport
						Previews []*trigger.AudienceReport `json:"previews"`
						Sends    int                       `json:"sends"`
					}{rep, reports, sends})
				}
				printApply(rep)
				return nil
			})
		},
	}
	af := applyCmd.Flags()
	af.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	af.BoolVar(&applyJSON, "json", false, "print what was applied and the previews as JSON")
	af.Int("confirm-above", mc.ConfirmAbove, "ask before sending more than this many campaign messages (materialize.confirm_above)")
	af.String("campaigns", trg.CampaignsDir, "folder of campaign definitions, as the poller uses (trigger.campaigns_dir)")
	cmd.AddCommand(applyCmd)

	var (
		sample      int
		previewJSON bool
	)
	preview := &cobra.Command{
		Use:   "preview FILE",
		Short: "Show what applying one audience definition would do now: size, members, lanes, campaign sends",
		Long: `preview evaluates the audience in FILE, applied or not, as the evaluator's
pass right after apply would: as of the current lane watermarks, over every
known customer, against the current memberships, with the evaluator's own
code. Attributes and signals apply has not backfilled yet are computed from
the events loaded, as apply's backfill computes them. Nothing is written.

It prints the size after apply, the entries and exits, a sample of the
entering customers with the attribute values and counts that qualify them
and the event that did, the entries by lane, and, for every campaign in
--campaigns that triggers on the audience, what the poller would decide for
those transitions now: sends, late sends, quiet-hour deferrals and skips by
reason (stale, capped, suppressed, ...), on the ledger's current facts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := load(cmd, impactFlags...); err != nil {
				return err
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return usage(fmt.Errorf("read the audience definition: %w", err))
			}
			aud, err := materialize.ParseAudience(args[0], src)
			var des materialize.DefinitionErrors
			if errors.As(err, &des) {
				for _, e := range des {
					fmt.Fprintln(os.Stderr, e)
				}
				return errSilent
			}
			if err != nil {
				return err
			}
			return a.withConn(cmd, func(ctx context.Context, conn *chdb.Conn) error {
				campaigns, err := loadCampaigns(a, trg.CampaignsDir, "the impact on campaigns is not previewed")
				if err != nil {
					return err
				}
				r, err := trigger.PreviewAudience(ctx, conn, mc, aud, sample, campaigns, trg.WatermarkLanes, a.log)
				if err != nil {
					return err
				}
				if previewJSON {
					return writeJSON(r)
				}
				printAudienceReport(os.Stdout, r, true)
				return nil
			})
		},
	}
	pf := preview.Flags()
	pf.IntVar(&sample, "sample", 10, "how many entering customers to show with what qualifies them")
	pf.BoolVar(&previewJSON, "json", false, "print JSON")
	pf.String("campaigns", trg.CampaignsDir, "folder of campaign definitions, as the poller uses (trigger.campaigns_dir)")
	cmd.AddCommand(preview)

	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "Show the applied audiences, their sizes, and how the local definitions differ",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := load(cmd); err != nil {
				return err
			}
			return a.withConn(cmd, func(ctx context.Context, conn *chdb.Conn) error {
				applied, err := materialize.ListApplied(ctx, conn)
				if err != nil {
					return err
				}
				sizes, err := materialize.AudienceSizes(ctx, conn)
				if err != nil {
					return err
				}
				local := map[string]string{}
				localErr := ""
				if p, err := materialize.LoadPlan(mc); err == nil {
					for _, c := range p.Audiences {
						local[c.Audience.ID] = c.Version
					}
				} else {
					localErr = err.Error()
				}
				complete, err := materialize.ReadCompleteness(ctx, conn)
				if err != nil {
					return err
				}
				if listJSON {
					return printListJSON(applied, sizes, complete, local, localErr)
				}
				printList(applied, sizes, complete, local, localErr)
				return nil
			})
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

// printListJSON is printList as JSON: one object per audience, applied or local.
func printListJSON(applied []materialize.AppliedAudience, sizes map[string]uint64, complete map[string]materialize.AudienceCompleteness, local map[string]string, localErr string) error {
	type row struct {
		ID           string  `json:"id"`
		Name         string  `json:"name,omitempty"`
		Active       bool    `json:"active"`
		Applied      bool    `json:"applied"`
		Members      *uint64 `json:"members,omitempty"`
		AppliedAt    string  `json:"applied_at,omitempty"`
		Version      string  `json:"version,omitempty"`
		LocalVersion string  `json:"local_version,omitempty"`
		// What the evaluator last recorded of its completeness.
		Lanes      []string `json:"lanes,omitempty"`
		Direction  string   `json:"direction,omitempty"`
		CompleteTo string   `json:"complete_to,omitempty"`
		HeldBy     string   `json:"held_by,omitempty"`
	}
	out := struct {
		Audiences  []row  `json:"audiences"`
		LocalError string `json:"local_error,omitempty"`
	}{Audiences: []row{}, LocalError: localErr}
	seen := map[string]bool{}
	for _, a := range applied {
		seen[a.ID] = true
		r := row{ID: a.ID, Name: a.Name, Active: a.Active, Applied: true, Version: a.Version, LocalVersion: local[a.ID],
			AppliedAt: time.UnixMilli(int64(a.AppliedAtMs)).UTC().Format(time.RFC3339)}
		if a.Active {
			n := sizes[a.ID]
			r.Members = &n
		}
		if c, ok := complete[a.ID]; ok && a.Active {
			r.Lanes, r.Direction, r.HeldBy = c.Lanes, c.Direction, c.HeldBy
			r.CompleteTo = time.UnixMilli(int64(c.CompleteMs)).UTC().Format(time.RFC3339Nano)
		}
		out.Audiences = append(out.Audiences, r)
	}
	for _, id := range sortedIDs(local) {
		if !seen[id] {
			out.Audiences = append(out.Audiences, row{ID: id, LocalVersion: local[id]})
		}
	}
	return writeJSON(out)
}

// printDerivedLanes adds to explain what the evaluator last recorded of the
// audience's lanes and completeness, when ClickHouse answers: the lanes
// derived from what each lane has carried are known only there.
func printDerivedLanes(ctx context.Context, a *app, id string) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := chdb.Open(cctx, a.ch, false)
	if err != nil {
		fmt.Printf("\n-- lanes as the evaluator derived them: unknown (%v)\n", err)
		return
	}
	defer conn.Close()
	all, err := materialize.ReadCompleteness(cctx, conn)
	c, ok := all[id]
	if err != nil || !ok {
		fmt.Println("\n-- lanes as the evaluator derived them: not recorded yet (apply it, and run the evaluator)")
		return
	}
	held := "no lane is behind the freshest"
	if c.HeldBy != "" {
		held = fmt.Sprintf("held back by %s, %s behind the freshest lane", c.HeldBy, (time.Duration(c.EagerMs-c.CompleteMs) * time.Millisecond).Round(time.Second))
	}
	fmt.Printf("\n-- lanes as the evaluator derived them: %s (%s); complete to %s, %s\n",
		strings.Join(c.Lanes, ", "), c.Direction, time.UnixMilli(int64(c.CompleteMs)).UTC().Format(time.RFC3339), held)
}

// applyImpact previews every audience of p that apply would add or
// change, with its campaigns' impact, in plan order.
func applyImpact(ctx context.Context, a *app, conn *chdb.Conn, mc materialize.Config, trg trigger.Config, p *materialize.Plan) ([]*trigger.AudienceReport, error) {
	applied, err := materialize.ListApplied(ctx, conn)
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, ap := range applied {
		if ap.Active {
			have[ap.ID] = ap.Version
		}
	}
	var campaigns []*trigger.Campaign
	loaded := false
	out := []*trigger.AudienceReport{}
	for _, c := range p.Audiences {
		if v, ok := have[c.Audience.ID]; ok && v == c.Version {
			continue
		}
		if !loaded {
			if campaigns, err = loadCampaigns(a, trg.CampaignsDir, "the impact on campaigns is not previewed"); err != nil {
				return nil, err
			}
			loaded = true
		}
		r, err := trigger.PreviewAudience(ctx, conn, mc, c.Audience, 5, campaigns, trg.WatermarkLanes, a.log)
		if errors.Is(err, materialize.ErrNoWatermark) {
			// Nothing is loaded: apply changes no membership yet.
			a.log.Info("no lane watermark yet: nothing to preview", "audience", c.Audience.ID)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("preview audience %s: %w", c.Audience.ID, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// printAudienceReport prints a preview for people; full adds the sample.
func printAudienceReport(w io.Writer, r *trigger.AudienceReport, full bool) {
	state := "new (not applied)"
	switch {
	case r.Applied && r.Changed:
		state = "changed (an older version is applied)"
	case r.Applied:
		state = "applied, unchanged"
	}
	name := ""
	if r.Name != "" {
		name = " (" + r.Name + ")"
	}
	at := func(ms uint64) string { return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02 15:04:05Z") }
	fmt.Fprintf(w, "audience %s%s, version %s: %s\n", r.AudienceID, name, r.Version, state)
	held := ""
	if r.HeldBy != "" {
		held = ", held back by " + r.HeldBy
	}
	fmt.Fprintf(w, "  as of      %s (freshest lane watermark); complete to %s (lanes %s, %s%s)\n", at(r.AsOfMs), at(r.CompleteMs), strings.Join(r.Lanes, ", "), r.Direction, held)
	fmt.Fprintf(w, "  size       %d members after apply: %d enter, %d exit (%d customers evaluated)\n", r.Size, r.Entered, r.Exited, r.Evaluated)
	if len(r.FromEvents) > 0 {
		fmt.Fprintf(w, "  backfill   apply computes from events: %s\n", strings.Join(r.FromEvents, ", "))
	}
	if len(r.ByLane) > 0 {
		var parts []string
		for _, l := range sortedIDs(r.ByLane) {
			parts = append(parts, fmt.Sprintf("%s %d", l, r.ByLane[l]))
		}
		fmt.Fprintf(w, "  by lane    entries by the lane of the event that qualified them: %s\n", strings.Join(parts, ", "))
	}
	if full && len(r.Sample) > 0 {
		fmt.Fprintf(w, "\n  sample: %d of %d entering\n", len(r.Sample), r.Entered)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  CUSTOMER\tQUALIFIED AT\tLANE\tBY EVENT\tATTRIBUTES\tCOUNTS")
		for _, m := range r.Sample {
			var attrs, feats []string
			for _, k := range sortedIDs(m.Attributes) {
				attrs = append(attrs, k+"="+m.Attributes[k])
			}
			for _, k := range sortedIDs(m.Features) {
				feats = append(feats, k+": "+m.Features[k])
			}
			ev := m.Event
			if ev == "" {
				ev = "-"
			}
			if m.MessageID != "" {
				ev += " (" + m.MessageID + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.CustomerID, at(m.EventTimeMs), orDash(m.Lane), ev, orDash(strings.Join(attrs, " ")), orDash(strings.Join(feats, "; ")))
		}
		_ = tw.Flush()
	}
	if len(r.Campaigns) == 0 {
		fmt.Fprintln(w, "  campaigns  none triggers on this audience")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CAMPAIGN\tTRIGGER\tQUALIFY\tSEND NOW\tOF THEM LATE\tDEFERRED\tSKIPPED\tWAITING\tALREADY DECIDED")
	for _, c := range r.Campaigns {
		var skips []string
		for _, k := range sortedIDs(c.Skipped) {
			skips = append(skips, fmt.Sprintf("%d %s", c.Skipped[k], k))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", c.CampaignID, c.Trigger, c.Qualifications, c.Sends, c.Late, c.Deferred, orDash(strings.Join(skips, ", ")), c.Waiting, c.AlreadyDecided)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "  apply would send %d campaign messages at once\n", r.Sends)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printApply(rep *materialize.ApplyReport) {
	show := func(what string, xs []string) {
		if len(xs) > 0 {
			fmt.Printf("%-12s %s\n", what+":", strings.Join(xs, ", "))
		}
	}
	show("applied", rep.Applied)
	show("unchanged", rep.Unchanged)
	show("deactivated", rep.Deactivated)
	show("views created", rep.ViewsCreated)
	show("views dropped", rep.ViewsDropped)
	if len(rep.Applied)+len(rep.Deactivated) > 0 {
		fmt.Println("the evaluator picks the changes up on its next pass and re-evaluates every customer once")
	}
}

func printList(applied []materialize.AppliedAudience, sizes map[string]uint64, complete map[string]materialize.AudienceCompleteness, local map[string]string, localErr string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tSTATE\tMEMBERS\tCOMPLETE TO\tHELD BY\tLANES\tAPPLIED\tLOCAL DEFINITION")
	seen := map[string]bool{}
	for _, a := range applied {
		seen[a.ID] = true
		state, members := "inactive", "-"
		if a.Active {
			state, members = "active", fmt.Sprint(sizes[a.ID])
		}
		lv, ok := local[a.ID]
		status := "missing (apply deactivates it)"
		switch {
		case localErr != "":
			status = "?"
		case ok && lv == a.Version && a.Active:
			status = "same"
		case ok && !a.Active:
			status = "defined (apply re-activates it)"
		case ok:
			status = "changed (apply to use it)"
		case !a.Active:
			status = "-"
		}
		upTo, held, lanes := "-", "-", "-"
		if c, ok := complete[a.ID]; ok && a.Active {
			upTo = time.UnixMilli(int64(c.CompleteMs)).UTC().Format(time.DateTime)
			lanes = strings.Join(c.Lanes, ",") + " (" + c.Direction + ")"
			if c.HeldBy != "" {
				held = fmt.Sprintf("%s (%s behind)", c.HeldBy, (time.Duration(c.EagerMs-c.CompleteMs) * time.Millisecond).Round(time.Second))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, state, members, upTo, held, lanes, time.UnixMilli(int64(a.AppliedAtMs)).UTC().Format(time.DateTime), status)
	}
	var fresh []string
	for id := range local {
		if !seen[id] {
			fresh = append(fresh, id)
		}
	}
	sort.Strings(fresh)
	for _, id := range fresh {
		fmt.Fprintf(w, "%s\t\tnot applied\t-\t-\t-\t-\t-\tnew (apply to use it)\n", id)
	}
	_ = w.Flush()
	if localErr != "" {
		fmt.Fprintf(os.Stderr, "local definitions do not compile (tideline audiences validate):\n%s\n", localErr)
	}
}

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

func sortedIDs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
