-- Events the gateway refused (loaded from the `sg.rejected` topic), beside `dead_letters`:
-- the raw event text, every violation (JSON), the reason and who posted it. `id` names a
-- rejection in GET /v1/rejections/{subject} and POST .../{id}/replay.
CREATE TABLE IF NOT EXISTS rejections
(
    id              String,
    subject         LowCardinality(String),
    reason          LowCardinality(String),
    violations      String,
    event           String,
    event_truncated Bool,
    event_id        String,
    producer        LowCardinality(String),
    received_at     DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (subject, id)
SETTINGS non_replicated_deduplication_window = 10000;

-- The CloudEvents headers of a dead-lettered record (JSON [[name, base64 value], ...]), so
-- that a replay produces it again exactly as it was.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS headers String DEFAULT '';

-- Rejections and dead letters replayed into their governed topics: each at most once.
CREATE TABLE IF NOT EXISTS replays
(
    kind        LowCardinality(String),
    id          String,
    subject     LowCardinality(String),
    event_id    String,
    team        LowCardinality(String),
    topic       String,
    partition   UInt32,
    offset      UInt64,
    replayed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (kind, id);
