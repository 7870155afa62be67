-- The team that owns each observation spine: the first team to write to a spine owns it;
-- only that team (or admin) may add or replace its observations. The earliest row of a
-- spine is its owner, so two teams racing to create one agree on who won.
CREATE TABLE IF NOT EXISTS spine_owners
(
    spine      String,
    team       String,
    claimed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (spine, claimed_at, team);
