-- Observations (labels) for training sets: one row per observed outcome, grouped into
-- named spines. `entities` maps an entity type (user, post, ...) to its key, so each
-- feature joins on its own entity; `labels` is a JSON object of label values.
-- A row re-posted with the same (spine, observation_id) replaces the earlier one for every
-- query that reads with FINAL, which training-set extraction always does.
CREATE TABLE IF NOT EXISTS observations
(
    spine          LowCardinality(String),
    observation_id String,
    observed_at    DateTime64(3, 'UTC'),
    entities       Map(LowCardinality(String), String),
    labels         String,
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (spine, observation_id);
