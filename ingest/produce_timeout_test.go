package ingest_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestProduceTimeoutBoundsAnswer is the regression test for a collector that
// answered 200 only after a killed broker came back: an idempotent producer
// never fails records it has sent, so ProduceSync ignored ProduceTimeout.
// The broker here holds every produce request until the test releases it;
// the request must get its 503 with Retry-After first, and the event must
// still land once the broker answers (at-least-once, deduplicated by id).
func TestProduceTimeoutBoundsAnswer(t *testing.T) {
	br := testenv.Embedded(t)
	release := make(chan struct{})
	// Released at the latest after a minute, so the broken behaviour fails
	// the test instead of hanging it.
	timer := time.AfterFunc(time.Minute, func() { close(release) })
	defer func() {
		if timer.Stop() {
			close(release)
		}
	}()
	cluster := br.Embedded.Cluster()
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cfg := ingest.DefaultCollectorConfig()
	cfg.ProduceTimeout = 300 * time.Millisecond
	col, err := ingest.NewCollector(cfg, component.Env{Kafka: br.Config, Log: testenv.Logger(t)}, prod)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(col.Handler())
	defer srv.Close()

	resp := testenv.Post(t, srv.URL+"/v1/track", "web-demo-key",
		[]byte(`{"messageId":"held-1","userId":"u-1","event":"purchase","timestamp":"2026-01-02T03:04:05Z"}`))
	released := false
	select {
	case <-release:
		released = true
	default:
	}
	if resp.StatusCode != http.StatusServiceUnavailable || released {
		t.Fatalf("got %d (broker released: %v); want 503 while the broker holds the produce", resp.StatusCode, released)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if timer.Stop() {
		close(release)
	}

	cons, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.ConsumeTopics(br.Config.MustTopic("web")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the held event never reached the broker after it was released")
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || bytes.Contains(r.Value, []byte(`"held-1"`)) })
		if found {
			return
		}
	}
}
