package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/confirm"
)

// Applier executes plans.
type Applier struct {
	Cfg   Config
	Conn  *chdb.Conn
	Kafka broker.Config
	// Seeds are the brokers the backfill lane is produced to.
	Seeds []string
	// Source holds the missing records (Kafka, or an archive).
	Source Source
	// State and Qualifier are optional, as for the Planner.
	State     StateReplayer
	Qualifier Qualifier
	Log       *slog.Logger
	Progress  Progress
	// Confirm asks the operator a yes/no question; nil when there is no
	// terminal to ask on.
	Confirm func(question string) bool
	// Yes confirms in advance.
	Yes bool
	// DryRun reports what apply would do and changes nothing.
	DryRun bool
	// Command is recorded in backfill_runs.
	Command string
	// Out receives the dry-run report.
	Out io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Result is what an apply did.
type Result struct {
	Run Run
	// Resumed is the run this apply continued (empty for a fresh start).
	Resumed string
	// Noop is set when there was nothing left to do.
	Noop bool
	// Reingested counts records this apply produced; Restored the plan's
	// missing records now in ClickHouse that were missing when it started.
	Reingested, Restored int64
	// Backlog counts missing records left to the live loader; Unavailable
	// those neither in the source nor in ClickHouse.
	Backlog, Unavailable int64
	// Rederived counts customers re-evaluated; StillDiffer those a replay
	// still disagrees with afterwards.
	Rederived, StillDiffer int
	// Decided counts the ledger entries this apply wrote, by decision;
	// AlreadyDecided the qualifications another writer decided first.
	Decided        map[string]int64
	AlreadyDecided int64
	// Waiting counts qualifications of unless campaigns whose window the
	// watermarks have not passed: apply again later to decide them.
	Waiting int64
	// LeftToPoller counts unledgered qualifications a running poller has
	// yet to read; it decides them itself.
	LeftToPoller int64
	// UnrecordedProgress counts progress and heartbeat writes to
	// backfill_runs that failed; each later write carries the counters
	// again, so status may have lagged but the final row is whole.
	UnrecordedProgress int64
}

// remaining is what is left of a plan.
type remaining struct {
	reingest     map[string]map[int32]Ranges
	reingestN    int64
	backlog      int64
	staleNow     []string
	pending      []Qualification
	fires        int64
	planned      []string // customers the plan found stale
	alreadyFixed int64    // plan's missing records already in ClickHouse
	leftToPoller int64    // unledgered qualifications a running poller will decide
	waiting      int64    // qualifications whose unless window the watermarks have not passed
}

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Applier) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Applier) progress() Progress {
	if a.Progress == nil {
		return noProgress{}
	}
	return a.Progress
}

