//! Metric ingestion and reads.
//!
//! Each logged batch is stored as one columnar chunk per metric series (aligned arrays of steps,
//! values and wall times; migration `20261201000001_metric_chunks`), so logging 1000 points is one
//! row insert rather than 1000. Idempotence per (run, key, step) is resolved when reading: where
//! several chunks hold a step, the chunk written last wins. Retries, duplicates and late arrivals
//! from asynchronous RL workers therefore all converge to one value per step, and no point is ever
//! dropped. Writers merge runs of small chunks (compaction) so that series logged a few points at a
//! time stay cheap to read.

use crate::error::{AppError, Result};
use chrono::{DateTime, Utc};
use crucible_types::{MetricBucket, MetricHistory, MetricPoint, MetricSeries, MetricSummary};
use sqlx::{FromRow, PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Points per INSERT statement (and so at most per chunk) in the bulk path: large enough to
/// amortise round trips, small enough to keep each chunk (~24 bytes a point) quick to rewrite.
const CHUNK: usize = 10_000;

/// Chunks with fewer points than this are merged by compaction.
const SMALL_CHUNK: usize = 256;

/// Compaction of a series runs once its newest this-many chunks are all small, so a series logged
/// one point at a time is read as ~n/256 chunks and each point is rewritten at most ~17 times.
const COMPACT_AFTER: usize = 16;

/// Times a write retries the series it could not resolve (created concurrently by another write).
const RESOLVE_ATTEMPTS: usize = 3;

/// Checks every point, naming the first bad one by index (`points[12].value`).
pub fn validate(points: &[MetricPoint]) -> Result<()> {
    for (i, p) in points.iter().enumerate() {
        crucible_types::check_key(&format!("points[{i}].key"), &p.key)?;
        if !p.value.is_finite() {
            return Err(AppError::invalid(
                format!("points[{i}].value"),
                "must be a finite number",
            ));
        }
        if p.step < 0 {
            return Err(AppError::invalid(
                format!("points[{i}].step"),
                "must not be negative",
            ));
        }
        if p.timestamp_ms.is_some() && p.time().is_none() {
            return Err(AppError::invalid(
                format!("points[{i}].timestamp_ms"),
                "must be milliseconds since 1970 within the years 1 to 9999",
            ));
        }
    }
    Ok(())
}

/// One point after [`dedupe`]: ((key, step), (value, wall time)).
type Unique<'a> = ((&'a str, i64), (f64, DateTime<Utc>));

/// Collapses repeats of (key, step) within one call (last one wins) and sorts by (key, step), as a
/// chunk holds each step once, in ascending order.
fn dedupe(
    points: &[MetricPoint],
    now: DateTime<Utc>,
) -> BTreeMap<(&str, i64), (f64, DateTime<Utc>)> {
    points
        .iter()
        .map(|p| ((p.key.as_str(), p.step), (p.value, p.time().unwrap_or(now))))
        .collect()
}

/// Aligned columns of one chunk (one logged batch of one series), or of several merged.
#[derive(Debug, PartialEq, FromRow)]
struct Chunk {
    steps: Vec<i64>,
    #[sqlx(rename = "vals")]
    values: Vec<f64>,
    #[sqlx(rename = "wall_times")]
    times: Vec<DateTime<Utc>>,
}

