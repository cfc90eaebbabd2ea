package bench

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
)

// The peer's objects in its database.
const (
	peerKafkaTable = "peer_kafka"
	peerView       = "peer_to_events"
)

// peerContextColumns are the String columns of events for the message's
// context and the group and alias calls, in ingest.EventRows.Ctx's order
// (a test checks them against ingest.EventColumns).
var peerContextColumns = []string{"previous_id", "group_id", "context",
	"context_campaign_source", "context_campaign_medium", "context_campaign_name", "context_campaign_term", "context_campaign_content",
	"context_page_url", "context_page_path", "context_page_referrer", "context_page_title",
	"context_ip", "context_user_agent", "context_locale", "context_timezone", "context_library_name", "context_library_version"}

// peerColumns are the flat record's columns as the Kafka engine reads them.
var peerColumns = `message_id String, type String, customer_id String, user_id String, anonymous_id String,
    event String, properties String, traits String, event_time DateTime, event_time_ms UInt64,
    sent_at_ms UInt64, received_at_ms UInt64, source String, lane String, kafka_topic String,
    ` + strings.Join(peerContextColumns, " String, ") + ` String`

// peerViewSQL moves what the engine reads into events, selecting every
// column (18.16 fails an insert through a view that leaves one to its
// DEFAULT). 18.16's Kafka engine has no _partition or _offset virtual
// columns, so those are 0; ingest_time_ms is the insert's second.
var peerViewSQL = `CREATE MATERIALIZED VIEW ` + peerView + ` TO events AS
SELECT message_id, type, customer_id, user_id, anonymous_id, event, properties, traits,
    event_time, event_time_ms, sent_at_ms, received_at_ms,
    toUInt64(toUnixTimestamp(now())) * 1000 AS ingest_time_ms,
    source, lane, kafka_topic, toInt32(0) AS kafka_partition, toInt64(0) AS kafka_offset,
    ` + strings.Join(peerContextColumns, ", ") + `
FROM ` + peerKafkaTable

var (
	brokerAddrRe = regexp.MustCompile(`^[A-Za-z0-9.\-]+:[0-9]{1,5}$`)
	kafkaNameRe  = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,200}$`)
)

// peerTableSQL is the Kafka engine table. Engine settings are literals (they
// cannot be bound), so every value is validated against a strict pattern
// before it is quoted.
func peerTableSQL(brokers, topics []string, group string, consumers int) (string, error) {
	for _, b := range brokers {
		if !brokerAddrRe.MatchString(b) {
			return "", fmt.Errorf("broker address %q is not host:port", b)
		}
	}
	for _, t := range append(append([]string(nil), topics...), group) {
		if !kafkaNameRe.MatchString(t) {
			return "", fmt.Errorf("kafka name %q has characters outside [A-Za-z0-9._-]", t)
		}
	}
	if consumers < 1 {
		return "", fmt.Errorf("kafka_num_consumers must be at least 1, got %d", consumers)
	}
	return fmt.Sprintf(`CREATE TABLE %s (
    %s
) ENGINE = Kafka SETTINGS
    kafka_broker_list = '%s',
    kafka_topic_list = '%s',
    kafka_group_name = '%s',
    kafka_format = 'JSONEachRow',
    kafka_num_consumers = %d`, peerKafkaTable, peerColumns, strings.Join(brokers, ","), strings.Join(topics, ","), group, consumers), nil
}

// commitAtStart commits offset 0 of every partition of topics for group.
// librdkafka starts a group without committed offsets at the end of the
// log, so without this the peer would see none of the pre-produced data.
func commitAtStart(ctx context.Context, seeds []string, bc broker.Config, group string, topics []string) error {
	cl, err := kgo.NewClient(broker.ClientOpts(seeds, nil)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	for _, t := range topics {
		for p := range bc.Partitions {
			offs.Add(kadm.Offset{Topic: t, Partition: p, At: 0, LeaderEpoch: -1})
		}
	}
	resp, err := adm.CommitOffsets(ctx, group, offs)
	if err != nil {
		return fmt.Errorf("commit peer group %s at the start: %w", group, err)
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("commit peer group %s at the start: %w", group, err)
	}
	return nil
}
