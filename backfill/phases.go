package backfill

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// applyRun is one apply of a plan under way: its backfill_runs row, its
// result and the checkpoints it resumes from. Its phases (reingest, load,
// derive, qualify) run in order, each recorded in backfill_runs before it
// starts; finish records how the run ended.
type applyRun struct {
	a    *Applier
	plan *Plan
	td   *remaining
	cp   *checkpoints
	adm  *kadm.Client
	res  *Result

	// mu guards run, which the heartbeat saves concurrently.
	mu  sync.Mutex
	run *Run
	// unavailable are the records the source does not hold, found by the
	// reingest phase.
	unavailable map[string]map[int32]Ranges
	// unrecorded counts failed progress and heartbeat saves.
	unrecorded atomic.Int64

	stopHB context.CancelFunc
	hbDone chan struct{}
}

// phases runs the apply's phases in order and stops at the first error.
func (r *applyRun) phases(ctx context.Context) error {
	for _, ph := range []struct {
		name string
		run  func(context.Context) error
	}{
		{PhaseReingest, r.reingest},
		{PhaseLoad, r.load},
		{PhaseDerive, r.derive},
		{PhaseQualify, r.qualify},
	} {
		if err := r.enter(ctx, ph.name); err != nil {
			return err
		}
		if err := ph.run(ctx); err != nil {
			return err
		}
	}
	if r.res.Unavailable > 0 {
		return fmt.Errorf("%w: %d missing records are in neither %s nor ClickHouse; everything else was applied (give an archive that holds them with --source)", ErrUnavailable, r.res.Unavailable, r.a.Source.Name())
	}
	return nil
}

func (r *applyRun) update(f func(run *Run)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.run)
}

func (r *applyRun) save(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run.save(ctx, r.a.Conn)
}

// enter records the phase the run is in. backfill_runs is what status, the
// overlap guard and a resume read: a ClickHouse that refuses this small
// insert would refuse the phase's own work, so it ends the apply
// (resumable) instead of carrying on unrecorded.
func (r *applyRun) enter(ctx context.Context, phase string) error {
	r.update(func(run *Run) { run.Phase = phase })
	if err := r.save(ctx); err != nil {
		return fmt.Errorf("record phase %s in backfill_runs: %w", phase, err)
	}
	return nil
}

// progress records counters. A failure is logged and counted in the
// result; the next save (every heartbeat at the latest) writes them again.
func (r *applyRun) progress(ctx context.Context, what string) {
	if err := r.save(ctx); err != nil && ctx.Err() == nil {
		r.unrecorded.Add(1)
		r.a.log().Warn("record backfill "+what, "run", r.run.RunID, "err", err)
	}
}

// startHeartbeat refreshes the run row every Cfg.Heartbeat until finish
// stops it.
func (r *applyRun) startHeartbeat(ctx context.Context) {
	hbCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stopHB, r.hbDone = stop, make(chan struct{})
	go func() {
		defer close(r.hbDone)
		t := time.NewTicker(r.a.Cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				r.progress(hbCtx, "heartbeat")
			}
		}
	}()
}

// finish stops the heartbeat and records how the run ended; a failure to
// record a run that otherwise succeeded is its error.
func (r *applyRun) finish(ctx context.Context, runErr error) (*Result, error) {
	// A permanent ClickHouse error (chdb.Retryable) names its remedy in the
	// run's recorded error as well as in the returned one.
	runErr = chdb.Permanent(runErr)
	r.stopHB()
	<-r.hbDone
	r.update(func(run *Run) {
		run.FinishedAtMs = chdb.NowMs()
		state, phase, msg := endState(runErr, ctx.Err() != nil)
		run.State, run.Error = state, msg
		if phase != "" {
			run.Phase = phase
		}
	})
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.save(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("record the finished run in backfill_runs: %w", err)
	}
	r.res.UnrecordedProgress = r.unrecorded.Load()
	r.res.Run = *r.run
	return r.res, runErr
}

// endState is the state a run ends in, the phase it then shows ("" to keep
// the phase it failed in) and its error text.
func endState(runErr error, interrupted bool) (state, phase, msg string) {
	switch {
	case runErr == nil:
		return StateCompleted, PhaseDone, ""
	case interrupted:
		return StateInterrupted, "", "interrupted: " + runErr.Error()
	default:
		return StateFailed, "", runErr.Error()
	}
}

// reingest re-ingests what is missing, from where a killed apply of this
// plan stopped.
func (r *applyRun) reingest(ctx context.Context) error {
	n, unavailable, err := r.a.produce(ctx, resumeRanges(r.td.reingest, r.cp), r.cp, func(n int64) {
		// Each checkpoint also shows in backfill_runs.
		r.update(func(run *Run) { run.EventsReingested = uint64(n) })
		r.progress(ctx, "progress")
	})
	r.res.Reingested += n
	r.unavailable = unavailable
	return err
}

// resumeRanges is what is left of reingest past the checkpoints.
func resumeRanges(reingest map[string]map[int32]Ranges, cp *checkpoints) map[string]map[int32]Ranges {
	want := map[string]map[int32]Ranges{}
	for t, ps := range reingest {
		for p, rs := range ps {
			if left := rs.Clip(cp.next(t, p), 1<<62); len(left) > 0 {
				if want[t] == nil {
					want[t] = map[int32]Ranges{}
				}
				want[t][p] = left
			}
		}
	}
	return want
}

