package trigger

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// buildTideline builds the real binary once per test binary run.
func buildTideline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tideline")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/tideline-dev/tideline/cmd/tideline")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tideline: %v\n%s", err, out)
	}
	return bin
}

// TestCrashRestart feeds 20 000 qualifications to a `tideline trigger`
// process that is SIGKILLed at random moments, at least ten times, and
// restarted each time. Afterwards every qualification has exactly one
// ledger entry whose decision never changed, every fire reached the
// receiver, repeated webhooks carry the same id and body, and the frequency
// cap held across the crashes (compared with an in-Go oracle).
func TestCrashRestart(t *testing.T) {
	bin := buildTideline(t)
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			h := newHook(t)
			dir := t.TempDir()
			writeCampaign(t, dir, "crash", fmt.Sprintf(`
id: crash
trigger: {audience_entered: crash_audience}
staleness: {budget: 1h, late: skip}
reeligible_after: 0
frequency_cap: {max: 2, per: 1d}
deliver:
  webhook: {url: %s/crash, secret_env: CRASH_SECRET}`, h.URL))
			env := append(append(os.Environ(), testenv.ClickHouseEnv(t, conn)...),
				"TIDELINE_KAFKA_MODE=kafka",
				"TIDELINE_KAFKA_BROKERS="+strings.Join(br.Seeds, ","),
				"TIDELINE_KAFKA_TOPIC_PREFIX="+br.Config.TopicPrefix,
				"TIDELINE_TRIGGER_CAMPAIGNS_DIR="+dir,
				"TIDELINE_TRIGGER_SHARDING=group",
				"TIDELINE_TRIGGER_SHARDS=4",
				"TIDELINE_TRIGGER_GROUP=crash-"+testenv.Name(t),
				"TIDELINE_TRIGGER_INSTANCE_ID=crash-poller",
				"TIDELINE_TRIGGER_SESSION_TIMEOUT=6s",
				"TIDELINE_TRIGGER_POLL_INTERVAL=20ms",
				"TIDELINE_TRIGGER_OVERLAP=5s",
				"TIDELINE_TRIGGER_CURSOR_INTERVAL=300ms",
				"TIDELINE_TRIGGER_OPEN_SCAN_INTERVAL=1s",
				"TIDELINE_TRIGGER_BATCH_SIZE=1000",
				"TIDELINE_TRIGGER_METRICS_ADDR=",
				"CRASH_SECRET="+h.Secret.String(),
			)
			logs := filepath.Join(t.TempDir(), "poller")
			run := 0
			start := func() *exec.Cmd {
				run++
				return startPollerProcess(t, bin, env, logs, run)
			}

			// The oracle: customer i has 1 + i%4 entries; one in ten
			// customers qualified two hours ago (stale: skipped), the others
			// within the last minutes (fresh: fire, at most two per day).
			const customers = 8000
			now := time.Now()
			type qual struct {
				customer string
				episode  uint32
				stale    bool
			}
			var all []qual
			for i := range customers {
				for ep := 1; ep <= 1+i%4; ep++ {
					all = append(all, qual{customer: fmt.Sprintf("cust-%05d", i), episode: uint32(ep), stale: i%10 == 0})
				}
			}
			rng := rand.New(rand.NewPCG(uint64(now.UnixNano()), 1))
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			t.Logf("%d qualifications for %d customers (seed %d)", len(all), customers, now.UnixNano())

			proc := start()
			inserted := make(chan struct{})
			go func() {
				defer close(inserted)
				for off := 0; off < len(all); off += 1000 {
					var trs []transition
					for _, q := range all[off:min(off+1000, len(all))] {
						at := now.Add(-time.Duration(q.episode) * 10 * time.Second)
						if q.stale {
							at = now.Add(-2*time.Hour - time.Duration(q.episode)*10*time.Second)
						}
						trs = append(trs, transition{audience: "crash_audience", customer: q.customer, episode: q.episode, eventMs: uint64(at.UnixMilli())})
					}
					insertTransitions(t, conn, trs)
					time.Sleep(200 * time.Millisecond)
				}
			}()
			kills := 0
			for done := false; !done || kills < 10; {
				time.Sleep(time.Duration(400+rng.IntN(1600)) * time.Millisecond)
				if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatalf("kill: %v", err)
				}
				kills++
				for proc.ProcessState == nil {
					time.Sleep(10 * time.Millisecond)
				}
				proc = start()
				select {
				case <-inserted:
					done = true
				default:
				}
			}
			t.Logf("SIGKILLed the poller %d times", kills)

			testenv.Eventually(t, 3*time.Minute, "every qualification recorded and every fire delivered", func() (bool, string) {
				keys := count(t, conn, "SELECT uniqExact(ledger_key) FROM send_ledger")
				open := count(t, conn, `SELECT count() FROM (`+ledgerLatest+` GROUP BY ledger_key) WHERE l_state IN ('pending', 'failed') AND l_decision != 'skip'`)
				return keys == uint64(len(all)) && open == 0, fmt.Sprintf("%d ledger keys, %d open, receiver %+v", keys, open, h.Counts())
			})
			// SIGTERM once the last poller is up (a signal before Go's
			// handler is installed would end it like a kill).
			testenv.Eventually(t, time.Minute, "the last poller started", func() (bool, string) {
				b, _ := os.ReadFile(fmt.Sprintf("%s-%02d.log", logs, run))
				return bytes.Contains(b, []byte("trigger poller started")), "no start line yet"
			})
			if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for proc.ProcessState == nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if proc.ProcessState == nil || !proc.ProcessState.Success() {
				t.Errorf("the last poller did not stop cleanly on SIGTERM: %v", proc.ProcessState)
			}

			// Exactly one entry per qualification, and no entry ever got a
			// second decision (every row of a key carries the first one).
			if n := count(t, conn, `SELECT count() FROM (SELECT ledger_key FROM send_ledger GROUP BY ledger_key HAVING uniqExact(decision, reason, detected_at_ms) > 1)`); n != 0 {
				t.Errorf("%d ledger keys have more than one decision", n)
			}
			entries := byQualification(ledgerState(t, conn))
			fires := map[string]bool{}
			firesPer := map[string]int{}
			reasons := map[string]int{}
			for _, q := range all {
				e := entries[fmt.Sprintf("crash/%s/%d", q.customer, q.episode)]
				if e == nil {
					t.Fatalf("qualification %s/%d has no ledger entry", q.customer, q.episode)
				}
				reasons[e.Decision+":"+e.Reason]++
				if q.stale && e.Reason != ReasonStale {
					t.Errorf("%s/%d: stale qualification decided %s/%s", q.customer, q.episode, e.Decision, e.Reason)
				}
				if e.Fires() {
					fires[e.Key] = true
					firesPer[q.customer]++
					if e.DeliveryState != StateDelivered {
						t.Errorf("%s: fire in state %s", e.Key, e.DeliveryState)
					}
				}
			}
			for i := range customers {
				c := fmt.Sprintf("cust-%05d", i)
				want := min(1+i%4, 2)
				if i%10 == 0 {
					want = 0
				}
				if firesPer[c] != want {
					t.Errorf("%s: %d fires, the oracle says %d (cap 2 per day)", c, firesPer[c], want)
				}
			}
			// Every fire reached the receiver; nothing else did; a webhook
			// sent twice carried the same id (the receiver indexes by id) and
			// the same body.
			deliveries := h.Deliveries()
			accepted := h.Accepted()
			duplicates := 0
			for key := range fires {
				if !accepted[key] {
					t.Errorf("fire %s never reached the receiver", key)
				}
			}
			for id, ds := range deliveries {
				if !fires[id] {
					t.Errorf("the receiver got %s, which is not a fire in the ledger", id)
				}
				if len(ds) > 1 {
					duplicates++
				}
				for _, d := range ds[1:] {
					if !bytes.Equal(d.Body, ds[0].Body) {
						t.Errorf("%s was sent with two bodies", id)
						break
					}
				}
			}
			c := h.Counts()
			if c.Invalid != 0 {
				t.Errorf("invalid signatures: %v", h.InvalidReasons())
			}
			fmt.Printf("crash test (%s): %d qualifications, %d SIGKILLs, %d ledger entries (%v), %d fires, %d webhooks on the wire for %d ids, %d ids sent more than once (same id each time)\n",
				br.Name, len(all), kills, len(entries), reasons, len(fires), c.Requests, len(deliveries), duplicates)
		})
	}
}
