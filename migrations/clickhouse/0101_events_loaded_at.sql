-- When ClickHouse took each event in (never sent by the loader). Feature backfills split
-- the log at a moment T0 with it: materialized views take events loaded at or after T0,
-- the backfill those loaded before, so each event is counted exactly once.
ALTER TABLE events ADD COLUMN IF NOT EXISTS loaded_at DateTime64(3, 'UTC') DEFAULT now64(3);
