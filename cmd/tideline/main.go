// Command tideline is the stream SQL analytics and backfill system: one
// binary whose subcommands run the collector, the loader, migrations, the
// local demo, and the operator tools. See `tideline --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "tideline:", err)
		}
		os.Exit(1)
	}
}
