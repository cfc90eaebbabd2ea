// Package shares splits customers into a fixed number of shares and lets
// several processes own them through a Kafka consumer group: the shares are
// the partitions of a coordination topic, and the ones the group assigns to
// a member are that member's. Kafka's group protocol is the coordinator; a
// member that dies loses its shares at the session timeout (at once, for a
// static member that comes back). The trigger pollers and the audience
// evaluators both divide their customers this way.
package shares

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-faster/city"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
)

// Of is the share of a customer among count: ClickHouse's
// cityHash64(customer_id) % count, so a query can select a share's rows.
func Of(customerID string, count int) int32 {
	return int32(city.CH64([]byte(customerID)) % uint64(count))
}

// Config says how one kind of process (the trigger pollers, the audience
// evaluators) divides customers; each embeds it in its own section.
type Config struct {
	// Sharding is "group" (customers are split into Shards shards, owned
	// through a Kafka consumer group on the coordination topic: run any
	// number of processes) or "none" (this process owns every customer:
	// run exactly one).
	Sharding string `koanf:"sharding"`
	// Shards is the number of customer shards, the partition count of the
	// coordination topic (default 16). Changing it re-shards customers; stop
	// every process of the group first.
	Shards int `koanf:"shards"`
	// Group is the processes' consumer group.
	Group string `koanf:"group"`
	// CoordinationTopic is the topic whose partitions are the shards, under
	// the kafka topic prefix.
	CoordinationTopic string `koanf:"coordination_topic"`
	// InstanceID makes this process a static group member (KIP-345): one
	// restarted with the same id takes its shards back at once instead of
	// after the session timeout. Give each its own (default "": dynamic
	// membership).
	InstanceID string `koanf:"instance_id"`
	// SessionTimeout is how long a silent process keeps its shards
	// (default 10s).
	SessionTimeout time.Duration `koanf:"session_timeout"`
}

// Defaults are the settings of a group of processes: group sharding over
// 16 shards, a 10 s session, dynamic membership.
func Defaults(group, topic string) Config {
	return Config{Sharding: "group", Shards: 16, Group: group, CoordinationTopic: topic, SessionTimeout: 10 * time.Second}
}

// Validate says what to fix in c; section names its settings in messages
// ("trigger", "materialize"), with keys <section>.sharding, .shards,
// .group, .coordination_topic and .session_timeout.
func (c Config) Validate(section string) error {
	var errs []error
	switch c.Sharding {
	case "none":
	case "group":
		if c.Group == "" {
			errs = append(errs, fmt.Errorf("%s.group is empty: name the consumer group the processes share customers through", section))
		}
		if c.CoordinationTopic == "" {
			errs = append(errs, fmt.Errorf("%s.coordination_topic is empty", section))
		}
		if c.SessionTimeout < 6*time.Second {
			errs = append(errs, fmt.Errorf("%s.session_timeout %s is below the brokers' usual minimum of 6s", section, c.SessionTimeout))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.sharding %q: want group (any number of processes) or none (exactly one)", section, c.Sharding))
	}
	if c.Shards < 1 || c.Shards > 1024 {
		errs = append(errs, fmt.Errorf("%s.shards must be between 1 and 1024, got %d", section, c.Shards))
	}
	return errors.Join(errs...)
}

// Ownership says which shares this process owns now.
type Ownership struct {
	count int
	what  string

	// mu is held by a unit of work (a poll, a pass) while it reads, decides
	// and records, and by the rebalance callbacks: a share never changes
	// owner in the middle of one, so the previous owner's last writes are
	// made before the next owner reads.
	mu     sync.Mutex
	owned  map[int32]bool
	gained map[int32]bool
	// OnRevoke runs with the lock held before revoked shares go (to save
	// their positions). Set it before Join.
	OnRevoke func(ctx context.Context, shares []int32)

	// snapshot is what readers check without the lock (which a unit of
	// work holds for its whole length).
	snapshot atomic.Pointer[[]bool]
	client   *kgo.Client
}

// New returns an ownership of none of count shares; what names the
// shares in logs ("trigger shards").
func New(count int, what string) *Ownership {
	o := &Ownership{count: count, what: what, owned: map[int32]bool{}, gained: map[int32]bool{}}
	o.publish()
	return o
}

// Count is the number of shares.
func (o *Ownership) Count() int { return o.count }

// Lock holds the shares: no rebalance takes or gives one until Unlock.
func (o *Ownership) Lock() { o.mu.Lock() }

// Unlock lets rebalances proceed.
func (o *Ownership) Unlock() { o.mu.Unlock() }

// OwnAll makes this process the owner of every share (sharding "none").
func (o *Ownership) OwnAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range o.count {
		o.owned[int32(s)] = true
		o.gained[int32(s)] = true
	}
	o.publish()
}

