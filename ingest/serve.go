package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerOpts are the options of the collector's Kafka producer, added to
// the shared client options: every acknowledgement waits for all in-sync
// replicas (with franz-go's idempotent producer, the default), records
// linger briefly to batch, and a record not acknowledged within the produce
// timeout fails its request instead of waiting in the buffer.
func ProducerOpts(cfg CollectorConfig) []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.MaxBufferedBytes(256 << 20),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout),
	}
}

// shutdownGrace bounds how long in-flight requests may finish on shutdown.
const shutdownGrace = 15 * time.Second

// Serve serves the tracking API on ln (over TLS when the config names a
// certificate) until ctx ends, then lets in-flight requests finish.
func (c *Collector) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	// The server goroutine ends when Shutdown below returns.
	go func() {
		if c.cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, c.cfg.TLSCert, c.cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("collector: %w", err)
	case <-ctx.Done():
	}
	// A request in flight waits for its produce, up to the produce
	// timeout: it is answered before the collector returns.
	sctx, cancel := context.WithTimeout(context.Background(), max(shutdownGrace, c.cfg.ProduceTimeout+5*time.Second))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("collector shutdown: %w", err)
	}
	return nil
}
