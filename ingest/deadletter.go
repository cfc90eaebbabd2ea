package ingest

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

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

// DeadLetterRecord is the events.dlq record for a rejected payload. origin is
// "collector:<source>" or "loader:<lane>".
func DeadLetterRecord(topic string, raw []byte, origin string, fe *FieldError) *kgo.Record {
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
