-- The append-only event log: one table for every subject, the source of truth that
-- features and training sets are replayed from.
--
-- Exactly once (docs/materializer.md): each load carries an insert_deduplication_token
-- derived from the Kafka positions it covers, so a load replayed after a crash is dropped
-- whole (the deduplication window below keeps the last 10,000 tokens); ReplacingMergeTree
-- over a key ending in event_id folds a re-posted event (same event_id) into one row for
-- every query that reads with FINAL (the `final = 1` setting).
CREATE TABLE IF NOT EXISTS events
(
    event_id        String,
    subject         LowCardinality(String),
    entity_key      String,
    occurred_at     DateTime64(3, 'UTC'),
    ingested_at     DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    producer        LowCardinality(String),
    op              LowCardinality(String),
    schema_id       UInt32,
    schema_version  UInt32,
    payload_version UInt32,
    payload         String,
    kafka_topic     LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (subject, entity_key, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
