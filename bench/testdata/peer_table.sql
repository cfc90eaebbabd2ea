CREATE TABLE peer_kafka (
    message_id String, type String, customer_id String, user_id String, anonymous_id String,
    event String, properties String, traits String, event_time DateTime, event_time_ms UInt64,
    sent_at_ms UInt64, received_at_ms UInt64, source String, lane String, kafka_topic String,
    previous_id String, group_id String, context String, context_campaign_source String, context_campaign_medium String, context_campaign_name String, context_campaign_term String, context_campaign_content String, context_page_url String, context_page_path String, context_page_referrer String, context_page_title String, context_ip String, context_user_agent String, context_locale String, context_timezone String, context_library_name String, context_library_version String
) ENGINE = Kafka SETTINGS
    kafka_broker_list = '127.0.0.1:19092,kafka-1.local:9092',
    kafka_topic_list = 'bench.x.peer.web,bench.x.peer.server',
    kafka_group_name = 'bench-x-peer',
    kafka_format = 'JSONEachRow',
    kafka_num_consumers = 2

CREATE MATERIALIZED VIEW peer_to_events TO events AS
SELECT message_id, type, customer_id, user_id, anonymous_id, event, properties, traits,
    event_time, event_time_ms, sent_at_ms, received_at_ms,
    toUInt64(toUnixTimestamp(now())) * 1000 AS ingest_time_ms,
    source, lane, kafka_topic, toInt32(0) AS kafka_partition, toInt64(0) AS kafka_offset,
    previous_id, group_id, context, context_campaign_source, context_campaign_medium, context_campaign_name, context_campaign_term, context_campaign_content, context_page_url, context_page_path, context_page_referrer, context_page_title, context_ip, context_user_agent, context_locale, context_timezone, context_library_name, context_library_version
FROM peer_kafka
