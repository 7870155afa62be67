-- Every training set extracted through the server: its spine (an observation spine's name,
-- or a subject for a subject spine), the feature versions it joined, the team and the rows.
-- The lineage a schema change's impact and the console read: which spines are built on a
-- feature.
CREATE TABLE IF NOT EXISTS training_runs
(
    spine      String,
    spine_kind LowCardinality(String),
    features   Array(String),
    team       LowCardinality(String),
    rows       UInt64,
    at         DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (spine, at);
