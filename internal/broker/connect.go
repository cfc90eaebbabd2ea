package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Connect returns the seed brokers for c, like Seeds, but in embedded mode
// it first looks for an embedded broker that another tideline process
// (`tideline dev`, `collect`, `ingest`, ...) already serves on
// c.EmbeddedPort, and uses it: the embedded default then works for
// components run as separate processes, the first one serving the broker
// for the others. Only when no broker answers there does it serve one in
// this process. The returned stop func is never nil.
func Connect(ctx context.Context, c Config, log *slog.Logger) ([]string, func(), error) {
	if err := c.Validate(); err != nil {
		return nil, func() {}, err
	}
	if c.Mode == "kafka" {
		return c.Brokers, func() {}, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.EmbeddedPort != 0 {
		addr := fmt.Sprintf("127.0.0.1:%d", c.EmbeddedPort)
		if Answers(ctx, addr) {
			log.Info("using the embedded broker another tideline process serves; it stops when that process stops", "addr", addr)
			return []string{addr}, func() {}, nil
		}
	}
	e, err := StartEmbedded(c)
	if err != nil {
		return nil, func() {}, err
	}
	where := "in memory: lost when this process exits"
	if c.EmbeddedDataDir != "" {
		where = "its log in " + c.EmbeddedDataDir
	}
	log.Info("serving the embedded broker in this process; other tideline processes on this machine use it while this one runs",
		"addr", e.Addrs(), "data", where)
	return e.Addrs(), e.Close, nil
}

// Answers reports whether a Kafka-protocol broker answers at addr within
// a short timeout.
func Answers(ctx context.Context, addr string) bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second), kgo.RetryTimeout(time.Second), kgo.RequestRetries(0))
	if err != nil {
		return false
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Ping(pctx) == nil
}
