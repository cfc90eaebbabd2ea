package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

func init() { subcommands = append(subcommands, newReceiveCmd) }

func newReceiveCmd(a *app) *cobra.Command {
	var addr string
	var secretEnvs []string
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "A demo webhook endpoint that verifies Standard Webhooks signatures and logs what it receives",
		Long: `receive answers webhooks on --addr: a delivery signed with one of the secrets
named by --secret-env (whsec_... values) is answered 204 and counted once per
webhook id; anything else is answered 401. GET /healthz answers 200. Every
10 s it logs the counts. For the compose demo and trying campaigns locally,
not for production.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{}); err != nil {
				return err
			}
			var secrets []string
			for _, name := range secretEnvs {
				v := os.Getenv(name)
				if v == "" {
					return fmt.Errorf("--secret-env %s: the variable is empty", name)
				}
				secrets = append(secrets, v)
			}
			if len(secrets) == 0 {
				return errors.New("give at least one --secret-env")
			}
			recv, err := receiver.NewReceiver(secrets...)
			if err != nil {
				return err
			}
			log := a.log
			mux := http.NewServeMux()
			mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
			mux.Handle("/", recv)
			srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The reporter ends with ctx.
			go func() {
				t := time.NewTicker(10 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						c := recv.Counts()
						log.Info("webhooks received", "requests", c.Requests, "verified", c.Accepted,
							"distinct_ids", c.UniqueAccepted, "duplicates", c.Duplicates, "invalid", c.Invalid)
					}
				}
			}()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			log.Info("webhook receiver listening", "addr", addr, "secrets", len(secrets))
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("webhook receiver on %s: %w", addr, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8090", "listen address")
	cmd.Flags().StringSliceVar(&secretEnvs, "secret-env", nil, "environment variables holding the whsec_ secrets to accept (repeatable)")
	return cmd
}