// publish must be called with mu held (or before concurrent use).
func (o *Ownership) publish() {
	snap := make([]bool, o.count)
	for s := range o.owned {
		if int(s) < o.count {
			snap[s] = true
		}
	}
	o.snapshot.Store(&snap)
}

// Snapshot is which shares are owned now, by share; it needs no lock.
func (o *Ownership) Snapshot() []bool { return *o.snapshot.Load() }

// Owned is how many shares are owned now; it needs no lock.
func (o *Ownership) Owned() int {
	n := 0
	for _, mine := range o.Snapshot() {
		if mine {
			n++
		}
	}
	return n
}

// OwnsCustomer reports whether this process owns the customer's share now.
func (o *Ownership) OwnsCustomer(id string) bool {
	return o.Snapshot()[Of(id, o.count)]
}

// List returns the owned shares in order; the lock must be held.
func (o *Ownership) List() []int32 {
	out := make([]int32, 0, len(o.owned))
	for s := range o.owned {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TakeGained returns and clears the shares gained since the last call; the
// lock must be held.
func (o *Ownership) TakeGained() []int32 {
	out := make([]int32, 0, len(o.gained))
	for s := range o.gained {
		if o.owned[s] {
			out = append(out, s)
		}
	}
	o.gained = map[int32]bool{}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Regain marks shares as gained again, for a take-over that failed and is
// to be retried; the lock must be held.
func (o *Ownership) Regain(shares []int32) {
	for _, s := range shares {
		o.gained[s] = true
	}
}

// Join makes this process a member of c's consumer group; Close leaves it.
func (o *Ownership) Join(ctx context.Context, c Config, seeds []string, bc broker.Config, log *slog.Logger) error {
	topic := bc.TopicPrefix + c.CoordinationTopic
	if err := ensureTopic(ctx, seeds, topic, c.Shards, bc.ReplicationFactor); err != nil {
		return err
	}
	opts := append(broker.ClientOpts(seeds, log),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[topic]) == 0 {
				return
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, p := range m[topic] {
				o.owned[p] = true
				o.gained[p] = true
			}
			o.publish()
			log.Info(o.what+" assigned", "shards", m[topic], "owned", len(o.owned))
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			o.release(ctx, m[topic], true, log)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			o.release(ctx, m[topic], false, log)
		}),
	)
	if c.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("join group %s: %w", c.Group, err)
	}
	o.client = cl
	return nil
}

func (o *Ownership) release(ctx context.Context, shares []int32, revoked bool, log *slog.Logger) {
	if len(shares) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if revoked && o.OnRevoke != nil {
		o.OnRevoke(ctx, shares)
	}
	for _, s := range shares {
		delete(o.owned, s)
		delete(o.gained, s)
	}
	o.publish()
	log.Info(o.what+" released", "shards", shares, "revoked", revoked, "owned", len(o.owned))
}

// Close leaves the group (a no-op without one).
func (o *Ownership) Close() {
	if o.client != nil {
		o.client.Close()
	}
}

// ensureTopic creates the coordination topic with one partition per share,
// or checks that the existing one has that many.
func ensureTopic(ctx context.Context, seeds []string, topic string, count int, rf int16) error {
	cl, err := kgo.NewClient(broker.ClientOpts(seeds, nil)...)
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", seeds, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, int32(count), rf, nil, topic)
	if err != nil {
		return fmt.Errorf("create coordination topic %s on %v (is the broker up?): %w", topic, seeds, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create coordination topic %s: %w", r.Topic, r.Err)
		}
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("describe coordination topic %s: %w", topic, err)
	}
	if td, ok := details[topic]; ok && td.Err == nil && len(td.Partitions) != count {
		return fmt.Errorf("coordination topic %s has %d partitions but %d shards are configured: configure %d, or stop every member and recreate the topic",
			topic, len(td.Partitions), count, len(td.Partitions))
	}
	return nil
}
