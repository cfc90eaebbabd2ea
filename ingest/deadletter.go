package ingest

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeldPositions selects the Kafka positions ClickHouse holds for a topic:
// the positions of every event ever inserted (event_positions, which
// merges do not collapse, unlike events, where only one delivery of each
// message survives a merge) and the records the loader dead-lettered
// (those were consumed too, so they are not missing; dead_letters is keyed
// by position, so a merge keeps each one). Its %[1]s is a condition on
// kafka_partition and kafka_offset made only of placeholders, used twice:
// bind the topic and the condition's arguments, then both again.
const HeldPositions = `SELECT kafka_partition, kafka_offset FROM event_positions WHERE kafka_topic = ? AND (%[1]s)
UNION ALL
SELECT kafka_partition, kafka_offset FROM dead_letters WHERE kafka_topic = ? AND (%[1]s)`

// Dead-letter record headers.
const (
	HeaderOrigin = "tideline-origin"
	HeaderCode   = "tideline-reason"
	HeaderError  = "tideline-error"
	HeaderField  = "tideline-field"
	// maxDeadLetterBytes bounds the raw payload kept, so a hostile client
	// cannot fill the dead-letter topic with huge bodies.
	maxDeadLetterBytes = 64 << 10
)

// deadLetterRecord is the events.dlq record for a rejected payload. origin is
// "collector:<source>" or "loader:<lane>".
func deadLetterRecord(topic string, raw []byte, origin string, fe *FieldError) *kgo.Record {
	if len(raw) > maxDeadLetterBytes {
		raw = raw[:maxDeadLetterBytes]
	}
	return &kgo.Record{
		Topic: topic,
		Value: append([]byte(nil), raw...),
		Headers: []kgo.RecordHeader{
			{Key: HeaderOrigin, Value: []byte(origin)},
			{Key: HeaderCode, Value: []byte(fe.Code)},
			{Key: HeaderError, Value: []byte(fe.Message)},
			{Key: HeaderField, Value: []byte(fe.Field)},
		},
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// fromCollector reports whether a dead-letter record came from the collector
// (the loader inserts its own rejects into ClickHouse directly).
func fromCollector(r *kgo.Record) bool {
	return strings.HasPrefix(header(r, HeaderOrigin), "collector:")
}
