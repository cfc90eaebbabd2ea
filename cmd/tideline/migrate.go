package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
	tsql "github.com/tideline-dev/tideline/sql"
)

func init() { subcommands = append(subcommands, newMigrateCmd) }

func newMigrateCmd(a *app) *cobra.Command {
	var status, asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the ClickHouse schema (idempotent)",
		Long: `migrate creates the database if needed and applies every embedded migration
not yet recorded in schema_migrations, in order. Running it again changes nothing.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{}); err != nil {
				return err
			}
			conn, err := chdb.Open(cmd.Context(), a.ch, true)
			if err != nil {
				return err
			}
			defer conn.Close()
			if status {
				v, err := tsql.Version(cmd.Context(), conn)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(map[string]any{"database": a.ch.Database, "version": v, "latest": tsql.Latest(), "clickhouse": conn.Version.String()})
				}
				fmt.Printf("database %s at version %d of %d (ClickHouse %s)\n", a.ch.Database, v, tsql.Latest(), conn.Version)
				return nil
			}
			n, err := tsql.UpWith(cmd.Context(), conn, a.log, fillProgress(a.progress("migrate")))
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(map[string]any{"database": a.ch.Database, "applied": n, "version": tsql.Latest()})
			}
			fmt.Printf("applied %d migrations; database %s is at version %d\n", n, a.ch.Database, tsql.Latest())
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "print the schema version and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// fillProgress shows a bar for each fill migration, the statements that
// copy existing data and can run for minutes; the others take milliseconds.
func fillProgress(p backfill.Progress) tsql.StepProgress {
	return func(m tsql.Migration) (func(rows, total uint64), func()) {
		if !strings.HasSuffix(m.Name, "_fill.sql") {
			return func(uint64, uint64) {}, func() {}
		}
		bar := p.Phase("migrate", "rows read by "+m.Name, 0)
		return func(rows, _ uint64) { bar.Set(int64(rows)) }, bar.Done
	}
}
