package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
)

// liveLanes are the lanes the bench's data flows on.
var liveLanes = []string{"web", "server"}

// peerTopic is the topic of lane's flat records for the peer.
func peerTopic(bc broker.Config, lane string) string { return bc.TopicPrefix + "peer." + lane }

func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("bench.compression %q: want snappy, lz4, zstd, gzip or none", name)
}

// Produced says what was written to Kafka before the throughput scenarios.
type Produced struct {
	Events int64 `json:"events"`
	// PerLane counts events by lane.
	PerLane map[string]int64 `json:"per_lane"`
	// RecordBytes and FlatBytes are the average value sizes of the
	// collector-shaped records and of the peer's flat records, before compression.
	RecordBytes float64 `json:"record_bytes"`
	FlatBytes   float64 `json:"flat_bytes"`
	Compression string  `json:"compression"`
	Seconds     float64 `json:"seconds"`
}

// createPeerTopics creates the peer's flat topics beside the lane topics.
func createPeerTopics(ctx context.Context, seeds []string, bc broker.Config) error {
	cl, err := kgo.NewClient(broker.ClientOpts(seeds, nil)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	var topics []string
	for _, l := range liveLanes {
		topics = append(topics, peerTopic(bc, l))
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, bc.Partitions, bc.ReplicationFactor, nil, topics...)
	if err != nil {
		return fmt.Errorf("create peer topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// produce writes n events of the mix twice: as the collector writes them
// (JSON ingest.Event keyed by customer, to the lane topics) and as flat rows
// for the peer (to the peer topics, same keys, so the same partitioning).
func produce(ctx context.Context, c Config, seeds []string, bc broker.Config, n int64, start time.Time, log *slog.Logger) (Produced, error) {
	cc, err := codec(c.Compression)
	if err != nil {
		return Produced{}, err
	}
	cl, err := kgo.NewClient(append(broker.ClientOpts(seeds, log),
		kgo.ProducerBatchCompression(cc),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(200000),
		kgo.ProducerBatchMaxBytes(1<<20),
	)...)
	if err != nil {
		return Produced{}, fmt.Errorf("kafka producer: %w", err)
	}
	defer cl.Close()
	began := time.Now()
	var failed atomic.Pointer[error]
	var web, server, recBytes, flatBytes atomic.Int64
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	sink := func(ch *chunk) error {
		if p := failed.Load(); p != nil {
			return fmt.Errorf("produce: %w", *p)
		}
		var rows ingest.EventRows
		for i, ev := range ch.events {
			lane := ch.lanes[i]
			rows.Add(ev, lane, peerTopic(bc, lane), 0, 0)
			nested, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("encode event: %w", err)
			}
			flat, err := json.Marshal(flatOf(&rows, i))
			if err != nil {
				return fmt.Errorf("encode flat row: %w", err)
			}
			key := []byte(ev.CustomerID())
			cl.Produce(ctx, &kgo.Record{Topic: bc.MustTopic(lane), Key: key, Value: nested, Timestamp: ev.ReceivedAt}, done)
			cl.Produce(ctx, &kgo.Record{Topic: peerTopic(bc, lane), Key: key, Value: flat, Timestamp: ev.ReceivedAt}, done)
			recBytes.Add(int64(len(nested)))
			flatBytes.Add(int64(len(flat)))
			if lane == "web" {
				web.Add(1)
			} else {
				server.Add(1)
			}
		}
		return nil
	}
	if err := generate(ctx, newSource(c, start), n, sink); err != nil {
		return Produced{}, err
	}
	if err := cl.Flush(ctx); err != nil {
		return Produced{}, fmt.Errorf("flush producer: %w", err)
	}
	if p := failed.Load(); p != nil {
		return Produced{}, fmt.Errorf("produce: %w", *p)
	}
	return Produced{
		Events:      n,
		PerLane:     map[string]int64{"web": web.Load(), "server": server.Load()},
		RecordBytes: float64(recBytes.Load()) / float64(max(n, 1)),
		FlatBytes:   float64(flatBytes.Load()) / float64(max(n, 1)),
		Compression: c.Compression,
		Seconds:     time.Since(began).Seconds(),
	}, nil
}
