package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// Topic names without the configured prefix. One customer's events always
// land in one partition of one lane (records are keyed by customer), which
// keeps them ordered.
const (
	TopicWeb      = "events.web"
	TopicServer   = "events.server"
	TopicBackfill = "events.backfill"
	TopicDLQ      = "events.dlq"
	TopicFires    = "campaign.fires"
)

// Lanes in the order the loader prefers them.
var Lanes = []string{"web", "server", "backfill"}

// Topic returns the topic of a lane ("web", "server", "backfill", "dlq") or
// of "fires", with the configured prefix.
func (c Config) Topic(lane string) (string, error) {
	var t string
	switch lane {
	case "web":
		t = TopicWeb
	case "server":
		t = TopicServer
	case "backfill":
		t = TopicBackfill
	case "dlq":
		t = TopicDLQ
	case "fires":
		t = TopicFires
	default:
		return "", fmt.Errorf("unknown lane %q: want web, server, backfill or dlq", lane)
	}
	return c.TopicPrefix + t, nil
}

// MustTopic is Topic for the fixed lane names.
func (c Config) MustTopic(lane string) string {
	t, err := c.Topic(lane)
	if err != nil {
		panic(err)
	}
	return t
}

// AllTopics are the topics tideline uses.
func (c Config) AllTopics() []string {
	var out []string
	for _, l := range []string{"web", "server", "backfill", "dlq", "fires"} {
		out = append(out, c.MustTopic(l))
	}
	return out
}

// Config says which Kafka to use.
type Config struct {
	// Mode is "embedded" (franz-go's kfake in this process) or "kafka"
	// (the brokers in Brokers). Default "embedded".
	Mode string `koanf:"mode"`
	// Brokers are seed host:port pairs for Mode "kafka"
	// (default 127.0.0.1:19092, where scripts/kafka.sh listens).
	Brokers []string `koanf:"brokers"`
	// EmbeddedPort is the port the embedded broker listens on (default
	// 19192, so kcat and other processes can reach it without clashing with
	// a local Apache Kafka on 19092; 0 picks one).
	EmbeddedPort int `koanf:"embedded_port"`
	// EmbeddedDataDir keeps the embedded broker's log, offsets and groups on
	// disk, so a restarted broker continues where it stopped (default
	// .state/kafka-embedded, beside the local ClickHouse's data; "" keeps
	// them in memory, lost when the process serving the broker exits).
	EmbeddedDataDir string `koanf:"embedded_data_dir"`
	// Partitions of each lane topic when tideline creates it (default 4).
	Partitions int32 `koanf:"partitions"`
	// ReplicationFactor of topics tideline creates (default 1; -1 takes the broker's default).
	ReplicationFactor int16 `koanf:"replication_factor"`
	// TopicPrefix is put before every topic name (default ""), so several
	// deployments or test runs can share one cluster.
	TopicPrefix string `koanf:"topic_prefix"`
	// TLS to the brokers (kafka.tls.*), for Mode "kafka".
	TLS tlsconf.Config `koanf:"tls"`
	// SASL authentication (kafka.sasl.*), for Mode "kafka".
	SASL SASLConfig `koanf:"sasl"`
}

// DefaultDataDir is where the embedded broker keeps its log by default,
// relative to the working directory (the repository root for `make dev`).
const DefaultDataDir = ".state/kafka-embedded"

// DefaultConfig is the embedded broker with four partitions per lane.
func DefaultConfig() Config {
	return Config{
		Mode:              "embedded",
		Brokers:           []string{"127.0.0.1:19092"},
		EmbeddedPort:      19192,
		EmbeddedDataDir:   DefaultDataDir,
		Partitions:        4,
		ReplicationFactor: 1,
	}
}

// Validate says what to fix in c.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "embedded":
	case "kafka":
		if len(c.Brokers) == 0 {
			errs = append(errs, errors.New("kafka.brokers is empty: give host:port seeds, e.g. 127.0.0.1:19092"))
		}
		for _, b := range c.Brokers {
			if !strings.Contains(b, ":") {
				errs = append(errs, fmt.Errorf("kafka.brokers: %q has no port", b))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("kafka.mode %q: want embedded or kafka", c.Mode))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka.partitions must be at least 1, got %d", c.Partitions))
	}
	errs = append(errs, c.TLS.Validate("kafka.tls"), c.SASL.validate())
	return errors.Join(errs...)
}

// Embedded is an in-process Kafka-protocol broker.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts kfake with the lane topics created. The caller stops it with Close.
func StartEmbedded(c Config) (*Embedded, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(c.Partitions)),
		kfake.SeedTopics(c.Partitions, c.AllTopics()...),
	}
	if c.EmbeddedPort != 0 {
		opts = append(opts, kfake.Ports(c.EmbeddedPort))
	}
	if c.EmbeddedDataDir != "" {
		opts = append(opts, kfake.DataDir(c.EmbeddedDataDir))
	}
	cl, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start the embedded broker on port %d (something else listens there: stop it, or pick another port with TIDELINE_KAFKA_EMBEDDED_PORT): %w", c.EmbeddedPort, err)
	}
	return &Embedded{cluster: cl}, nil
}

// Addrs returns the broker's listen addresses.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Cluster exposes kfake for fault injection in tests.
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }

// Seeds returns the seed brokers for c, starting the embedded broker when
// c.Mode is "embedded" (so the port must be free: see Connect for sharing
// one). The returned stop func is never nil.
func Seeds(c Config) ([]string, func(), error) {
	if err := c.Validate(); err != nil {
		return nil, func() {}, err
	}
	if c.Mode == "kafka" {
		return c.Brokers, func() {}, Secure(c)
	}
	e, err := StartEmbedded(c)
	if err != nil {
		return nil, func() {}, err
	}
	return e.Addrs(), e.Close, nil
}

// ClientOpts are the options every tideline Kafka client starts from,
// with the TLS and SASL settings Secure recorded for these brokers.
func ClientOpts(seeds []string, log *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
	}
	opts = append(opts, securityFor(seeds)...)
	if log != nil {
		opts = append(opts, kgo.WithLogger(kslog{log}))
	}
	return opts
}

// EnsureTopics creates the topics tideline uses that do not exist yet.
func EnsureTopics(ctx context.Context, seeds []string, c Config) error {
	topics := c.AllTopics()
	cl, err := kgo.NewClient(ClientOpts(seeds, nil)...)
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", seeds, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, c.Partitions, c.ReplicationFactor, nil, topics...)
	if why := c.tlsRefusal(ctx, seeds, err); why != nil {
		return fmt.Errorf("connect to kafka %v over TLS (check kafka.tls): %w", seeds, why)
	}
	if err != nil {
		return fmt.Errorf("create topics %v on %v (is the broker up? scripts/kafka.sh start): %w", topics, seeds, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// kslog adapts slog to kgo's logger at warn level and above: the client's
// info logs are per-connection chatter.
type kslog struct{ l *slog.Logger }

func (k kslog) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kslog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, keyvals...)
	default:
		k.l.Warn(msg, keyvals...)
	}
}
