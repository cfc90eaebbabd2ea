package ingest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestOriginHeaders(t *testing.T) {
	o := Origin{Topic: "events.server", Partition: 3, Offset: 123456789012}
	got, ok := originOf(&kgo.Record{Headers: o.Headers()})
	if !ok || got != o {
		t.Fatalf("round trip: got %+v %v, want %+v", got, ok, o)
	}
	for name, hs := range map[string][]kgo.RecordHeader{
		"none":              nil,
		"missing offset":    o.Headers()[:2],
		"negative offset":   append(o.Headers()[:2], kgo.RecordHeader{Key: HeaderOriginOffset, Value: []byte("-1")}),
		"partition not int": {o.Headers()[0], {Key: HeaderOriginPartition, Value: []byte("x")}, o.Headers()[2]},
		"empty topic":       {{Key: HeaderOriginTopic}, o.Headers()[1], o.Headers()[2]},
	} {
		if got, ok := originOf(&kgo.Record{Headers: hs}); ok {
			t.Errorf("%s: accepted as %+v", name, got)
		}
	}
}
