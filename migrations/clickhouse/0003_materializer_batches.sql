-- The materializer's write-ahead record of each load: the Kafka range it covers and the
-- deduplication token it is inserted under. Written before the load, read after a
-- restart so a load that may have landed is rebuilt with the same boundaries and token.
CREATE TABLE IF NOT EXISTS materializer_batches
(
    topic        LowCardinality(String),
    partition    UInt32,
    first_offset UInt64,
    last_offset  UInt64,
    token        String,
    created_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, first_offset)
TTL toDateTime(created_at) + INTERVAL 30 DAY;
