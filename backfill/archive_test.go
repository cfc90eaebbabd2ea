package backfill_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// deleteKafkaRecords moves the log start of every partition of the live
// lanes to its end: what retention does to an old window.
func (e *env) deleteKafkaRecords() {
	t := e.t
	t.Helper()
	cl, err := kgo.NewClient(broker.ClientOpts(e.br.Seeds, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	topics := []string{e.br.Config.MustTopic("web"), e.br.Config.MustTopic("server")}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adm.DeleteRecords(ctx, ends.Offsets())
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
}

// tideline runs the binary against e with extra environment settings (a
// command refuses settings of sections it does not read).
func (e *env) tideline(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ch := testenv.ClickHouseConfig(t)
	cmd := exec.Command(tidelineBinary(t), append(args,
		"--clickhouse-addr", ch.Addr, "--clickhouse-database", e.conn.Database,
		"--broker", "kafka", "--brokers", strings.Join(e.br.Seeds, ","), "--log-json")...)
	cmd.Env = append(append(cmd.Environ(), "TIDELINE_KAFKA_TOPIC_PREFIX="+e.br.Config.TopicPrefix), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tideline %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestArchiveRestore: events produced and loaded, exported with the real
// binary, then gone from Kafka (retention) and from ClickHouse (events,
// their positions and attributes truncated); `tideline backfill apply
// --source` restores the same events, and the same attributes and
// memberships.
func TestArchiveRestore(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			ctx := context.Background()
			simStart := time.Now().Add(-4 * time.Hour).Truncate(time.Minute)
			e := newEnv(t, br, simStart, 4*time.Hour/2000)
			e.withDerived()
			e.startLoader("live", "web", "backfill", "server")
			e.startEvaluator()
			time.Sleep(5 * time.Millisecond)
			from := time.Now()
			e.produce(2000)
			e.waitPositions(len(e.events))
			to := time.Now().Add(time.Millisecond)
			e.evaluatorCaughtUp()
			e.stopEvaluator()
			if linked := linkedMembers(t, e.conn); len(linked) != 0 {
				t.Fatalf("after the evaluator caught up, %d memberships are held by linked anonymous ids: %v", len(linked), linked)
			}
			rowsBefore, stateBefore := e.tableRows(), readState(t, e.conn)
			if len(stateBefore.attrs) == 0 || len(stateBefore.members) == 0 {
				t.Fatalf("no derived state to restore (%d attribute values, %d memberships, evaluated as of %d, %d touches); the test proves nothing",
					len(stateBefore.attrs), len(stateBefore.members), e.asOf(), e.queryUint("SELECT count() FROM customer_touches"))
			}

			exact := "2006-01-02T15:04:05.000Z07:00"
			archivePath := filepath.Join(t.TempDir(), "window.parquet")
			e.tideline(t, nil, "export", "--from", from.UTC().Format(exact), "--to", to.UTC().Format(exact), "--out", archivePath)

			e.deleteKafkaRecords()
			for _, table := range []string{"events", "event_positions", "customer_attributes"} {
				if err := e.conn.Delete(ctx, table, "1", time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			// Kafka no longer holds the window, and a plan from it says so.
			p := e.plan(backfill.Window{From: from, To: to})
			for _, lf := range p.LaneFindings {
				for _, pf := range lf.Partitions {
					if !pf.Truncated || pf.Window.Len() != 0 {
						t.Fatalf("plan from Kafka after retention, %s/%d: %+v; want an empty window cut by retention", lf.Topic, pf.Partition, pf)
					}
				}
			}
			// A plan from the archive finds every event missing.
			ap, err := (&backfill.Planner{Cfg: e.cfg, Conn: e.conn, Kafka: br.Config, Source: &backfill.ArchiveSource{Path: archivePath}, Log: testenv.Logger(t)}).
				Plan(ctx, backfill.PlanRequest{Window: backfill.Window{From: from, To: to}})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, missing, _, unavailable, _ := ap.Totals(); missing != int64(len(e.events)) || unavailable != 0 {
				t.Fatalf("plan from the archive: %d missing, %d unavailable; want %d missing", missing, unavailable, len(e.events))
			}

			out := e.tideline(t, []string{"TIDELINE_BACKFILL_POLL_INTERVAL=100ms", "TIDELINE_MATERIALIZE_TOUCH_SETTLE=1s", "TIDELINE_MATERIALIZE_TOUCH_OVERLAP=3s"},
				"backfill", "apply", "--source", archivePath, "--yes", "--campaigns", "../trigger/campaigns")
			if !strings.Contains(out, "completed") {
				t.Fatalf("apply from the archive did not complete:\n%s", out)
			}
			if got := e.tableRows(); !reflect.DeepEqual(got, rowsBefore) {
				t.Fatalf("events after restore differ: %d rows, %d before", len(got), len(rowsBefore))
			}
			stateAfter := readState(t, e.conn)
			if diff := staleCustomers(stateAfter, stateBefore); len(diff) != 0 {
				t.Fatalf("derived state after restore differs for %d customers: %v\n%s", len(diff), diff, stateDiff(stateAfter, stateBefore, 20))
			}
			// Restored events kept their original Kafka positions.
			e.assertAllEvents()
		})
	}
}