/// Merges chunks given in write order into one, ascending by step, where for a step held by
/// several chunks the last one's point wins.
fn merge(chunks: Vec<Chunk>) -> Chunk {
    let total = chunks.iter().map(|c| c.steps.len()).sum();
    let mut out = Chunk {
        steps: Vec::with_capacity(total),
        values: Vec::with_capacity(total),
        times: Vec::with_capacity(total),
    };
    // A trainer logging forward writes chunks whose step ranges ascend without overlap: concatenate.
    if chunks
        .windows(2)
        .all(|w| w[0].steps.last() < w[1].steps.first())
    {
        for c in chunks {
            out.steps.extend(c.steps);
            out.values.extend(c.values);
            out.times.extend(c.times);
        }
        return out;
    }
    let mut order: Vec<(i64, usize, usize)> = Vec::with_capacity(total);
    for (c, chunk) in chunks.iter().enumerate() {
        order.extend(chunk.steps.iter().enumerate().map(|(i, &s)| (s, c, i)));
    }
    // Stable: points of equal step stay in write order, so the last of each run wins.
    order.sort_by_key(|&(step, _, _)| step);
    for (n, &(step, c, i)) in order.iter().enumerate() {
        if order.get(n + 1).is_some_and(|next| next.0 == step) {
            continue;
        }
        out.steps.push(step);
        out.values.push(chunks[c].values[i]);
        out.times.push(chunks[c].times[i]);
    }
    out
}

/// Points of several series flattened into aligned columns, each series one 1-based inclusive
/// slice `lo..=hi` (Postgres array slice bounds), so one statement can write chunks of many series.
#[derive(Debug, Default)]
struct Slices {
    lo: Vec<i32>,
    hi: Vec<i32>,
    steps: Vec<i64>,
    values: Vec<f64>,
    times: Vec<DateTime<Utc>>,
}

impl Slices {
    /// Appends one series' points (ascending, unique steps) as the next slice.
    fn push(&mut self, points: impl IntoIterator<Item = (i64, f64, DateTime<Utc>)>) {
        // CHUNK bounds a statement's points far below i32::MAX.
        self.lo.push(self.steps.len() as i32 + 1);
        for (step, value, time) in points {
            self.steps.push(step);
            self.values.push(value);
            self.times.push(time);
        }
        self.hi.push(self.steps.len() as i32);
    }
}

/// Stores one chunk per key of `$2` (its points: slice `$3`..=`$4` of the arrays `$5`–`$7`),
/// creating series that are new. Existing series are share-locked (as the foreign-key check would
/// anyway, but before the chunk takes its `seq`), which is what lets [`compact`] know that no chunk
/// older than the ones it sees is still being written. Returns each key with its series id (NULL
/// where a concurrent write created the series after this statement's snapshot) and, when its new
/// chunk has fewer than `$8` points, how many of the series' `$9` newest earlier chunks do too.
const STORE_CHUNKS: &str = "
WITH k AS (SELECT * FROM unnest($2::text[], $3::int[], $4::int[]) AS k(key, lo, hi)),
     created AS (INSERT INTO metric_series (run_id, key) SELECT $1::uuid, key FROM k
                 ON CONFLICT (run_id, key) DO NOTHING RETURNING id, key),
     existing AS (SELECT id, key FROM metric_series WHERE run_id = $1 AND key IN (SELECT key FROM k)
                  FOR KEY SHARE),
     series AS (SELECT id, key FROM created UNION ALL SELECT id, key FROM existing),
     stored AS (INSERT INTO metric_chunks (series_id, steps, vals, wall_times)
                SELECT series.id, ($5::bigint[])[k.lo:k.hi], ($6::float8[])[k.lo:k.hi],
                       ($7::timestamptz[])[k.lo:k.hi]
                FROM k JOIN series USING (key))
SELECT k.key, series.id,
       CASE WHEN k.hi - k.lo + 1 < $8 THEN
           (SELECT count(*) FROM (SELECT cardinality(c.steps) AS n FROM metric_chunks c
                                  WHERE c.series_id = series.id ORDER BY c.seq DESC LIMIT $9) newest
            WHERE n < $8)
       END
FROM k LEFT JOIN series USING (key)";

