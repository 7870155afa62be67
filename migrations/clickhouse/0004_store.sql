-- A random identity of this store, created once. The materializer's Kafka consumer group
-- is named after it, so the committed offsets belong to the store the rows landed in
-- (two stores never share a group; processes loading one store do).
CREATE TABLE IF NOT EXISTS store
(
    id         UUID,
    created_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY tuple();

INSERT INTO store SELECT generateUUIDv4(), now64(3, 'UTC') WHERE (SELECT count() FROM store) = 0;
