package backfill_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/trigger"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// tidelineBinary builds the real tideline binary once per test run.
func tidelineBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tideline-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tideline")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/tideline").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ../cmd/tideline: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// applyProcess runs `tideline backfill apply` on plan as a child process.
type applyProcess struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func (e *env) startApply(t *testing.T, planPath string, extraEnv ...string) *applyProcess {
	t.Helper()
	ch := testenv.ClickHouseConfig(t)
	args := []string{"backfill", "apply", planPath, "--yes",
		"--clickhouse-addr", ch.Addr, "--clickhouse-database", e.conn.Database,
		"--broker", "kafka", "--brokers", strings.Join(e.br.Seeds, ","),
		"--campaigns", "../trigger/campaigns", "--log-json"}
	p := &applyProcess{cmd: exec.Command(tidelineBinary(t), args...)}
	p.cmd.Env = append(os.Environ(),
		"TIDELINE_KAFKA_TOPIC_PREFIX="+e.br.Config.TopicPrefix,
		"TIDELINE_BACKFILL_CHECKPOINT_INTERVAL=100ms",
		"TIDELINE_BACKFILL_POLL_INTERVAL=100ms",
		"TIDELINE_BACKFILL_LATE_AFTER=1s",
		"TIDELINE_BACKFILL_BUCKET_SIZE=1024",
		"TIDELINE_MATERIALIZE_TOUCH_SETTLE=1s",
		"TIDELINE_MATERIALIZE_TOUCH_OVERLAP=3s",
	)
	p.cmd.Env = append(p.cmd.Env, extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// runningApply is the newest apply run of a plan as backfill_runs has it.
func (e *env) runningApply(planID string) (backfill.Run, bool) {
	runs, err := backfill.ListRuns(context.Background(), e.conn, backfill.KindApply, 20)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range runs {
		if r.PlanID == planID {
			return r, true
		}
	}
	return backfill.Run{}, false
}

// killWhen SIGKILLs the apply once cond holds for its run; it fails the
// test if the apply ends first.
func (e *env) killWhen(p *applyProcess, planID, what string, cond func(backfill.Run) bool) {
	t := e.t
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("apply ended (%v) before %s; output:\n%s", err, what, p.out.String())
		default:
		}
		if r, ok := e.runningApply(planID); ok && r.State == backfill.StateRunning && cond(r) {
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-exited
			t.Logf("killed apply %s %s", r.RunID, what)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("apply did not reach %s; output:\n%s", what, p.out.String())
}

// TestKillApply kills the real binary's apply with SIGKILL twice, once while
// it re-ingests and once while it writes ledger entries, and runs it again:
// the end state is complete and no qualification gets a second entry or a
// webhook under a second id.
func TestKillApply(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			ctx := context.Background()
			simStart := time.Now().Add(-6 * time.Hour).Truncate(time.Minute)
			e := newEnv(t, br, simStart, 6*time.Hour/3000)
			e.withDerived()
			e.startLoader("live", "web", "backfill", "server")
			time.Sleep(5 * time.Millisecond)
			from := time.Now()
			time.Sleep(5 * time.Millisecond)
			e.produce(3000)
			e.waitPositions(len(e.events))
			time.Sleep(5 * time.Millisecond)
			to := time.Now()
			// Half of the server lane is lost after the fact, and no poller
			// ran: every qualification of the window is unledgered.
			e.deleteRows("kafka_topic = ? AND kafka_offset % 2 = 0", br.Config.MustTopic("server"))
			plan := e.plan(backfill.Window{From: from, To: to})
			_, _, missing, _, _, _ := plan.Totals()
			if missing < 500 || len(plan.Qualifications.Pending) < 100 {
				t.Fatalf("plan finds %d missing records and %d qualifications; the test needs more", missing, len(plan.Qualifications.Pending))
			}
			planPath := filepath.Join(t.TempDir(), "plan.json")
			if err := plan.Save(planPath); err != nil {
				t.Fatal(err)
			}

			// Killed while re-ingesting (slowed down so there is a middle).
			p := e.startApply(t, planPath, "TIDELINE_BACKFILL_RATE_LIMIT=100")
			e.killWhen(p, plan.ID, "in the middle of re-ingesting", func(r backfill.Run) bool {
				return r.Phase == backfill.PhaseReingest && r.EventsReingested > 0 && r.EventsReingested < uint64(missing)/2
			})
			// Killed while writing ledger entries, ten qualifications at a time.
			p = e.startApply(t, planPath, "TIDELINE_BACKFILL_QUALIFY_BATCH=10")
			e.killWhen(p, plan.ID, "in the middle of deciding qualifications", func(r backfill.Run) bool {
				return r.Phase == backfill.PhaseQualify && r.Fired+r.FiredLate+r.Skipped > 0
			})
			decidedBefore := e.queryUint("SELECT uniqExact(ledger_key) FROM send_ledger")
			if decidedBefore == 0 || decidedBefore >= uint64(len(plan.Qualifications.Pending)) {
				t.Fatalf("%d ledger entries after the second kill; want some of %d", decidedBefore, len(plan.Qualifications.Pending))
			}
			p = e.startApply(t, planPath)
			if err := p.cmd.Wait(); err != nil {
				t.Fatalf("apply after the kills: %v\n%s", err, p.out.String())
			}
			if !strings.Contains(p.out.String(), "completed") {
				t.Fatalf("apply after the kills did not complete:\n%s", p.out.String())
			}

			e.assertAllEvents()
			entries := e.assertLedger(e.windowQualifications(from, to))
			for k, en := range entries {
				if en.Origin != trigger.OriginBackfill {
					t.Fatalf("entry %s was not written by the backfill: %+v", k, en)
				}
			}
			runs, err := backfill.ListRuns(ctx, e.conn, backfill.KindApply, 10)
			if err != nil {
				t.Fatal(err)
			}
			var states []string
			for _, r := range runs {
				states = append(states, r.State)
			}
			if strings.Join(states, ",") != "completed,interrupted,interrupted" {
				t.Fatalf("backfill_runs, newest first: %v", states)
			}
			// A poller delivers what the backfill decided, each once.
			e.startPoller("earliest")
			e.assertDelivered()
			// And the plan is done.
			again := e.startApply(t, planPath)
			if err := again.cmd.Wait(); err != nil || !strings.Contains(again.out.String(), "Nothing to do") {
				t.Fatalf("apply of a done plan: %v\n%s", err, again.out.String())
			}
		})
	}
}
