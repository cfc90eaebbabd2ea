package materialize

import (
	"context"
	"fmt"
	"slices"

	"github.com/tideline-dev/tideline/internal/shares"
)

// Join makes the evaluator a member of the evaluators' consumer group when
// materialize.sharding is "group": from then on each pass evaluates, and
// writes the memberships and transitions of, only the customers of the
// shards the group gives it, a customer belonging to the shard of its
// resolved id (a linked anonymous id goes with its user). Each shard keeps
// its own position, saved when the shard is revoked, so the next owner
// continues where this one stopped; a pass holds its shards, so a shard
// never changes owner in the middle of one. Run joins by itself; Join is
// for callers that drive EvaluateOnce. It is a no-op with sharding "none"
// or when already joined.
func (e *Evaluator) Join(ctx context.Context) error {
	if e.cfg.Sharding != "group" || e.own != nil {
		return nil
	}
	if len(e.env.Seeds) == 0 {
		return fmt.Errorf("materialize.sharding is group but no Kafka brokers were given: the evaluators share customers through a consumer group")
	}
	own := shares.New(e.cfg.Shards, "evaluator shards")
	own.OnRevoke = func(ctx context.Context, revoked []int32) {
		// The pass that last ran holds the position of every shard it
		// owned; revoked ones must carry it to their next owner.
		if e.state == nil {
			return
		}
		var keys []string
		for _, s := range revoked {
			if slices.Contains(e.stateShards, s) {
				keys = append(keys, e.cfg.shardKey(s))
			}
		}
		if len(keys) == 0 {
			return
		}
		if err := e.saveState(ctx, e.state, keys); err != nil {
			e.log.Warn("save the positions of revoked evaluator shards", "shards", revoked, "err", err)
		}
	}
	if err := own.Join(ctx, e.cfg.Config, e.env.Seeds, e.env.Kafka, e.log); err != nil {
		return err
	}
	e.own = own
	return nil
}

// Leave leaves the evaluators' group, handing this evaluator's shards to
// the others at once (a no-op when not joined).
func (e *Evaluator) Leave() {
	if e.own != nil {
		e.own.Close()
		e.own = nil
	}
}

// shardKey is the evaluator_state key of one shard's position.
func (c Config) shardKey(s int32) string {
	return fmt.Sprintf("%s_shard%d_of%d", c.EvaluatorID, s, c.Shards)
}

// keysOf are the evaluator_state keys of a pass over shards: one per
// shard, or the evaluator id itself when not sharded (shards nil).
func (c Config) keysOf(owned []int32) []string {
	if owned == nil {
		return []string{c.EvaluatorID}
	}
	keys := make([]string, len(owned))
	for i, s := range owned {
		keys[i] = c.shardKey(s)
	}
	return keys
}

// positionKeys are the evaluator_state keys of every customer's position:
// every shard's with sharding "group", else the evaluator id. An evaluator
// that evaluates every customer while the others share them (backfill's
// re-derive, a preview) starts from the merge of every shard's position.
func (c Config) positionKeys() []string {
	if c.Sharding != "group" {
		return c.keysOf(nil)
	}
	all := make([]int32, c.Shards)
	for i := range all {
		all[i] = int32(i)
	}
	return c.keysOf(all)
}

// takeShards makes the next pass start from the positions of owned when
// they are not the shards the current position covers: it saves the
// current position for the shards kept, then drops it, so the pass loads
// and merges the positions of all of owned. The ownership lock is held.
func (e *Evaluator) takeShards(ctx context.Context, owned []int32) error {
	gained := e.own.TakeGained()
	if e.state != nil && len(gained) == 0 && slices.Equal(owned, e.stateShards) {
		return nil
	}
	if e.state != nil {
		var kept []int32
		for _, s := range e.stateShards {
			if slices.Contains(owned, s) {
				kept = append(kept, s)
			}
		}
		if len(kept) > 0 {
			if err := e.saveState(ctx, e.state, e.cfg.keysOf(kept)); err != nil {
				e.own.Regain(gained)
				return err
			}
		}
	}
	if len(gained) > 0 {
		e.log.Info("evaluator shards taken over", "gained", gained, "owned", owned)
	}
	e.state = nil
	return nil
}

// doesChores reports whether this evaluator does the work that is not
// per customer (recording completeness, dropping old touch partitions):
// the owner of shard 0, or the only evaluator.
func (e *Evaluator) doesChores() bool {
	return e.own == nil || e.own.Snapshot()[0]
}

// keep drops the customers owns rejects, and the retired anonymous ids
// whose users it rejects.
func (r *resolution) keep(owns func(customer string) bool) {
	for c := range r.members {
		if !owns(c) {
			delete(r.members, c)
		}
	}
	for id := range r.retired {
		owner := id
		if l, ok := r.linked[id]; ok {
			owner = l.user
		}
		if !owns(owner) {
			delete(r.retired, id)
		}
	}
}
