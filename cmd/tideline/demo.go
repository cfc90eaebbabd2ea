package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/internal/workload"
)

func init() { subcommands = append(subcommands, newDemoCmd) }

func newDemoCmd(a *app) *cobra.Command {
	var (
		target    workload.Target
		rate      float64
		events    int64
		customers int
		seed      uint64
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Send the demo workload to a running collector",
		Long: `demo drives the same reproducible event mix as 'tideline dev' (web and
server sources, identifies and tracks, a few malformed events) through a
collector's HTTP API, e.g. the one docker-compose runs.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &workload.Driver{
				Target: target,
				Gen:    workload.New(workload.Config{Customers: customers, Seed: seed, MalformedRate: 0.005}),
				Rate:   rate,
			}
			err := d.Run(cmd.Context(), events)
			for lane, c := range d.Lanes() {
				fmt.Printf("%-7s sent=%d accepted=%d rejected=%d retried=%d\n", lane, c.Sent.Load(), c.Accepted.Load(), c.Rejected.Load(), c.Retried.Load())
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&target.URL, "target", "http://127.0.0.1:8088", "collector base URL")
	f.StringVar(&target.WebKey, "web-key", "web-demo-key", "write key of the web source")
	f.StringVar(&target.ServerKey, "server-key", "server-demo-key", "write key of the server source")
	f.Float64Var(&rate, "rate", 500, "events per second (0: as fast as the collector answers)")
	f.Int64Var(&events, "events", 0, "stop after this many events (0: until interrupted)")
	f.IntVar(&customers, "customers", 5000, "distinct customers")
	f.Uint64Var(&seed, "seed", 2, "workload seed")
	return cmd
}
