package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestLoaderRejoinsAfterExpulsion is the regression test for a loader that
// stopped for good after a Kafka broker restart: the coordinator had
// forgotten the member, every offset commit failed with UNKNOWN_MEMBER_ID,
// and the loader retried the commit forever while holding its batch, which
// kept the client from rejoining (BlockRebalanceOnPoll). The broker here
// answers heartbeats and commits with UNKNOWN_MEMBER_ID until the client
// rejoins; the loader must rejoin, load everything and commit it.
func TestLoaderRejoinsAfterExpulsion(t *testing.T) {
	br := testenv.Embedded(t)
	conn := testenv.ClickHouse(t)
	cluster := br.Embedded.Cluster()
	var expelled, rejoined atomic.Bool
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if !expelled.Load() {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if !expelled.Load() {
			return nil, nil, false
		}
		creq := req.(*kmsg.OffsetCommitRequest)
		resp := creq.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, tp := range creq.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.UnknownMemberID.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	cluster.ControlKey(int16(kmsg.JoinGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if expelled.CompareAndSwap(true, false) {
			rejoined.Store(true)
		}
		return nil, nil, false
	})

	prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	topic := br.Config.MustTopic("web")
	produce := func(from, n int) {
		t.Helper()
		recs := make([]*kgo.Record, n)
		at := time.Now().UTC()
		for i := range recs {
			ev := &ingest.Event{MessageID: fmt.Sprintf("exp-%d", from+i), Type: ingest.TypeTrack, UserID: fmt.Sprintf("u-%d", (from+i)%50),
				Event: "view", Timestamp: at, ReceivedAt: at}
			v, _ := json.Marshal(ev)
			recs[i] = &kgo.Record{Topic: topic, Key: []byte(ev.UserID), Value: v}
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	unique := func() uint64 {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT uniqExact(message_id) FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached within 60s (expelled %v, rejoined %v, %d events loaded)", what, expelled.Load(), rejoined.Load(), unique())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	cfg := ingest.DefaultLoaderConfig()
	cfg.Lanes, cfg.Group = []string{"web"}, "expel-"+testenv.Name(t)
	cfg.FlushInterval, cfg.SessionTimeout, cfg.MaxRetryBackoff, cfg.MetricsAddr = 50*time.Millisecond, 6*time.Second, 500*time.Millisecond, ""
	l, err := ingest.NewLoader(cfg, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer runLoader(t, l)()

	produce(0, 500)
	waitFor("first 500 loaded", func() bool { return unique() == 500 })
	expelled.Store(true)
	produce(500, 500)
	waitFor("rejoin and load the rest", func() bool { return rejoined.Load() && unique() == 1000 })

	adm := kadm.NewClient(prod)
	waitFor("everything committed", func() bool {
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			return false
		}
		committed, err := adm.FetchOffsets(context.Background(), cfg.Group+".web")
		if err != nil {
			return false
		}
		all := true
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				all = false
			}
		})
		return all
	})
}
