-- Feature definitions, one row per (name, version). A new row for the same key replaces the
-- old one (status changes, metadata edits, rebuild generations): read with FINAL.
-- status: backfilling (not served yet), active, deleted, failed.
-- generation: bumped by `sluicegate features rebuild`; the feature's tables carry it in
-- their names so a rebuild fills new tables while the old ones keep serving.
CREATE TABLE IF NOT EXISTS feature_definitions
(
    name       String,
    version    UInt32,
    generation UInt32,
    spec       String,
    status     LowCardinality(String),
    owner      String,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (name, version);
