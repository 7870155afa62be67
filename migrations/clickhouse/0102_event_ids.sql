-- First write wins: every (subject, event_id) the log holds, with the ingested_at of its
-- first copy. The loader looks a load's ids up here (by primary key) and inserts only
-- the events it has not stored yet, so `events` holds each id once for every query,
-- plain count() included, and a re-post changes nothing (docs/materializer.md).
CREATE TABLE IF NOT EXISTS event_ids
(
    subject     LowCardinality(String),
    event_id    String,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (subject, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- the ids of events loaded before this table existed
INSERT INTO event_ids (subject, event_id, ingested_at)
SELECT subject, event_id, min(ingested_at) FROM events GROUP BY subject, event_id;
