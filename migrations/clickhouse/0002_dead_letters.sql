-- Records that reached a governed topic but could not be loaded: not in the wire format,
-- an unknown schema id, an undecodable body, a failed migration. Raw bytes are kept
-- (key and value as they were on Kafka) with the position and the reason.
CREATE TABLE IF NOT EXISTS dead_letters
(
    topic     LowCardinality(String),
    partition UInt32,
    offset    UInt64,
    key       String,
    value     String,
    error     String,
    at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset)
SETTINGS non_replicated_deduplication_window = 10000;
