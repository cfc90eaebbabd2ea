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
	// The first signal starts a command's orderly stop (dev drains what
	// it accepted); a second one ends the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRoot().ExecuteContext(ctx)
	if err != nil && !errors.Is(err, errSilent) && !errors.Is(err, errPending) {
		fmt.Fprintln(os.Stderr, "tideline:", err)
		if exitCode(err) == exitUsage {
			fmt.Fprintln(os.Stderr, "see: tideline --help, or tideline COMMAND --help")
		}
	}
	stop()
	os.Exit(exitCode(err))
}
