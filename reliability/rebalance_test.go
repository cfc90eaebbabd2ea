package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestRebalanceStorm runs several `tideline ingest` members of one group
// while a load is produced, and every few seconds one joins, one leaves
// cleanly (SIGTERM: drain and commit) or one is SIGKILLed (nothing
// committed; its partitions wait out the session timeout). Every event must
// end up present once in events and in the derived results.
func TestRebalanceStorm(t *testing.T) {
	n := pick(60_000, 600_000)
	produceFor := pick(15*time.Second, 150*time.Second)
	const maxMembers = 4

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 20*time.Minute))
	defer cancel()
	br := faultBroker(t)
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	group := "rel-" + testenv.Name(t)
	env := loaderEnv(chCfg, br, group)
	const seed = 14

	var acked atomic.Int64
	prodErr := make(chan error, 1)
	// The producer stops when it has written n events or ctx ends.
	go func() {
		prodErr <- produceFeed(ctx, br, newFeed(seed, 20_000), n, float64(n)/produceFor.Seconds(), &acked)
	}()

	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	var members []*proc
	started := 0
	join := func() {
		started++
		members = append(members, startLoader(t, fmt.Sprintf("member-%d", started), env))
	}
	join()
	join()
	var joins, leaves, kills int
	for time.Since(start) < produceFor {
		time.Sleep(time.Duration(1500+rng.IntN(2000)) * time.Millisecond)
		for i := 0; i < len(members); {
			if members[i].exited() {
				t.Fatalf("%s exited by itself: %v\n%s", members[i].name, members[i].err, members[i].tail(30))
			}
			i++
		}
		switch a := rng.IntN(3); {
		case len(members) < 2 || (a == 0 && len(members) < maxMembers):
			join()
			joins++
		case a == 1:
			i := rng.IntN(len(members))
			if err := members[i].term(time.Minute); err != nil {
				t.Errorf("%s did not leave cleanly: %v\n%s", members[i].name, err, members[i].tail(30))
			}
			members = append(members[:i], members[i+1:]...)
			leaves++
		default:
			i := rng.IntN(len(members))
			members[i].kill()
			members = append(members[:i], members[i+1:]...)
			kills++
		}
	}
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	if len(members) == 0 {
		join()
	}
	alive := func() string { return members[len(members)-1].tail(30) }
	f := waitLoaded(ctx, t, conn, seed, n, pick(3*time.Minute, 10*time.Minute), alive)
	for _, m := range members {
		if err := m.term(time.Minute); err != nil {
			t.Errorf("%s: %v\n%s", m.name, err, m.tail(30))
		}
	}
	if ok, behind, err := testenv.CommittedEverything(ctx, br, group); err != nil || !ok {
		t.Errorf("group has not committed everything after the members stopped cleanly: %s %v", behind, err)
	}
	f, redeliveredRows := loadedFigures(ctx, t, conn, seed, n)
	r := &report{
		Scenario: "rebalance storm", Broker: br.Name,
		Load:     fmt.Sprintf("%d events over %s; 2–%d loader members of one group", n, produceFor, maxMembers),
		Faults:   fmt.Sprintf("every 1.5–3.5 s a member joins, leaves (SIGTERM) or is SIGKILLed: %d joins, %d clean leaves, %d kills (%d members started)", joins, leaves, kills, started),
		Produced: acked.Load(), Events: f, Lost: int64(n) - int64(f.Unique),
		Extra: map[string]any{"redelivered_rows": redeliveredRows, "joins": joins, "leaves": leaves, "kills": kills},
	}
	r.derive(ctx, t, conn)
	r.publish(t, start)
	checkExactlyOnce(t, r)
}
