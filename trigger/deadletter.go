package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// DeadLetter is a delivery that was given up, with what is needed to send
// it again under the same webhook id.
type DeadLetter struct {
	Key, CampaignID, CustomerID string
	DestinationID, Destination  string
	Payload                     string
	Attempts                    uint32
	LastStatus                  uint16
	LastError                   string
	// State is "dead", or "redelivered" once a redelivery succeeded.
	State     string
	DeadAtMs  uint64
	UpdatedMs uint64
}

// InsertDeadLetters records given-up deliveries. A row without a time of
// death (DeadAtMs) died now, and a row without a version (UpdatedMs) is
// versioned now, as every row the deliverer writes; rows that carry their
// times (a demonstration dataset's) keep them.
func InsertDeadLetters(ctx context.Context, conn *chdb.Conn, dls []DeadLetter) error {
	now := chdb.NowMs()
	batch, err := conn.PrepareBatch(ctx, qInsertDeadLetters)
	if err != nil {
		return fmt.Errorf("prepare dead letter insert: %w", err)
	}
	for _, dl := range dls {
		if dl.DeadAtMs == 0 {
			dl.DeadAtMs = now
		}
		if dl.UpdatedMs == 0 {
			dl.UpdatedMs = now
		}
		if err := batch.Append(dl.Key, dl.CampaignID, dl.CustomerID, dl.DestinationID, dl.Destination, dl.Payload,
			dl.Attempts, dl.LastStatus, dl.LastError, dl.State, dl.DeadAtMs, dl.UpdatedMs, time.UnixMilli(int64(dl.DeadAtMs))); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append dead letter: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d dead letters: %w", len(dls), err)
	}
	return nil
}