// load waits until the backfill lane loaded what was re-ingested, and
// re-ingests what did not arrive (twice at most).
func (r *applyRun) load(ctx context.Context) error {
	a, res := r.a, r.res
	left := r.td.reingest
	for attempt := 0; ; attempt++ {
		if err := a.waitLoaded(ctx, r.adm); err != nil {
			return err
		}
		var err error
		if left, err = a.stillMissing(ctx, left); err != nil {
			return err
		}
		left = subtract(left, r.unavailable)
		if countRanges(left) == 0 || attempt == 2 {
			break
		}
		a.log().Warn("re-ingested records are not in ClickHouse yet; producing them again", "records", countRanges(left), "attempt", attempt+1)
		n, more, err := a.produce(ctx, left, nil, nil)
		res.Reingested += n
		r.update(func(run *Run) { run.EventsReingested = uint64(res.Reingested) })
		if err != nil {
			return err
		}
		r.unavailable = mergeRanges(r.unavailable, more)
	}
	res.Unavailable = countRanges(r.unavailable)
	res.Backlog = r.td.backlog
	res.Restored = r.td.reingestN - countRanges(left) - res.Unavailable
	r.update(func(run *Run) { run.EventsRestored = uint64(res.Restored) })
	if n := countRanges(left); n > 0 {
		return fmt.Errorf("%w: %d records re-ingested through %s are not in ClickHouse at their original position (is `tideline ingest` running the backfill lane, and is it as new as this tideline?)", ErrNotLoaded, n, a.Kafka.MustTopic("backfill"))
	}
	return nil
}

// derive re-derives the customers whose state differs.
func (r *applyRun) derive(ctx context.Context) error {
	a, res := r.a, r.res
	if a.State == nil {
		return nil
	}
	customers, err := a.rederiveSet(ctx, r.plan, r.td)
	if err != nil {
		return err
	}
	bar := a.progress().Phase("derive", "customers", int64(len(customers)))
	// Re-deriving a customer whose state is right changes nothing, so
	// every candidate is re-derived and the replay only checks after.
	if err := a.State.Rederive(ctx, customers); err != nil {
		bar.Done()
		return fmt.Errorf("re-derive %d customers: %w", len(customers), err)
	}
	bar.Set(int64(len(customers)))
	bar.Done()
	res.Rederived = len(customers)
	r.update(func(run *Run) { run.CustomersRederive = uint64(len(customers)) })
	if len(customers) == 0 {
		return nil
	}
	after, err := a.State.Diff(ctx, customers, nil)
	if err != nil {
		return fmt.Errorf("replay customers: %w", err)
	}
	res.StillDiffer = len(customersOf(after))
	if res.StillDiffer > 0 {
		a.log().Warn("customers still differ from a replay after re-derivation", "customers", res.StillDiffer, "example", after[0])
	}
	return nil
}

// qualify decides the qualifications without a ledger entry.
func (r *applyRun) qualify(ctx context.Context) error {
	a, res := r.a, r.res
	if a.Qualifier == nil {
		return nil
	}
	all, _, err := a.Qualifier.Unledgered(ctx, r.plan.Window, r.plan.Campaigns, a.now())
	if err != nil {
		return fmt.Errorf("find unledgered qualifications: %w", err)
	}
	pending, leftToPoller, waiting := splitUnledgered(all)
	res.LeftToPoller += leftToPoller
	res.Waiting += waiting
	r.update(func(run *Run) { run.Qualifications = uint64(len(pending)) })
	bar := a.progress().Phase("qualify", "decisions", int64(len(pending)))
	defer bar.Done()
	chunk := a.Cfg.QualifyBatch
	for i := 0; i < len(pending); i += chunk {
		rr, err := a.Qualifier.Record(ctx, pending[i:min(i+chunk, len(pending))])
		if err != nil {
			return fmt.Errorf("record qualifications: %w", err)
		}
		for _, q := range rr.Created {
			res.Decided[q.Decision]++
		}
		res.AlreadyDecided += int64(len(rr.Existing))
		// The watermark can fall back below a window between preview
		// and record; those wait for the next apply.
		res.Waiting += int64(len(rr.Waiting))
		r.update(func(run *Run) {
			run.Fired, run.FiredLate, run.Skipped = uint64(res.Decided["fire"]), uint64(res.Decided["fire_late"]), uint64(res.Decided["skip"])
		})
		bar.Set(int64(min(i+chunk, len(pending))))
		r.progress(ctx, "progress")
	}
	return nil
}

// splitUnledgered sorts unledgered qualifications: those a running poller
// has yet to read are its own to decide, those of unless campaigns whose
// window the watermarks have not passed wait, the rest are pending.
func splitUnledgered(all []Qualification) (pending []Qualification, leftToPoller, waiting int64) {
	for _, q := range all {
		switch {
		case q.Owner == OwnerPoller:
			leftToPoller++
		case q.Decision == "wait":
			waiting++
		default:
			pending = append(pending, q)
		}
	}
	return pending, leftToPoller, waiting
}
