package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/backfill/archive"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
)

func init() { subcommands = append(subcommands, newExportCmd) }

func newExportCmd(a *app) *cobra.Command {
	var (
		from, to, out string
		lanes         []string
	)
	cmd := &cobra.Command{
		Use:   "export --from T1 --to T2 --out FILE.parquet|FILE.arrow",
		Short: "Archive the events of a window to Parquet or Arrow IPC",
		Long: `export writes one row per event received in [--from, --to) (every column
of the events table, including its original Kafka position) to a Parquet
file (.parquet, zstd) or an Arrow IPC file (.arrow). Keep archives of windows
you may need after Kafka's retention: tideline backfill apply --source FILE
restores them exactly.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{}); err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("--out is required: a .parquet or .arrow file")
			}
			if _, err := archive.KindOf(out); err != nil {
				return err
			}
			now := time.Now()
			var w backfill.Window
			var err error
			if w.From, err = backfill.ParseTime(from, now); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if w.To, err = backfill.ParseTime(to, now); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if err := w.Validate(); err != nil {
				return err
			}
			var topics []string
			for _, l := range lanes {
				t, err := a.kafka.Topic(l)
				if err != nil {
					return fmt.Errorf("--lane: %w", err)
				}
				topics = append(topics, t)
			}
			return a.withConn(cmd, func(ctx context.Context, conn *chdb.Conn) error {
				aw, err := archive.Create(out, w.From, w.To)
				if err != nil {
					return err
				}
				start := time.Now()
				bar := a.progress("export").Phase("export", "events", 0)
				n, err := archive.Export(ctx, conn, aw, w.From, w.To, topics, bar.Set)
				bar.Done()
				if err != nil {
					aw.Abort()
					return err
				}
				if err := aw.Close(); err != nil {
					return err
				}
				st, _ := os.Stat(out)
				var size int64
				if st != nil {
					size = st.Size()
				}
				fmt.Printf("wrote %d events of %s to %s (%d bytes) in %s\n", n, w, out, size, time.Since(start).Round(time.Millisecond))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "window start (inclusive; received time)")
	f.StringVar(&to, "to", "", "window end (exclusive)")
	f.StringVarP(&out, "out", "o", "", "archive file: .parquet or .arrow")
	f.StringSliceVar(&lanes, "lane", nil, "only these lanes (default all)")
	return cmd
}
