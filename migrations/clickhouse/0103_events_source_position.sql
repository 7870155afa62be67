-- Where a CDC change was read from in its database: the PostgreSQL LSN and transaction id
-- Debezium reports (null for events posted over HTTP). Changes committed in the same
-- millisecond can be put in commit order from `events` alone:
-- ORDER BY occurred_at, source_lsn.
ALTER TABLE events ADD COLUMN IF NOT EXISTS source_lsn Nullable(UInt64) AFTER op;
ALTER TABLE events ADD COLUMN IF NOT EXISTS source_txid Nullable(UInt64) AFTER source_lsn;