/// Stores points sorted by (key, step) with unique (key, step) as one chunk per key, and returns
/// the series whose newest [`COMPACT_AFTER`] chunks are now all small (due for compaction).
async fn store_chunks(
    conn: &mut PgConnection,
    run_id: Uuid,
    points: &[Unique<'_>],
) -> Result<Vec<i64>> {
    let mut due = Vec::new();
    let mut pending: Vec<&Unique> = points.iter().collect();
    for _ in 0..RESOLVE_ATTEMPTS {
        let mut keys = Vec::new();
        let mut slices = Slices::default();
        for group in pending.chunk_by(|a, b| a.0.0 == b.0.0) {
            keys.push(group[0].0.0);
            slices.push(
                group
                    .iter()
                    .map(|&&((_, step), (value, time))| (step, value, time)),
            );
        }
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(STORE_CHUNKS)
            .bind(run_id)
            .bind(&keys)
            .bind(&slices.lo)
            .bind(&slices.hi)
            .bind(&slices.steps)
            .bind(&slices.values)
            .bind(&slices.times)
            .bind(SMALL_CHUNK as i32)
            .bind(COMPACT_AFTER as i64 - 1)
            .fetch_all(&mut *conn)
            .await?;
        let mut missing = Vec::new();
        for (key, id, small_before) in rows {
            match id {
                Some(id) if small_before == Some(COMPACT_AFTER as i64 - 1) => due.push(id),
                Some(_) => {}
                None => missing.push(key),
            }
        }
        if missing.is_empty() {
            return Ok(due);
        }
        // The next statement's snapshot sees the series the concurrent write committed.
        tracing::debug!(
            ?missing,
            "metric series created concurrently; storing their points again"
        );
        pending.retain(|((key, _), _)| missing.iter().any(|m| m == key));
    }
    Err(AppError::Conflict {
        field: None,
        message: "metric series are being created concurrently; retry the call".into(),
    })
}

/// Merges, for each series in `due`, its newest run of small chunks into one; a handful of
/// statements whatever the number of series.
///
/// The merged chunk takes the `seq` of the newest chunk it replaces, which is correct only if no
/// chunk between them in `seq` order is invisible here (still being written). Writers hold a share
/// lock on their series from before their chunk takes its `seq` until they commit; compaction takes
/// the exclusive lock, so it runs only where no other write of the series is in flight. Where one
/// is, compaction is skipped (never waited for, so it cannot deadlock) and a later write does it.
async fn compact(conn: &mut PgConnection, due: &[i64]) -> Result<()> {
    if due.is_empty() {
        return Ok(());
    }
    let locked: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM metric_series WHERE id = ANY($1) FOR UPDATE SKIP LOCKED",
    )
    .bind(due)
    .fetch_all(&mut *conn)
    .await?;
    if locked.is_empty() {
        return Ok(());
    }
    // Read under the lock: writes that committed meanwhile are visible to this statement.
    #[derive(FromRow)]
    struct Stored {
        series_id: i64,
        seq: i64,
        #[sqlx(flatten)]
        chunk: Chunk,
    }
    let newest: Vec<Stored> = sqlx::query_as(
        "SELECT c.series_id, c.seq, c.steps, c.vals, c.wall_times
         FROM unnest($1::bigint[]) AS s(id),
              LATERAL (SELECT * FROM metric_chunks WHERE series_id = s.id ORDER BY seq DESC LIMIT $2) c
         ORDER BY c.series_id, c.seq DESC",
    )
    .bind(&locked)
    .bind(COMPACT_AFTER as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut tails: BTreeMap<i64, Vec<(i64, Chunk)>> = BTreeMap::new();
    let mut ended = Vec::new();
    for Stored {
        series_id,
        seq,
        chunk,
    } in newest
    {
        // Each series' tail: its newest chunks down to the first big one.
        if chunk.steps.len() >= SMALL_CHUNK {
            ended.push(series_id);
        } else if !ended.contains(&series_id) {
            tails.entry(series_id).or_default().push((seq, chunk));
        }
    }
    let (mut kept_series, mut kept_seq, mut merged) = (Vec::new(), Vec::new(), Slices::default());
    let (mut gone_series, mut gone_seq) = (Vec::new(), Vec::new());
    for (series, mut tail) in tails.into_iter().filter(|(_, t)| t.len() >= 2) {
        tail.reverse();
        let (seqs, chunks): (Vec<i64>, Vec<Chunk>) = tail.into_iter().unzip();
        let (&keep, replaced) = seqs.split_last().expect("at least two chunks");
        let m = merge(chunks);
        merged.push(
            m.steps
                .into_iter()
                .zip(m.values)
                .zip(m.times)
                .map(|((s, v), t)| (s, v, t)),
        );
        kept_series.push(series);
        kept_seq.push(keep);
        gone_series.extend(replaced.iter().map(|_| series));
        gone_seq.extend_from_slice(replaced);
    }
    if kept_series.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH gone AS (DELETE FROM metric_chunks c USING unnest($8::bigint[], $9::bigint[]) AS g(series_id, seq)
                       WHERE c.series_id = g.series_id AND c.seq = g.seq)
         UPDATE metric_chunks c
         SET steps = ($5::bigint[])[u.lo:u.hi], vals = ($6::float8[])[u.lo:u.hi],
             wall_times = ($7::timestamptz[])[u.lo:u.hi]
         FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::int[]) AS u(series_id, seq, lo, hi)
         WHERE c.series_id = u.series_id AND c.seq = u.seq",
    )
    .bind(&kept_series)
    .bind(&kept_seq)
    .bind(&merged.lo)
    .bind(&merged.hi)
    .bind(&merged.steps)
    .bind(&merged.values)
    .bind(&merged.times)
    .bind(&gone_series)
    .bind(&gone_seq)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores the points and returns how many distinct (key, step) pairs were written.
