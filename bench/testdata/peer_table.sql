CREATE TABLE peer_kafka (
    message_id String, type String, customer_id String, user_id String, anonymous_id String,
    event String, properties String, traits String, event_time DateTime, event_time_ms UInt64,
    sent_at_ms UInt64, received_at_ms UInt64, source String, lane String, kafka_topic String
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
    '' AS previous_id, '' AS group_id, '' AS context,
    '' AS context_campaign_source, '' AS context_campaign_medium, '' AS context_campaign_name,
    '' AS context_campaign_term, '' AS context_campaign_content,
    '' AS context_page_url, '' AS context_page_path, '' AS context_page_referrer, '' AS context_page_title,
    '' AS context_ip, '' AS context_user_agent, '' AS context_locale, '' AS context_timezone,
    '' AS context_library_name, '' AS context_library_version
FROM peer_kafka
