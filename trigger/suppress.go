package trigger

import (
	"context"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// suppressionSlack is how far behind the newest load stamp the poller
// reads suppressions again: a row is stamped before its insert completes,
// so one can become visible after a row stamped later.
const suppressionSlack = time.Minute

// recentSuppressions holds the suppressions written since the poller
// started (and a slack before), refreshed every poll. Fires are checked
// against ClickHouse when they are decided and when an open entry is
// picked up; this set covers what changes while a fire waits in memory
// (a throttle, a retry), so the check right before each attempt is local.
// It grows only with suppressions added while the process runs.
type recentSuppressions struct {
	mu      sync.RWMutex
	sinceMs uint64
	m       map[string]*Suppression
	last    time.Time // of the last read; only the poll loop touches it
}

// refresh reads the new suppressions, at most once a second.
func (r *recentSuppressions) refresh(ctx context.Context, conn *chdb.Conn) error {
	if time.Since(r.last) < time.Second {
		return nil
	}
	r.last = time.Now()
	r.mu.RLock()
	since := r.sinceMs
	r.mu.RUnlock()
	changes, newest, err := suppressionsSince(ctx, conn, since)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for cust, s := range changes {
		if s == nil {
			delete(r.m, cust)
			continue
		}
		r.m[cust] = s
	}
	if newest > 0 {
		r.sinceMs = max(r.sinceMs, sub(newest, ms(suppressionSlack)))
	}
	return nil
}

func (r *recentSuppressions) get(customerID string) *Suppression {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[customerID]
}

// suppressAtSend checks open entries against the suppression list before
// they are delivered, records the suppressed ones (state "suppressed", the
// reason in last_error and in send_ledger_controls) and returns the rest.
func (p *Poller) suppressAtSend(ctx context.Context, entries []*Entry) ([]*Entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	custs := map[string]bool{}
	for _, e := range entries {
		custs[e.CustomerID] = true
	}
	supp, err := readSuppressions(ctx, p.conn, keys(custs))
	if err != nil {
		return nil, err
	}
	if len(supp) == 0 {
		return entries, nil
	}
	var (
		rest, stopped []*Entry
		controls      []Control
	)
	now := chdb.NowMs()
	for _, e := range entries {
		s := supp[e.CustomerID]
		if s == nil {
			rest = append(rest, e)
			continue
		}
		n := e.next(now)
		n.DeliveryState, n.LastError = StateSuppressed, "suppressed before sending: "+s.Reason
		stopped = append(stopped, n)
		controls = append(controls, Control{Key: e.Key, CampaignID: e.CampaignID, CustomerID: e.CustomerID, Control: ReasonSuppressed, Detail: s.Reason})
	}
	if err := p.ledger.InsertControls(ctx, controls); err != nil {
		return nil, err
	}
	if err := p.ledger.Insert(ctx, stopped); err != nil {
		return nil, err
	}
	p.c.suppressed.Add(int64(len(stopped)))
	p.log.Info("fires not sent: customers suppressed since the decision", "count", len(stopped))
	return rest, nil
}