/// Call inside a transaction: a batch is stored entirely or not at all.
pub async fn log(conn: &mut PgConnection, run_id: Uuid, points: &[MetricPoint]) -> Result<usize> {
    validate(points)?;
    let unique: Vec<Unique> = dedupe(points, Utc::now()).into_iter().collect();
    let mut due = Vec::new();
    for chunk in unique.chunks(CHUNK) {
        due.extend(store_chunks(conn, run_id, chunk).await?);
    }
    // Compaction comes last, after every share lock this call takes.
    due.sort_unstable();
    due.dedup();
    compact(conn, &due).await?;
    Ok(unique.len())
}

/// Every series of the given runs, merged, ordered by run and key.
async fn series_of_runs(pool: &PgPool, run_ids: &[Uuid]) -> Result<Vec<(Uuid, String, Chunk)>> {
    #[derive(FromRow)]
    struct Keyed {
        run_id: Uuid,
        key: String,
        #[sqlx(flatten)]
        chunk: Chunk,
    }
    let rows: Vec<Keyed> = sqlx::query_as(
        "SELECT s.run_id, s.key, c.steps, c.vals, c.wall_times
         FROM metric_series s JOIN metric_chunks c ON c.series_id = s.id
         WHERE s.run_id = ANY($1) ORDER BY s.run_id, s.key, c.seq",
    )
    .bind(run_ids)
    .fetch_all(pool)
    .await?;
    let mut grouped: Vec<(Uuid, String, Vec<Chunk>)> = Vec::new();
    for Keyed { run_id, key, chunk } in rows {
        match grouped.last_mut() {
            Some((r, k, chunks)) if *r == run_id && *k == key => chunks.push(chunk),
            _ => grouped.push((run_id, key, vec![chunk])),
        }
    }
    Ok(grouped
        .into_iter()
        .map(|(run, key, chunks)| (run, key, merge(chunks)))
        .collect())
}

/// Every key of the run with its count, range and latest value.
pub async fn summaries(pool: &PgPool, run_id: Uuid) -> Result<Vec<MetricSummary>> {
    Ok(series_of_runs(pool, &[run_id])
        .await?
        .into_iter()
        .map(|(_, key, points)| MetricSummary {
            key,
            count: points.steps.len() as i64,
            last_step: points.steps.last().copied().unwrap_or_default(),
            last_value: points.values.last().copied().unwrap_or_default(),
            min: points.values.iter().copied().fold(f64::INFINITY, f64::min),
            max: points
                .values
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max),
        })
        .collect())
}