// deadLetters returns the deliveries currently dead (not redelivered).
func deadLetters(ctx context.Context, conn *chdb.Conn) ([]DeadLetter, error) {
	var out []DeadLetter
	err := conn.Each(ctx, qDeadLetters, nil, func(rows chdb.Rows) error {
		var dl DeadLetter
		if err := rows.Scan(&dl.Key, &dl.DestinationID, &dl.CampaignID, &dl.CustomerID, &dl.Destination, &dl.Payload,
			&dl.Attempts, &dl.LastStatus, &dl.LastError, &dl.State, &dl.DeadAtMs, &dl.UpdatedMs); err != nil {
			return err
		}
		out = append(out, dl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return out, nil
}

// disabledDestinations returns the disabled destinations and why, by id.
func disabledDestinations(ctx context.Context, conn *chdb.Conn) (map[string]string, error) {
	out := map[string]string{}
	err := conn.Each(ctx, qDisabledDestinations, nil, func(rows chdb.Rows) error {
		var (
			id, reason string
			disabled   uint8
		)
		if err := rows.Scan(&id, &disabled, &reason); err != nil {
			return err
		}
		out[id] = reason
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read disabled destinations: %w", err)
	}
	return out, nil
}

// setDestination disables or re-enables a destination.
func setDestination(ctx context.Context, conn *chdb.Conn, dest Destination, disabled bool, reason string) error {
	batch, err := conn.PrepareBatch(ctx, qInsertDestinations)
	if err != nil {
		return fmt.Errorf("prepare destination insert: %w", err)
	}
	var flag uint8
	if disabled {
		flag = 1
	}
	if err := batch.Append(dest.ID(), dest.Campaign, dest.String(), flag, reason, chdb.NowMs()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("append destination: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record destination %s: %w", dest, err)
	}
	return nil
}

// buildRoutes resolves each campaign's destinations, URL and secrets.
func buildRoutes(cs []*Campaign, cfg Config, getenv func(string) string) (map[string]*route, error) {
	out := map[string]*route{}
	var override []Secret
	if cfg.SecretOverride != "" {
		s, err := ParseSecret(cfg.SecretOverride)
		if err != nil {
			return nil, fmt.Errorf("trigger.secret_override: %w", err)
		}
		override = []Secret{s}
	}
	for _, c := range cs {
		rt := &route{c: c, dests: c.Destinations()}
		if w := c.Deliver.Webhook; w != nil {
			rt.url = w.URL
			if cfg.WebhookURLOverride != "" {
				rt.url = cfg.WebhookURLOverride
			}
			if override != nil {
				rt.secrets = override
			} else {
				secrets, err := c.Secrets(getenv)
				if err != nil {
					return nil, err
				}
				rt.secrets = secrets
			}
		}
		out[c.ID] = rt
	}
	return out, nil
}

// RedeliverOptions selects the dead letters `tideline trigger redeliver` sends.
type RedeliverOptions struct {
	// Campaign restricts to one campaign ("" for all).
	Campaign string
	// Keys restricts to some webhook ids (empty for all).
	Keys []string
	// Reenable re-enables the selected campaigns' disabled destinations first.
	Reenable bool
	// DryRun lists what would be sent and changes nothing.
	DryRun bool
}

// RedeliverResult counts what a redelivery did.
type RedeliverResult struct {
	Selected  int
	Delivered int
	Failed    int
	// Suppressed counts deliveries not sent because the customer is
	// suppressed now (their ledger entry says so; the dead letter stays).
	Suppressed int
	// Unknown counts dead letters of campaigns no longer defined: they are
	// left as they are.
	Unknown   int
	Reenabled []string
	// Disabled lists destinations still disabled (their deliveries fail
	// again until re-enabled).
	Disabled []string
}

// Redeliver sends dead-lettered deliveries again, under their original
// webhook id and with their stored body, through the same retry policy as
// the poller. A success marks the dead letter redelivered and the ledger
// entry delivered; a failure leaves it dead with the new last error.
// kafka may be nil when no selected campaign delivers to Kafka.
func Redeliver(ctx context.Context, conn *chdb.Conn, cs []*Campaign, cfg Config, kafka *kgo.Client, topicPrefix string, opts RedeliverOptions, log *slog.Logger) (RedeliverResult, error) {
	var res RedeliverResult
	all, err := deadLetters(ctx, conn)
	if err != nil {
		return res, err
	}
	wantKey := map[string]bool{}
	for _, k := range opts.Keys {
		wantKey[k] = true
	}
	byCampaign := map[string]*Campaign{}
	for _, c := range cs {
		byCampaign[c.ID] = c
	}
	var selected []DeadLetter
	for _, dl := range all {
		if opts.Campaign != "" && dl.CampaignID != opts.Campaign {
			continue
		}
		if len(wantKey) > 0 && !wantKey[dl.Key] {
			continue
		}
		if byCampaign[dl.CampaignID] == nil {
			res.Unknown++
			continue
		}
		selected = append(selected, dl)
	}
	res.Selected = len(selected)
	disabled, err := disabledDestinations(ctx, conn)
	if err != nil {
		return res, err
	}
	for _, c := range cs {
		if opts.Campaign != "" && c.ID != opts.Campaign {
			continue
		}
		for _, dest := range c.Destinations() {
			if _, dis := disabled[dest.ID()]; !dis {
				continue
			}
			if opts.Reenable && !opts.DryRun {
				if err := setDestination(ctx, conn, dest, false, "re-enabled by tideline trigger redeliver"); err != nil {
					return res, err
				}
				res.Reenabled = append(res.Reenabled, dest.String())
			} else {
				res.Disabled = append(res.Disabled, dest.String())
			}
		}
	}
	if opts.DryRun || len(selected) == 0 {
		return res, nil
	}
	routes, err := buildRoutes(cs, cfg, os.Getenv)
	if err != nil {
		return res, err
	}
	keys := make([]string, 0, len(selected))
	for _, dl := range selected {
		keys = append(keys, dl.Key)
	}
	entries, err := NewLedger(conn).ByKeys(ctx, keys)
	if err != nil {
		return res, err
	}
	var custs []string
	for _, e := range entries {
		custs = append(custs, e.CustomerID)
	}
	// A customer who unsubscribed since the delivery died is not sent to.
	supp, err := readSuppressions(ctx, conn, custs)
	if err != nil {
		return res, err
	}
	m, ctrs := newMetrics(prometheus.NewRegistry()), &counters{}
	d := newDispatcher(cfg, conn, routes, kafka, topicPrefix, m, ctrs, log)
	d.suppressed = func(customerID string) *Suppression { return supp[customerID] }
	if err := d.loadDisabled(ctx); err != nil {
		return res, err
	}
	wctx, stop := context.WithCancel(ctx)
	d.start(wctx)
	defer func() {
		stop()
		d.wait()
	}()
	type group struct {
		dests []Destination
		body  string
	}
	groups := map[string]*group{}
	var order []string
	for _, dl := range selected {
		kind, target, _ := strings.Cut(dl.Destination, ":")
		var dest *Destination
		for _, cand := range routes[dl.CampaignID].dests {
			// The campaign's current destination of the same kind: a URL
			// changed since the failure is where the delivery goes now.
			if cand.Kind == kind {
				cand := cand
				dest = &cand
			}
		}
		if dest == nil {
			log.Warn("dead letter's destination kind is no longer configured; left dead", "key", dl.Key, "destination", kind+":"+target)
			res.Failed++
			continue
		}
		g := groups[dl.Key]
		if g == nil {
			g = &group{body: dl.Payload}
			groups[dl.Key] = g
			order = append(order, dl.Key)
		}
		g.dests = append(g.dests, *dest)
	}
	var jobs []*job
	for _, key := range order {
		e := entries[key]
		if e == nil {
			log.Warn("dead letter without a ledger entry; left dead", "key", key)
			res.Failed++
			continue
		}
		g := groups[key]
		for {
			j := d.enqueueJob(e, []byte(g.body), g.dests, true)
			if j != nil {
				jobs = append(jobs, j)
				break
			}
			// The queue is full: wait for the workers.
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	for _, j := range jobs {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-j.done:
		}
		j.mu.Lock()
		switch {
		case j.outcome == StateDelivered && !j.abandoned:
			res.Delivered++
		case j.outcome == StateSuppressed:
			res.Suppressed++
		default:
			res.Failed++
		}
		j.mu.Unlock()
	}
	dctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	d.drain(dctx)
	return res, nil
}
