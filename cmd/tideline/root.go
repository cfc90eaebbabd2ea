package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/confirm"
	"github.com/tideline-dev/tideline/internal/telemetry"
)

// subcommands lists the constructors of every subcommand; each file adds its own.
var subcommands []func(*app) *cobra.Command

// app carries what every subcommand shares: global flags, the config
// sections and the logger.
type app struct {
	configPath string
	logLevel   string
	logJSON    bool
	metrics    string

	ch    chdb.Config
	kafka broker.Config
	log   *slog.Logger
}

func newRoot() *cobra.Command {
	a := &app{ch: chdb.DefaultConfig(), kafka: broker.DefaultConfig()}
	root := &cobra.Command{
		Use:   "tideline",
		Short: "Stream SQL analytics and backfill for customer engagement",
		Long: `tideline streams events through Kafka into ClickHouse, keeps every customer's
latest attributes and audience membership current, fires campaigns when a
customer qualifies, and reconciles what a processing delay made late.

Start here:
  make dev                     run everything locally with a demo workload
  tideline migrate             apply the ClickHouse schema
  tideline collect             serve the HTTP tracking API (/v1/track, /v1/batch, ...)
  tideline ingest              load Kafka lanes into ClickHouse

Settings come from flags, then TIDELINE_* environment variables, then the
YAML file given by --config (or TIDELINE_CONFIG), then defaults. The README
lists every setting.

Exit codes: 0 ok, 1 failure, 2 usage error (a wrong flag, argument or
setting: nothing ran), 3 backfill plan found something to do.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Only --version runs the root itself; anything else is a
		// subcommand, and an unknown one is a usage error.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				if err := a.load(cmd, nil); err != nil {
					return err
				}
				return writeVersion(cmd.Context(), cmd.OutOrStdout(), a, false)
			}
			return cmd.Help()
		},
	}
	root.Flags().Bool("version", false, "print the version of tideline and of the ClickHouse and Kafka it talks to")
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", os.Getenv("TIDELINE_CONFIG"), "YAML config file (env TIDELINE_CONFIG)")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.BoolVar(&a.logJSON, "log-json", !term.IsTerminal(int(os.Stderr.Fd())), "log JSON lines (default when stderr is not a terminal)")
	pf.String("clickhouse-addr", a.ch.Addr, "ClickHouse native protocol host:port")
	pf.String("clickhouse-database", a.ch.Database, "ClickHouse database")
	pf.String("clickhouse-user", a.ch.User, "ClickHouse user")
	pf.String("broker", a.kafka.Mode, `Kafka to use: "embedded" (in-process kfake) or "kafka"`)
	pf.StringSlice("brokers", a.kafka.Brokers, "Kafka seed brokers (with --broker kafka)")
	for _, sub := range subcommands {
		root.AddCommand(sub(a))
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	markUsage(root)
	return root
}

// globalFlags binds the root's persistent flags to config keys.
var globalFlags = []config.Flag{
	{Name: "clickhouse-addr", Key: "clickhouse.addr"},
	{Name: "clickhouse-database", Key: "clickhouse.database"},
	{Name: "clickhouse-user", Key: "clickhouse.user"},
	{Name: "broker", Key: "kafka.mode"},
	{Name: "brokers", Key: "kafka.brokers"},
}

// load fills the shared sections and the command's own, validates the
// shared ones, and builds the logger.
func (a *app) load(cmd *cobra.Command, own config.Sections, ownFlags ...config.Flag) error {
	sections := config.Sections{"clickhouse": &a.ch, "kafka": &a.kafka}
	for k, v := range own {
		sections[k] = v
	}
	if err := config.Load(a.configPath, cmd.Flags(), append(globalFlags, ownFlags...), sections); err != nil {
		return usage(err)
	}
	// The file may hold every command's sections: check all of its keys.
	if err := config.CheckFile(a.configPath, sectionDefaults(&app{ch: chdb.DefaultConfig(), kafka: broker.DefaultConfig()})); err != nil {
		return usage(err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usage(errors.New("--log-level: want debug, info, warn or error"))
	}
	a.log = telemetry.Logger(os.Stderr, level, a.logJSON)
	if err := errors.Join(a.ch.Validate(), a.kafka.Validate()); err != nil {
		return usage(err)
	}
	// Every Kafka client of every command dials with the configured TLS
	// and SASL from here on.
	return broker.Secure(a.kafka)
}

// progress shows long operations: bars with rate and ETA on a terminal,
// structured progress lines in the log otherwise.
func (a *app) progress(what string) backfill.Progress {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return backfill.TerminalProgress{W: os.Stderr}
	}
	return backfill.LogProgress{Log: a.log, Interval: 2 * time.Second, Msg: what + " progress"}
}

// terminalAsk puts yes/no questions to the operator on the terminal; nil
// when stdin is not a terminal, so a confirmation refuses instead of
// waiting for an answer that never comes.
func terminalAsk() func(string) bool {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil
	}
	return func(q string) bool { return confirm.Terminal(os.Stdin, os.Stderr, q) }
}

// withConn runs fn with the command's context and a connection to the
// configured ClickHouse, closed when fn returns.
func (a *app) withConn(cmd *cobra.Command, fn func(context.Context, *chdb.Conn) error) error {
	ctx := cmd.Context()
	conn, err := chdb.Open(ctx, a.ch, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ctx, conn)
}
