package backfill

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func TestConfirm(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConfirmAbove = 10
	asked := ""
	for _, tc := range []struct {
		name    string
		fires   int64
		yes     bool
		confirm func(string) bool
		ok      bool
	}{
		{"at the threshold", 10, false, nil, true},
		{"above, no terminal", 11, false, nil, false},
		{"above, --yes", 11, true, nil, true},
		{"above, operator says yes", 11, false, func(q string) bool { asked = q; return true }, true},
		{"above, operator says no", 11, false, func(string) bool { return false }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Applier{Cfg: cfg, Yes: tc.yes, Confirm: tc.confirm}
			err := a.confirm(&remaining{fires: tc.fires})
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrNotConfirmed)) {
				t.Fatalf("confirm: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if !strings.Contains(asked, "about 11 campaign messages") {
		t.Fatalf("question asked: %q", asked)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := DefaultConfig()
	c.Lanes, c.LoaderGroup, c.StaleAfter, c.BucketSize, c.QualifyBatch = []string{"dlq"}, "", time.Second, 10, 0
	err := c.Validate()
	for _, want := range []string{"not a live lane", "loader_group is empty", "stale_after", "bucket_size", "qualify_batch"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
}

// TestOverlap checks that an apply gives way to a live apply on an
// overlapping window and lane, and that a dead one does not block.
func TestOverlap(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	host, _ := os.Hostname()
	at := func(h int) time.Time { return time.Date(2025, 12, 14, h, 0, 0, 0, time.UTC) }
	now := time.Now()
	run := func(id string, from, to time.Time, lanes, runHost string, pid int, startedAgo, heartbeatAgo time.Duration) *Run {
		r := &Run{RunID: id, PlanID: "p", Kind: KindApply, State: StateRunning, Host: runHost, PID: uint32(pid), Lanes: lanes,
			WindowFromMs: uint64(from.UnixMilli()), WindowToMs: uint64(to.UnixMilli()), StartedAtMs: uint64(now.Add(-startedAgo).UnixMilli())}
		if heartbeatAgo > 0 {
			// Its last heartbeat was heartbeatAgo.
			r.UpdatedAtMs = uint64(now.Add(-heartbeatAgo).UnixMilli())
			if err := insertRunVersion(ctx, conn, r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if err := r.save(ctx, conn); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := &Applier{Cfg: DefaultConfig(), Conn: conn}
	me := run("z-me", at(19), at(21), "server", host, os.Getpid(), 0, 0)

	// A live apply on this host started earlier on an overlapping window.
	other := run("a-live", at(18), at(20), "web,server", host, os.Getpid(), time.Minute, 0)
	if err := a.checkOverlap(ctx, me); !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), "a-live") {
		t.Fatalf("overlapping live apply: %v", err)
	}
	mark(t, conn, other, StateCompleted)

	// Other lanes or windows do not overlap.
	o2 := run("b-web", at(18), at(22), "web", host, os.Getpid(), time.Minute, 0)
	o3 := run("c-later", at(21), at(23), "server", host, os.Getpid(), time.Minute, 0)
	if err := a.checkOverlap(ctx, me); err != nil {
		t.Fatalf("non-overlapping applies: %v", err)
	}
	mark(t, conn, o2, StateCompleted)
	mark(t, conn, o3, StateCompleted)

	// A younger apply gives way to me, not the reverse.
	young := run("d-young", at(19), at(20), "server", host, os.Getpid(), -time.Minute, 0)
	if err := a.checkOverlap(ctx, me); err != nil {
		t.Fatalf("a younger apply blocks: %v", err)
	}
	mark(t, conn, young, StateCompleted)

	// A killed apply on this host and a silent one elsewhere are dead: they
	// are marked interrupted and do not block.
	run("e-killed", at(19), at(20), "server", host, 1<<22+12345, time.Hour, 0)
	run("f-silent", at(19), at(20), "server", "elsewhere", 4242, time.Hour, 10*time.Minute)
	if err := a.checkOverlap(ctx, me); err != nil {
		t.Fatalf("dead applies block: %v", err)
	}
	runs, err := ListRuns(ctx, conn, KindApply, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if (r.RunID == "e-killed" || r.RunID == "f-silent") && r.State != StateInterrupted {
			t.Fatalf("%s is %s, want interrupted", r.RunID, r.State)
		}
	}
	// A live apply elsewhere with a recent heartbeat blocks.
	run("g-remote", at(20), at(22), "server", "elsewhere", 4242, time.Hour, time.Second)
	if err := a.checkOverlap(ctx, me); !errors.Is(err, ErrOverlap) {
		t.Fatalf("live remote apply: %v", err)
	}
}

func mark(t *testing.T, conn *chdb.Conn, r *Run, state string) {
	t.Helper()
	r.State = state
	if err := r.save(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
}

// insertRunVersion writes r with its UpdatedAtMs as is (an old heartbeat).
func insertRunVersion(ctx context.Context, conn *chdb.Conn, r *Run) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO backfill_runs ("+runColumns+")")
	if err != nil {
		return err
	}
	if err := batch.Append(r.fields()...); err != nil {
		return err
	}
	return batch.Send()
}
