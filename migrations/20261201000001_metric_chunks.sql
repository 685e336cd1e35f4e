-- Metric points move from one row per point to columnar chunks: one row per logged batch and metric
-- series, holding that batch's steps, values and wall times as aligned arrays. Logging 1000 points is
-- then one heap row and one primary-key entry instead of 1000 of each (the per-row work was most of
-- the cost of a batch). Idempotence per (run, key, step) moves to the readers: where several chunks
-- hold the same step, the one written last (highest seq) wins. Writers merge runs of small chunks
-- (compaction), so series logged a few points at a time stay cheap to read.
-- See server/src/store/metrics.rs.
CREATE TABLE metric_chunks (
    series_id   bigint NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    steps       bigint[] NOT NULL,
    vals        double precision[] NOT NULL,
    wall_times  timestamptz[] NOT NULL,
    PRIMARY KEY (series_id, seq),
    -- Steps ascend and are unique within a chunk (the writer guarantees it); the arrays are aligned.
    CHECK (cardinality(steps) >= 1 AND cardinality(vals) = cardinality(steps)
           AND cardinality(wall_times) = cardinality(steps))
);

-- A 1000-point chunk is ~24 kB, so it is always TOASTed. lz4 makes that ~3x cheaper than the default
-- pglz (measured: 0.6 ms vs 2 ms per chunk insert); a Postgres built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE metric_chunks
        ALTER COLUMN steps SET COMPRESSION lz4,
        ALTER COLUMN vals SET COMPRESSION lz4,
        ALTER COLUMN wall_times SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this Postgres has no lz4: metric chunks use the default compression';
END
$$;

-- Existing points become chunks of up to 1000 consecutive steps per series.
INSERT INTO metric_chunks (series_id, steps, vals, wall_times)
SELECT series_id, array_agg(step ORDER BY step), array_agg(value ORDER BY step),
       array_agg(wall_time ORDER BY step)
FROM (SELECT p.*, (row_number() OVER (PARTITION BY p.series_id ORDER BY p.step) - 1) / 1000 AS part
      FROM metric_points p JOIN metric_series s ON s.id = p.series_id) numbered
GROUP BY series_id, part
ORDER BY series_id, part;

-- Chunks reference their series with ON DELETE CASCADE (one check per chunk is cheap), so the
-- trigger that stood in for the per-point foreign key goes with the table.
DROP TRIGGER metric_series_delete_points ON metric_series;
DROP FUNCTION delete_series_points();
DROP TABLE metric_points;
