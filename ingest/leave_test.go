package ingest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLoaderStopsDuringRebalance is the regression test for a loader that
// did not exit on SIGTERM during a rebalance storm: leaving the group waits
// for the JoinGroup in flight, which the coordinator holds until the
// rebalance completes (up to a minute). The broker here holds every
// JoinGroup once a second member arrives; the loader, stopped then, must
// return soon after its shutdown timeout, not when the broker lets go.
func TestLoaderStopsDuringRebalance(t *testing.T) {
	br := testenv.Embedded(t)
	conn := testenv.ClickHouse(t)
	cluster := br.Embedded.Cluster()
	release := make(chan struct{})
	timer := time.AfterFunc(90*time.Second, func() { close(release) })
	var hold atomic.Value // the loader's member id, once known
	hold.Store("")
	var held atomic.Int32
	cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if m := hold.Load().(string); m != "" && req.(*kmsg.JoinGroupRequest).MemberID == m {
			held.Add(1)
			cluster.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer func() {
		if timer.Stop() {
			close(release)
		}
	}()

	cfg := ingest.DefaultLoaderConfig()
	cfg.Lanes, cfg.Group, cfg.MetricsAddr = []string{"web"}, "leave-"+testenv.Name(t), ""
	cfg.ShutdownTimeout, cfg.SessionTimeout = 3*time.Second, 6*time.Second
	l, err := ingest.NewLoader(cfg, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	// Wait for the loader to own the partitions, then let a second member
	// in: the loader must rejoin, and its JoinGroup (by its member id) is held.
	probe, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.ConsumeTopics(br.Config.MustTopic("web")))...)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{cfg.Group + ".web"}
		resp, err := req.RequestWith(context.Background(), probe)
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].State == "Stable" && len(resp.Groups[0].Members) == 1 {
			hold.Store(resp.Groups[0].Members[0].MemberID)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loader did not join its group within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	second, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.ConsumerGroup(cfg.Group+".web"),
		kgo.ConsumeTopics(br.Config.MustTopic("web")), kgo.SessionTimeout(6*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Close only after the broker let go, or it would wait too.
		go second.Close()
	}()
	go second.PollFetches(context.Background())
	for held.Load() < 1 {
		select {
		case <-release:
			t.Fatal("the loader never rejoined")
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	// A generous bound, ten times the shutdown timeout: before the fix the
	// loader stayed until the held JoinGroup timed out, over a minute.
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("loader: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the loader did not stop within 30s of being told to, with shutdown_timeout 3s: it waits for the held JoinGroup")
	}
}
