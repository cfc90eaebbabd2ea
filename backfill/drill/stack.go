package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// waitCommitted waits until the named loader committed everything its
// lanes hold: a loader commits only what ClickHouse acknowledged, so every
// view of every insert is then filled (a row count can see one view's rows
// before another's).
func (s *stack) waitCommitted(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.loaders[name]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("no loader %s", name)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ends, err := l.Ends(wctx)
	if err != nil {
		return err
	}
	left, err := l.WaitLoaded(wctx, ends)
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("the %s loader did not load its lanes within 5 minutes: %v left", name, left)
	}
	return err
}

// fires counts the ledger entries of campaign that fire.
func (s *stack) fires(ctx context.Context, campaign string) (int, error) {
	c, err := trigger.NewLedger(s.conn).Count(ctx, campaign)
	return int(c.Fired), err
}

// waitDecided waits until the campaign has a ledger entry for every entry
// into the audience: its poller decided every qualification it has seen.
func (s *stack) waitDecided(ctx context.Context, audience, campaign string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		entries, err := materialize.Entries(ctx, s.conn, audience)
		if err != nil {
			return err
		}
		c, err := trigger.NewLedger(s.conn).Count(ctx, campaign)
		if err != nil {
			return err
		}
		decided := c.Decided
		if decided >= entries {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s decided %d of the %d entries into %s within 2 minutes", campaign, decided, entries, audience)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// held is, per audience held back by a lane, the time it is complete to.
func (s *stack) held(ctx context.Context) (map[string]time.Time, error) {
	c, err := materialize.ReadCompleteness(ctx, s.conn)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for id, a := range c {
		if a.HeldBy != "" {
			out[id] = time.UnixMilli(int64(a.CompleteMs))
		}
	}
	return out, nil
}

// campaignsToReceiver records the campaigns with every webhook pointed at
// a local receiver, signed with a secret made for this run.
func (s *stack) campaignsToReceiver(ctx context.Context) (*receiver.Receiver, error) {
	campaigns, err := trigger.LoadCampaigns(s.cfg.Trigger.CampaignsDir)
	if err != nil {
		return nil, err
	}
	nudge, err := trigger.ParseCampaign("(drill) drill_browse_nudge", []byte(webOnlyCampaign))
	if err != nil {
		return nil, err
	}
	campaigns = append(campaigns, nudge)
	secret := trigger.NewSecret()
	recv, err := receiver.NewReceiver(secret.String())
	if err != nil {
		return nil, err
	}
	url, err := recv.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("local webhook receiver: %w", err)
	}
	for _, c := range campaigns {
		if c.Deliver.Webhook == nil {
			continue
		}
		c.Deliver.Webhook.URL = url + "/hooks/" + c.ID
	}
	// The run's secret signs every webhook (trigger.secret_override), not
	// the campaigns' secret_env read from the process environment.
	s.cfg.Trigger.SecretOverride = secret.String()
	if err := trigger.ApplyCampaigns(ctx, s.conn, campaigns); err != nil {
		return nil, err
	}
	s.campaigns = campaigns
	return recv, nil
}

// env is what the drill's components share; their metrics stay
// unregistered.
func (s *stack) env() pipeline.Env {
	return pipeline.Env{Conn: s.conn, Kafka: s.cfg.Kafka, Seeds: s.seeds, Log: s.cfg.Log}
}

func (s *stack) startLoader(name string, lanes ...string) {
	cfg := s.cfg.Loader
	cfg.Lanes = lanes
	cfg.MetricsAddr = ""
	l, err := pipeline.NewLoader(cfg, s.env())
	if err != nil {
		s.start(name, func(context.Context) error { return err })
		return
	}
	s.mu.Lock()
	s.loaders[name] = l
	s.mu.Unlock()
	s.start(name, l.Run)
}

// drain lets the running loaders load everything produced so far before
// they stop (bounded by loader.shutdown_timeout), and says what is left:
// the drill stops in data-flow order like dev.
func (s *stack) drain() {
	s.mu.Lock()
	var ls []*ingest.Loader
	for name, l := range s.loaders {
		if s.running[name] != nil {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Loader.ShutdownTimeout)
	defer cancel()
	for _, l := range ls {
		ends, err := l.Ends(ctx)
		if err == nil {
			var left []ingest.Backlog
			if left, err = l.WaitLoaded(ctx, ends); len(left) > 0 {
				s.cfg.Log.Warn("the drill stopped with records not loaded", "left", left)
			}
		}
		if err != nil {
			s.cfg.Log.Warn("drain the loader before stopping", "err", err)
		}
	}
}

func (s *stack) startEvaluator() error {
	ev, err := pipeline.NewEvaluator(s.cfg.Materialize, s.env())
	if err != nil {
		return err
	}
	s.start("evaluator", ev.Run)
	return nil
}

func (s *stack) startPoller(startFrom string) error {
	cfg := s.cfg.Trigger
	cfg.Sharding, cfg.StartFrom, cfg.MetricsAddr = "none", startFrom, ""
	p, err := pipeline.NewPoller(cfg, s.campaigns, s.env())
	if err != nil {
		return err
	}
	s.start("poller", p.Run)
	return nil
}

// produce writes n events as the collector would: normalised, keyed by
// customer, stamped with their receipt time (now); their event times follow
// the workload's simulated clock.
func (s *stack) produce(ctx context.Context, n int) error {
	const chunk = 5000
	for done := 0; done < n; done += chunk {
		var recs []*kgo.Record
		for i := done; i < min(n, done+chunk); i++ {
			m := s.gen.Next()
			raw, err := json.Marshal(m.Body)
			if err != nil {
				return err
			}
			ev, err := ingest.ParseMessage(raw, "", time.Time{}, time.Now(), m.Lane)
			if err != nil {
				return fmt.Errorf("generated event rejected: %w", err)
			}
			v, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			recs = append(recs, &kgo.Record{Topic: s.cfg.Kafka.MustTopic(m.Lane), Key: []byte(ev.CustomerID()), Value: v, Timestamp: ev.ReceivedAt})
		}
		if err := s.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return nil
}

// waitLoaded waits until ClickHouse holds produced-lost positions.
func (s *stack) waitLoaded(ctx context.Context, produced, lost int) error {
	want := uint64(produced - lost)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := ingest.LoadedPositions(ctx, s.conn, "1")
		if err != nil {
			return fmt.Errorf("count loaded events: %w", err)
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d events loaded after 5 minutes", n, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitEvaluated waits until the evaluator ran a pass that started after the
// last touch settled, so the backlog's transitions exist before the poller
// returns.
func (s *stack) waitEvaluated(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		done, err := materialize.CaughtUp(ctx, s.conn, s.cfg.Materialize)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("the evaluator did not catch up within 2 minutes")
}

// waitPoller waits until the poller has read every row of its feeds.
func (s *stack) waitPoller(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		done, err := trigger.CaughtUp(ctx, s.conn)
		if err != nil {
			return fmt.Errorf("read the poller's progress: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("the poller did not catch up within 2 minutes")
}

func (s *stack) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(broker.ClientOpts(s.seeds, nil)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	l, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	for p, o := range l[topic] {
		out[p] = o.Offset
	}
	return out, nil
}

// commit moves the lane's loader group to the given offsets.
func (s *stack) commit(ctx context.Context, lane string, to map[int32]int64) error {
	cl, err := kgo.NewClient(broker.ClientOpts(s.seeds, nil)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	topic := s.cfg.Kafka.MustTopic(lane)
	offs := kadm.Offsets{}
	for p, o := range to {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	group := s.cfg.Kafka.TopicPrefix + s.cfg.Loader.Group + "." + lane
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("move group %s: %w", group, err)
	}
	return nil
}