// Apply executes plan (or, with DryRun, says what it would do).
func (a *Applier) Apply(ctx context.Context, plan *Plan) (*Result, error) {
	if plan.Database != a.Conn.Database || plan.TopicPrefix != a.Kafka.TopicPrefix {
		return nil, fmt.Errorf("%w: it is for database %q and topic prefix %q, this is %q and %q", ErrWrongTarget, plan.Database, plan.TopicPrefix, a.Conn.Database, a.Kafka.TopicPrefix)
	}
	cl, err := kgo.NewClient(broker.ClientOpts(a.Seeds, a.Log)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", a.Seeds, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	td, err := a.assess(ctx, plan, adm)
	if err != nil {
		return nil, err
	}
	if a.DryRun {
		return a.dryRun(ctx, plan, td)
	}
	if err := a.confirm(td); err != nil {
		return nil, err
	}

	run := newRun(KindApply, plan, a.Command, a.now())
	run.State = StateRunning
	res := &Result{Decided: map[string]int64{}}
	if err := run.save(ctx, a.Conn); err != nil {
		return nil, err
	}
	if err := a.checkOverlap(ctx, run); err != nil {
		run.State, run.Error, run.FinishedAtMs = StateRefused, err.Error(), chdb.NowMs()
		if serr := run.save(context.WithoutCancel(ctx), a.Conn); serr != nil {
			return nil, errors.Join(err, fmt.Errorf("record the refusal in backfill_runs: %w", serr))
		}
		return nil, err
	}
	prior, err := runsOf(ctx, a.Conn, plan.ID)
	if err != nil {
		return nil, err
	}
	var last *Run
	for i := range prior {
		if prior[i].RunID != run.RunID {
			last = &prior[i]
			break
		}
	}
	cp := &checkpoints{planID: plan.ID, runID: run.RunID, m: map[cpKey]*cpVal{}}
	if last != nil && last.State != StateCompleted && last.State != StateNoop && last.State != StateRefused {
		res.Resumed = last.RunID
		if cp, err = loadCheckpoints(ctx, a.Conn, plan.ID, run.RunID); err != nil {
			return nil, err
		}
		a.log().Info("resuming an unfinished apply of this plan", "plan", plan.ID, "run", last.RunID, "state", last.State, "phase", last.Phase, "reingested_before", cp.reingested())
	}
	if td.reingestN == 0 && len(td.staleNow) == 0 && len(td.pending) == 0 && res.Resumed == "" {
		run.State, run.Phase, run.FinishedAtMs = StateNoop, PhaseDone, chdb.NowMs()
		res.Noop, res.Backlog, res.Waiting, res.LeftToPoller = true, td.backlog, td.waiting, td.leftToPoller
		if err := run.save(ctx, a.Conn); err != nil {
			return nil, err
		}
		res.Run = *run
		return res, nil
	}

	r := &applyRun{a: a, plan: plan, td: td, cp: cp, adm: adm, res: res, run: run}
	r.startHeartbeat(ctx)
	return r.finish(ctx, r.phases(ctx))
}

// assess finds what is left of plan now.
func (a *Applier) assess(ctx context.Context, plan *Plan, adm *kadm.Client) (*remaining, error) {
	td := &remaining{reingest: map[string]map[int32]Ranges{}, planned: plan.StaleCustomers()}
	planned := plan.MissingRanges()
	for _, lf := range plan.LaneFindings {
		ps := planned[lf.Topic]
		if len(ps) == 0 {
			continue
		}
		left, err := missingIn(ctx, a.Conn, lf.Topic, ps, a.Cfg.BucketSize)
		if err != nil {
			return nil, err
		}
		var committed kadm.OffsetResponses
		if !a.Cfg.IncludeBacklog {
			committed, err = adm.FetchOffsets(ctx, laneGroup(a.Kafka, a.Cfg.LoaderGroup, lf.Lane))
			if err != nil {
				return nil, fmt.Errorf("fetch the loader's committed offsets for lane %s: %w", lf.Lane, err)
			}
		}
		for p, rs := range ps {
			td.alreadyFixed += rs.Len() - left[p].Len()
			leftP := left[p]
			if c, ok := committed.Lookup(lf.Topic, p); ok && c.Err == nil && c.At >= 0 {
				td.backlog += leftP.Clip(c.At, 1<<62).Len()
				leftP = leftP.Clip(0, c.At)
			}
			if len(leftP) > 0 {
				if td.reingest[lf.Topic] == nil {
					td.reingest[lf.Topic] = map[int32]Ranges{}
				}
				td.reingest[lf.Topic][p] = leftP
				td.reingestN += leftP.Len()
			}
		}
	}
	// Replaying costs seconds; it is only worth it when nothing else tells
	// whether there is work (apply re-derives the plan's customers anyway).
	if a.State != nil && len(td.planned) > 0 && (a.DryRun || td.reingestN == 0) {
		diffs, err := a.State.Diff(ctx, td.planned, nil)
		if err != nil {
			return nil, fmt.Errorf("replay the plan's stale customers: %w", err)
		}
		td.staleNow = customersOf(diffs)
	}
	if a.Qualifier != nil {
		pending, _, err := a.Qualifier.Unledgered(ctx, plan.Window, plan.Campaigns, a.now())
		if err != nil {
			return nil, fmt.Errorf("find unledgered qualifications: %w", err)
		}
		for _, q := range pending {
			switch {
			case q.Owner == OwnerPoller:
				td.leftToPoller++
				continue
			case q.Decision == "wait":
				td.waiting++
				continue
			}
			td.pending = append(td.pending, q)
			if q.Decision == "fire" || q.Decision == "fire_late" {
				td.fires++
			}
		}
	}
	// Re-ingested events can qualify customers the plan could not see yet;
	// the plan's own estimate covers those.
	if td.reingestN > 0 {
		d := plan.Decisions()
		td.fires = max(td.fires, d["fire"]+d["fire_late"])
	}
	return td, nil
}

// confirm asks before sending many campaigns at once.
func (a *Applier) confirm(td *remaining) error {
	g := confirm.Gate{Above: a.Cfg.ConfirmAbove, Setting: "backfill.confirm_above", Yes: a.Yes, Ask: a.Confirm}
	return g.Check(td.fires, "this apply")
}

// checkOverlap refuses to run beside a live apply on an overlapping window
// and lanes. Both applies record themselves before checking, and the one
// that started later gives way, so two applies started at once cannot both
// proceed. Runs recorded as running whose process is gone are marked
// interrupted.
func (a *Applier) checkOverlap(ctx context.Context, me *Run) error {
	rs, err := running(ctx, a.Conn)
	if err != nil {
		return err
	}
	now := a.now()
	for i := range rs {
		r := &rs[i]
		if r.RunID == me.RunID {
			continue
		}
		if !r.Alive(now, a.Cfg.StaleAfter) {
			r.State, r.Error = StateInterrupted, "the process stopped without finishing (no heartbeat since "+time.UnixMilli(int64(r.UpdatedAtMs)).UTC().Format(time.RFC3339)+")"
			if err := r.save(ctx, a.Conn); err != nil {
				return err
			}
			continue
		}
		if !r.Window().Overlaps(me.Window()) || !sharesLane(r.Lanes, me.Lanes) {
			continue
		}
		if r.StartedAtMs < me.StartedAtMs || (r.StartedAtMs == me.StartedAtMs && r.RunID < me.RunID) {
			return fmt.Errorf("%w: run %s by %s (plan %s, window %s) is still running; wait for it (tideline backfill status) or stop it", ErrOverlap, r.RunID, r.Who, r.PlanID, r.Window())
		}
	}
	return nil
}

func sharesLane(a, b string) bool {
	for _, x := range strings.Split(a, ",") {
		for _, y := range strings.Split(b, ",") {
			if x == y {
				return true
			}
		}
	}
	return false
}

// produce re-ingests the wanted records through the backfill lane, keeping
// their original position in headers, and checkpoints (when cp is set) as
// the brokers acknowledge them, calling onProgress after each checkpoint.
func (a *Applier) produce(ctx context.Context, want map[string]map[int32]Ranges, cp *checkpoints, onProgress func(int64)) (int64, map[string]map[int32]Ranges, error) {
	total := countRanges(want)
	if total == 0 {
		return 0, nil, nil
	}
	topic := a.Kafka.MustTopic("backfill")
	prod, err := kgo.NewClient(append(broker.ClientOpts(a.Seeds, a.Log),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(200_000),
		kgo.ProducerBatchMaxBytes(4<<20),
	)...)
	if err != nil {
		return 0, nil, fmt.Errorf("kafka producer for %v: %w", a.Seeds, err)
	}
	defer prod.Close()
	var limiter *rate.Limiter
	if a.Cfg.RateLimit > 0 {
		limiter = rate.NewLimiter(rate.Limit(a.Cfg.RateLimit), max(1, int(a.Cfg.RateLimit/10)))
	}
	bar := a.progress().Phase("reingest", "events", total)
	defer bar.Done()
	var (
		produced  int64
		firstErr  atomic.Pointer[error]
		lastSaved = time.Now()
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
	}
	flush := func() error {
		if err := prod.Flush(ctx); err != nil {
			return fmt.Errorf("produce to %s: %w", topic, err)
		}
		if e := firstErr.Load(); e != nil {
			return fmt.Errorf("produce to %s: %w", topic, *e)
		}
		if cp != nil {
			if err := cp.save(ctx, a.Conn); err != nil {
				return err
			}
		}
		lastSaved = time.Now()
		return nil
	}
	unavailable, err := a.Source.Read(ctx, want, func(recs []*kgo.Record) error {
		for len(recs) > 0 {
			n := len(recs)
			if limiter != nil {
				n = min(n, limiter.Burst())
				if err := limiter.WaitN(ctx, n); err != nil {
					return err
				}
			}
			for _, rec := range recs[:n] {
				out := &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
				for _, h := range rec.Headers {
					if !strings.HasPrefix(h.Key, "tideline-origin-") {
						out.Headers = append(out.Headers, h)
					}
				}
				out.Headers = append(out.Headers, ingest.Origin{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}.Headers()...)
				prod.Produce(ctx, out, promise)
				if cp != nil {
					cp.advance(rec.Topic, rec.Partition, rec.Offset)
				}
			}
			produced += int64(n)
			recs = recs[n:]
			bar.Set(produced)
			if time.Since(lastSaved) >= a.Cfg.CheckpointInterval {
				if err := flush(); err != nil {
					return err
				}
				if onProgress != nil {
					onProgress(produced)
				}
			}
		}
		return nil
	})
	if err != nil {
		return produced, nil, err
	}
	if err := flush(); err != nil {
		return produced, nil, err
	}
	if onProgress != nil {
		onProgress(produced)
	}
	return produced, unavailable, nil
}

// waitLoaded waits until the loader's backfill group has committed past
// everything in the backfill topic now, which includes all this apply (and
// any killed apply before it) produced.
func (a *Applier) waitLoaded(ctx context.Context, adm *kadm.Client) error {
	topic := a.Kafka.MustTopic("backfill")
	group := laneGroup(a.Kafka, a.Cfg.LoaderGroup, "backfill")
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	target := map[int32]int64{}
	for p, o := range ends[topic] {
		target[p] = o.Offset
	}
	committed := func() (map[int32]int64, error) {
		resp, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return nil, fmt.Errorf("fetch committed offsets of %s: %w", group, err)
		}
		out := map[int32]int64{}
		for p := range target {
			out[p] = 0
			if c, ok := resp.Lookup(topic, p); ok && c.Err == nil && c.At > 0 {
				out[p] = c.At
			}
		}
		return out, nil
	}
	first, err := committed()
	if err != nil {
		return err
	}
	var total int64
	for p, t := range target {
		total += max(t-first[p], 0)
	}
	if total == 0 {
		return nil
	}
	bar := a.progress().Phase("load", "events", total)
	defer bar.Done()
	lastDone, lastMove := int64(-1), time.Now()
	t := time.NewTicker(a.Cfg.PollInterval)
	defer t.Stop()
	for {
		cur, err := committed()
		if err != nil {
			return err
		}
		var done, left int64
		for p, tg := range target {
			done += min(max(cur[p]-first[p], 0), max(tg-first[p], 0))
			left += max(tg-cur[p], 0)
		}
		bar.Set(done)
		if left == 0 {
			return nil
		}
		if done != lastDone {
			lastDone, lastMove = done, time.Now()
			bar.Note("")
		} else if live := a.liveLag(ctx, adm); live > 0 {
			// The backfill lane yields while live lanes are behind: waiting
			// is expected, not a stall.
			lastMove = time.Now()
			bar.Note(fmt.Sprintf("yielding to live lanes (%d behind)", live))
		} else if time.Since(lastMove) > a.Cfg.LoadTimeout {
			return fmt.Errorf("%w: consumer group %s made no progress on %s for %s with %d records left; is `tideline ingest` running with the backfill lane?", ErrNotLoaded, group, topic, a.Cfg.LoadTimeout, left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// liveLag is the live lanes' consumer lag (0 when unknown).
func (a *Applier) liveLag(ctx context.Context, adm *kadm.Client) int64 {
	var groups []string
	for _, l := range []string{"web", "server"} {
		groups = append(groups, laneGroup(a.Kafka, a.Cfg.LoaderGroup, l))
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return 0
	}
	var total int64
	for _, g := range lags {
		if g.Error() == nil {
			total += g.Lag.Total()
		}
	}
	return total
}

// stillMissing re-checks which of want ClickHouse does not hold.
func (a *Applier) stillMissing(ctx context.Context, want map[string]map[int32]Ranges) (map[string]map[int32]Ranges, error) {
	out := map[string]map[int32]Ranges{}
	for t, ps := range want {
		m, err := missingIn(ctx, a.Conn, t, ps, a.Cfg.BucketSize)
		if err != nil {
			return nil, err
		}
		for p, rs := range m {
			if len(rs) > 0 {
				if out[t] == nil {
					out[t] = map[int32]Ranges{}
				}
				out[t][p] = rs
			}
		}
	}
	return out, nil
}

// rederiveSet is the plan's stale customers and the customers of the
// records re-ingested for it.
func (a *Applier) rederiveSet(ctx context.Context, plan *Plan, td *remaining) ([]string, error) {
	set := map[string]bool{}
	for _, c := range td.planned {
		set[c] = true
	}
	spans := map[string]map[int32]Range{}
	for t, ps := range plan.MissingRanges() {
		spans[t] = map[int32]Range{}
		for p, rs := range ps {
			spans[t][p] = Range{From: rs[0].From, To: rs[len(rs)-1].To}
		}
	}
	if len(spans) > 0 {
		filter, args := windowFilter(spans)
		missing := plan.MissingRanges()
		err := ingest.EachPosition(ctx, a.Conn, "lane = 'backfill' AND ("+filter+")", args, func(c, t string, p int32, off int64) error {
			if missing[t][p].Contains(off) {
				set[c] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list re-ingested customers: %w", err)
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// dryRun reports what apply would do and records that it was asked.
func (a *Applier) dryRun(ctx context.Context, plan *Plan, td *remaining) (*Result, error) {
	w := a.Out
	if w == nil {
		w = io.Discard
	}
	ew := &errWriter{w: w}
	ew.printf("Dry run of plan %s (%s); nothing was changed.\n", plan.ID, plan.Window)
	if td.alreadyFixed > 0 {
		ew.printf("  %s of the plan's missing records are in ClickHouse already.\n", num(td.alreadyFixed))
	}
	if td.reingestN > 0 {
		ew.printf("  Would re-ingest %s records through %s:\n", num(td.reingestN), a.Kafka.MustTopic("backfill"))
		topics := make([]string, 0, len(td.reingest))
		for t := range td.reingest {
			topics = append(topics, t)
		}
		sort.Strings(topics)
		for _, t := range topics {
			for _, p := range sortedPartitions(td.reingest[t]) {
				rs := td.reingest[t][p]
				ew.printf("    %s/%d: %s records at %s\n", t, p, num(rs.Len()), rs)
			}
		}
	} else {
		ew.printf("  Nothing to re-ingest.\n")
	}
	if td.backlog > 0 {
		ew.printf("  Would leave %s records to the live loader, which has not reached them yet (backfill.include_backlog to re-ingest them too).\n", num(td.backlog))
	}
	switch {
	case a.State == nil:
	case len(td.staleNow) > 0:
		ew.printf("  Would re-derive %s customers whose state differs from a replay now, and the customers of the re-ingested records.\n", num(int64(len(td.staleNow))))
	default:
		ew.printf("  No customer of the plan differs from a replay now; the customers of re-ingested records would be re-derived.\n")
	}
	if a.Qualifier != nil {
		counts := map[string]int64{}
		for _, q := range td.pending {
			counts[q.Decision]++
		}
		ew.printf("  %s qualifications have no ledger entry now and are the backfill's to decide: %s fire, %s fire late, %s skip (re-ingested events may add more; the plan expected %s).\n",
			num(int64(len(td.pending))), num(counts["fire"]), num(counts["fire_late"]), num(counts["skip"]), num(int64(len(plan.Qualifications.Pending))))
		if td.leftToPoller > 0 {
			ew.printf("  %s more are ahead of the running poller's position: it decides them itself.\n", num(td.leftToPoller))
		}
		if td.waiting > 0 {
			ew.printf("  %s wait until the watermarks pass the end of their unless window; apply again later to decide them.\n", num(td.waiting))
		}
		for i, q := range td.pending {
			if i == 10 {
				ew.printf("    … %d more\n", len(td.pending)-10)
				break
			}
			ew.printf("    %s %s episode %s: %s (%s)\n", q.CampaignID, q.CustomerID, q.Episode, q.Decision, q.Reason)
		}
	}
	if td.fires > int64(a.Cfg.ConfirmAbove) {
		ew.printf("  About %s sends: above backfill.confirm_above (%d), so apply will ask for confirmation (or --yes).\n", num(td.fires), a.Cfg.ConfirmAbove)
	}
	run := newRun(KindDryRun, plan, a.Command, a.now())
	run.State, run.Phase, run.FinishedAtMs = StateCompleted, PhaseDone, chdb.NowMs()
	run.EventsMissing = uint64(td.reingestN + td.backlog)
	run.CustomersStale, run.Qualifications = uint64(len(td.staleNow)), uint64(len(td.pending))
	if err := run.save(ctx, a.Conn); err != nil {
		return nil, err
	}
	return &Result{Run: *run, Backlog: td.backlog, Waiting: td.waiting, LeftToPoller: td.leftToPoller,
		Noop: td.reingestN == 0 && len(td.staleNow) == 0 && len(td.pending) == 0}, ew.err
}

func customersOf(diffs []StateDiff) []string {
	set := map[string]bool{}
	for _, d := range diffs {
		set[d.CustomerID] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func countRanges(m map[string]map[int32]Ranges) int64 {
	var n int64
	for _, ps := range m {
		for _, rs := range ps {
			n += rs.Len()
		}
	}
	return n
}

// subtract removes b's offsets from a.
func subtract(a, b map[string]map[int32]Ranges) map[string]map[int32]Ranges {
	out := map[string]map[int32]Ranges{}
	for t, ps := range a {
		for p, rs := range ps {
			keep := rs.Minus(b[t][p])
			if len(keep) > 0 {
				if out[t] == nil {
					out[t] = map[int32]Ranges{}
				}
				out[t][p] = keep
			}
		}
	}
	return out
}

func mergeRanges(a, b map[string]map[int32]Ranges) map[string]map[int32]Ranges {
	out := map[string]map[int32]Ranges{}
	for _, m := range []map[string]map[int32]Ranges{a, b} {
		for t, ps := range m {
			for p, rs := range ps {
				if out[t] == nil {
					out[t] = map[int32]Ranges{}
				}
				out[t][p] = normalize(append(append(Ranges{}, out[t][p]...), rs...))
			}
		}
	}
	return out
}
