package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
)

// ownership says which customer shards this poller owns. With sharding
// "none" it owns all of them. With "group", the shards are the partitions of
// the coordination topic, and the ones the consumer group assigns to this
// member are this poller's: Kafka's group protocol is the coordinator, and
// a member that dies loses its partitions at the session timeout (at once,
// for a static member that comes back).
type ownership struct {
	count int

	// mu is held by a poll while it reads, decides and records, and by the
	// rebalance callbacks: a shard never changes owner in the middle of a
	// poll, so the previous owner's last ledger rows are written before the
	// next owner reads the ledger.
	mu     sync.Mutex
	owned  map[int32]bool
	gained map[int32]bool
	// onRevoke runs with mu held before revoked shards go (to save their
	// positions).
	onRevoke func(ctx context.Context, shards []int32)

	// snapshot is what delivery workers check per attempt, without mu
	// (which a poll holds for its whole length).
	snapshot atomic.Pointer[[]bool]
	client   *kgo.Client
}

func newOwnership(count int) *ownership {
	o := &ownership{count: count, owned: map[int32]bool{}, gained: map[int32]bool{}}
	o.publish()
	return o
}

// ownAll makes this poller the owner of every shard (sharding "none").
func (o *ownership) ownAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range o.count {
		o.owned[int32(s)] = true
		o.gained[int32(s)] = true
	}
	o.publish()
}

// publish must be called with mu held (or before concurrent use).
func (o *ownership) publish() {
	snap := make([]bool, o.count)
	for s := range o.owned {
		if int(s) < o.count {
			snap[s] = true
		}
	}
	o.snapshot.Store(&snap)
}

// ownsCustomer reports whether this poller owns the customer's shard now.
func (o *ownership) ownsCustomer(id string) bool {
	snap := *o.snapshot.Load()
	return snap[Shard(id, o.count)]
}

// list returns the owned shards in order; mu must be held.
func (o *ownership) list() []int32 {
	out := make([]int32, 0, len(o.owned))
	for s := range o.owned {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// takeGained returns and clears the shards gained since the last call; mu
// must be held.
func (o *ownership) takeGained() []int32 {
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

// joinGroup makes this poller a member of the pollers' consumer group; the
// returned client must be closed to leave.
func (o *ownership) joinGroup(ctx context.Context, cfg Config, seeds []string, bc broker.Config, log *slog.Logger) error {
	topic := bc.TopicPrefix + cfg.CoordinationTopic
	if err := ensureCoordinationTopic(ctx, seeds, topic, cfg.Shards, bc.ReplicationFactor); err != nil {
		return err
	}
	opts := append(broker.ClientOpts(seeds, log),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, p := range m[topic] {
				o.owned[p] = true
				o.gained[p] = true
			}
			o.publish()
			log.Info("trigger shards assigned", "shards", m[topic], "owned", len(o.owned))
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			o.release(ctx, m[topic], true, log)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			o.release(ctx, m[topic], false, log)
		}),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("join trigger group %s: %w", cfg.Group, err)
	}
	o.client = cl
	return nil
}

func (o *ownership) release(ctx context.Context, shards []int32, revoked bool, log *slog.Logger) {
	if len(shards) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if revoked && o.onRevoke != nil {
		o.onRevoke(ctx, shards)
	}
	for _, s := range shards {
		delete(o.owned, s)
		delete(o.gained, s)
	}
	o.publish()
	log.Info("trigger shards released", "shards", shards, "revoked", revoked, "owned", len(o.owned))
}

func (o *ownership) close() {
	if o.client != nil {
		o.client.Close()
	}
}

// ensureCoordinationTopic creates the coordination topic with one partition
// per shard, or checks that the existing one has that many.
func ensureCoordinationTopic(ctx context.Context, seeds []string, topic string, shards int, rf int16) error {
	cl, err := kgo.NewClient(broker.ClientOpts(seeds, nil)...)
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", seeds, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, int32(shards), rf, nil, topic)
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
	if td, ok := details[topic]; ok && td.Err == nil && len(td.Partitions) != shards {
		return fmt.Errorf("coordination topic %s has %d partitions but trigger.shards is %d: set trigger.shards to %d, or stop every poller and recreate the topic",
			topic, len(td.Partitions), shards, len(td.Partitions))
	}
	return nil
}
