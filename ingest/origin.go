package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a backfill puts on a re-ingested record so the row keeps the
// Kafka position the event first had. Planning compares Kafka offsets with
// the offsets present in ClickHouse, so a re-ingested event must be found
// at its original position, not at its position in events.backfill.
const (
	HeaderOriginTopic     = "tideline-origin-topic"
	HeaderOriginPartition = "tideline-origin-partition"
	HeaderOriginOffset    = "tideline-origin-offset"
)

// Origin is the Kafka position an event was first produced at.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Headers returns the record headers that carry o.
func (o Origin) Headers() []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderOriginTopic, Value: []byte(o.Topic)},
		{Key: HeaderOriginPartition, Value: strconv.AppendInt(nil, int64(o.Partition), 10)},
		{Key: HeaderOriginOffset, Value: strconv.AppendInt(nil, o.Offset, 10)},
	}
}

// originOf reads the origin headers of r; ok is false when r has none or
// they are malformed, and the record's own position then stands.
func originOf(r *kgo.Record) (o Origin, ok bool) {
	var seen int
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderOriginTopic:
			o.Topic = string(h.Value)
			seen |= 1
		case HeaderOriginPartition:
			p, err := strconv.ParseInt(string(h.Value), 10, 32)
			if err != nil || p < 0 {
				return Origin{}, false
			}
			o.Partition = int32(p)
			seen |= 2
		case HeaderOriginOffset:
			off, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil || off < 0 {
				return Origin{}, false
			}
			o.Offset = off
			seen |= 4
		}
	}
	if seen != 7 || o.Topic == "" {
		return Origin{}, false
	}
	return o, true
}

// originPattern is an entry of a source's allowed_origins: a web origin
// (scheme://host[:port]), with "*" as the port for any port, or "*" alone
// for every origin.
type originPattern struct {
	any                bool
	scheme, host, port string // port "*": any; "": the scheme's default
}

func parseOriginPattern(s string) (originPattern, error) {
	if s == "*" {
		return originPattern{any: true}, nil
	}
	p, err := splitOrigin(strings.Replace(s, ":*", ":0", 1))
	if err != nil {
		return originPattern{}, fmt.Errorf("%q: %w (e.g. https://shop.example.com or http://localhost:*)", s, err)
	}
	if strings.HasSuffix(s, ":*") {
		p.port = "*"
	}
	return p, nil
}

// splitOrigin parses an Origin header's value.
func splitOrigin(s string) (originPattern, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return originPattern{}, err
	case u.Scheme != "http" && u.Scheme != "https":
		return originPattern{}, errors.New("the scheme must be http or https")
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return originPattern{}, errors.New("an origin is scheme://host[:port] and nothing more")
	}
	port := u.Port()
	if port == "80" && u.Scheme == "http" || port == "443" && u.Scheme == "https" {
		port = ""
	}
	return originPattern{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: port}, nil
}

func (p originPattern) matches(origin string) bool {
	if p.any {
		return true
	}
	o, err := splitOrigin(origin)
	if err != nil {
		return false
	}
	return o.scheme == p.scheme && o.host == p.host && (p.port == "*" || o.port == p.port)
}