/// The point at the highest step of one metric, as MLflow's `Run.data.metrics` carries it.
#[derive(Debug, Clone)]
pub struct LatestPoint {
    /// Metric name.
    pub key: String,
    /// Highest step logged.
    pub step: i64,
    /// Value at that step.
    pub value: f64,
    /// Its wall time, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Each run's metrics with their latest points, by key, for MLflow's run listings.
pub async fn latest(pool: &PgPool, run_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<LatestPoint>>> {
    let mut out: HashMap<Uuid, Vec<LatestPoint>> = HashMap::new();
    for (run, key, points) in series_of_runs(pool, run_ids).await? {
        if let (Some(&step), Some(&value), Some(time)) = (
            points.steps.last(),
            points.values.last(),
            points.times.last(),
        ) {
            out.entry(run).or_default().push(LatestPoint {
                key,
                step,
                value,
                timestamp_ms: time.timestamp_millis(),
            });
        }
    }
    Ok(out)
}

/// One series' points, merged; not found when the run has no such metric.
async fn points(pool: &PgPool, run_id: Uuid, key: &str) -> Result<Chunk> {
    let chunks: Vec<Chunk> = sqlx::query_as(
        "SELECT c.steps, c.vals, c.wall_times
         FROM metric_series s JOIN metric_chunks c ON c.series_id = s.id
         WHERE s.run_id = $1 AND s.key = $2 ORDER BY c.seq",
    )
    .bind(run_id)
    .bind(key)
    .fetch_all(pool)
    .await?;
    if chunks.is_empty() {
        return Err(AppError::NotFound(format!(
            "metric {key:?} of run {run_id}"
        )));
    }
    Ok(merge(chunks))
}

/// Every point of one metric, by step.
pub async fn history(pool: &PgPool, run_id: Uuid, key: &str) -> Result<MetricHistory> {
    let points = points(pool, run_id, key).await?;
    Ok(MetricHistory {
        key: key.to_string(),
        steps: points.steps,
        values: points.values,
        timestamps_ms: points
            .times
            .iter()
            .map(DateTime::timestamp_millis)
            .collect(),
    })
}

/// Bounds on the bucket count a chart may ask for.
pub const MAX_BUCKETS: i32 = 2000;

/// Groups points (ascending by step) into `buckets` equal-width step buckets over
/// [first step, last step + 1), each with min, max and last value; empty buckets are left out.
fn bucketize(points: &Chunk, buckets: i32) -> Vec<MetricBucket> {
    let (Some(&lo), Some(&last)) = (points.steps.first(), points.steps.last()) else {
        return Vec::new();
    };
    // In floats: `last - lo + 1` overflows when a series spans every step up to i64::MAX.
    let width = (last - lo) as f64 + 1.0;
    let mut out: Vec<(i64, MetricBucket)> = Vec::new();
    for ((&step, &value), time) in points.steps.iter().zip(&points.values).zip(&points.times) {
        // Clamped: float rounding can put the last step of a huge range one bucket too far.
        let bucket =
            (((step - lo) as f64 / width * f64::from(buckets)) as i64).min(i64::from(buckets) - 1);
        match out.last_mut() {
            Some((b, m)) if *b == bucket => {
                m.step_max = step;
                m.min = m.min.min(value);
                m.max = m.max.max(value);
                m.last = value;
                m.count += 1;
                m.last_time_ms = time.timestamp_millis();
            }
            _ => out.push((
                bucket,
                MetricBucket {
                    step_min: step,
                    step_max: step,
                    min: value,
                    max: value,
                    last: value,
                    count: 1,
                    last_time_ms: time.timestamp_millis(),
                },
            )),
        }
    }
    out.into_iter().map(|(_, m)| m).collect()
}

/// About `buckets` equal-width step buckets of one metric, each with min, max and last value.
pub async fn downsample(
    pool: &PgPool,
    run_id: Uuid,
    key: &str,
    buckets: i32,
) -> Result<MetricSeries> {
    if !(1..=MAX_BUCKETS).contains(&buckets) {
        return Err(AppError::invalid(
            "buckets",
            format!("must be between 1 and {MAX_BUCKETS}"),
        ));
    }
    let points = points(pool, run_id, key).await?;
    Ok(MetricSeries {
        key: key.to_string(),
        total_points: points.steps.len() as i64,
        buckets: bucketize(&points, buckets),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, step: i64, value: f64) -> MetricPoint {
        MetricPoint {
            key: key.into(),
            step,
            value,
            timestamp_ms: None,
        }
    }

    fn chunk(points: &[(i64, f64)]) -> Chunk {
        let t = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        Chunk {
            steps: points.iter().map(|p| p.0).collect(),
            values: points.iter().map(|p| p.1).collect(),
            times: points.iter().map(|_| t).collect(),
        }
    }

    #[test]
    fn repeats_within_a_call_collapse_to_the_last_value() {
        let pts = [
            point("loss", 1, 1.0),
            point("loss", 1, 2.0),
            point("acc", 1, 0.5),
        ];
        let d = dedupe(&pts, Utc::now());
        assert_eq!(d.len(), 2);
        assert_eq!(d[&("loss", 1)].0, 2.0);
    }

    #[test]
    fn validation_names_the_bad_point() {
        let err = validate(&[point("a", 0, 1.0), point("b", 0, f64::NAN)]).unwrap_err();
        assert!(matches!(err, AppError::Invalid { ref field, .. } if field == "points[1].value"));
        assert!(validate(&[point(" ", 0, 1.0)]).is_err());
        assert!(validate(&[point("a", -1, 1.0)]).is_err());
    }

    #[test]
    fn ascending_chunks_concatenate() {
        let merged = merge(vec![chunk(&[(0, 1.0), (1, 2.0)]), chunk(&[(2, 3.0)])]);
        assert_eq!(merged, chunk(&[(0, 1.0), (1, 2.0), (2, 3.0)]));
    }

    #[test]
    fn the_chunk_written_last_wins_each_step_and_late_points_are_kept() {
        let merged = merge(vec![
            chunk(&[(5, 5.0), (6, 6.0)]),
            chunk(&[(1, 1.0), (5, 50.0)]),
            chunk(&[(0, 0.0), (6, 60.0), (9, 9.0)]),
            chunk(&[(5, 500.0)]),
        ]);
        assert_eq!(
            merged,
            chunk(&[(0, 0.0), (1, 1.0), (5, 500.0), (6, 60.0), (9, 9.0)])
        );
    }

    #[test]
    fn buckets_cover_every_point_with_min_max_and_last() {
        let points = chunk(&[(0, 3.0), (1, -1.0), (2, 2.0), (3, 7.0), (10, 4.0)]);
        let b = bucketize(&points, 2);
        // Width 11 over 2 buckets: steps 0..=5 and 6..=10.
        assert_eq!(b.len(), 2);
        assert_eq!(
            (
                b[0].step_min,
                b[0].step_max,
                b[0].min,
                b[0].max,
                b[0].last,
                b[0].count
            ),
            (0, 3, -1.0, 7.0, 7.0, 4)
        );
        assert_eq!((b[1].step_min, b[1].last, b[1].count), (10, 4.0, 1));
        assert_eq!(
            bucketize(&points, 2000).len(),
            5,
            "empty buckets are left out"
        );
        // Steps up to i64::MAX: the width must not overflow, the last step stays in the last bucket.
        let extremes = chunk(&[(0, 1.0), (i64::MAX / 2 + 1, 3.0), (i64::MAX, 2.0)]);
        let b = bucketize(&extremes, 2);
        assert_eq!(
            (b.len(), b[1].count, b[1].step_max, b[1].max, b[1].last),
            (2, 2, i64::MAX, 3.0, 2.0)
        );
    }
}
