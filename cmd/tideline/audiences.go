package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/confirm"
	"github.com/tideline-dev/tideline/materialize"
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

func sortedIDs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
