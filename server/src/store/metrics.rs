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
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Points per INSERT statement (and so at most per chunk) in the bulk path: large enough to
/// amortise round trips, small enough to keep each chunk (~24 bytes a point) quick to rewrite.
const CHUNK: usize = 10_000;

/// Chunks with fewer points than this are merged by compaction.
const SMALL_CHUNK: usize = 256;

/// Compaction of a series runs once its newest this-many chunks are all small, so a series logged
/// one point at a time is read as ~n/256 chunks and each point is rewritten at most ~16 times.
const COMPACT_AFTER: usize = 16;

/// Times a write retries the series it could not resolve (created concurrently by another write).
const RESOLVE_ATTEMPTS: usize = 3;

/// Checks every point, naming the first bad one by index (`points[12].value`).
pub fn validate(points: &[MetricPoint]) -> Result<()> {
    for (i, p) in points.iter().enumerate() {
        if p.key.trim().is_empty() || p.key.len() > 250 {
            return Err(AppError::invalid(
                format!("points[{i}].key"),
                "must be 1–250 characters",
            ));
        }
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
        .map(|p| {
            (
                (p.key.as_str(), p.step),
                (p.value, p.timestamp.unwrap_or(now)),
            )
        })
        .collect()
}

/// Aligned columns of one chunk (one logged batch of one series), or of several merged.
#[derive(Debug, Default, Clone, PartialEq)]
struct Chunk {
    steps: Vec<i64>,
    values: Vec<f64>,
    times: Vec<DateTime<Utc>>,
}

impl From<(Vec<i64>, Vec<f64>, Vec<DateTime<Utc>>)> for Chunk {
    fn from((steps, values, times): (Vec<i64>, Vec<f64>, Vec<DateTime<Utc>>)) -> Self {
        Chunk {
            steps,
            values,
            times,
        }
    }
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

/// Stores one chunk per key of `$2` (`$3`..`$4`: its 1-based slice of the point arrays `$5`–`$7`),
/// creating series that are new. Existing series are share-locked (as the foreign-key check would
/// anyway, but before the chunk takes its `seq`), which is what lets [`compact_if_due`] know that no
/// chunk older than the ones it sees is still being written. Returns each key with its series id,
/// or NULL where the series was created by a concurrent write this statement cannot see yet.
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
SELECT k.key, series.id FROM k LEFT JOIN series USING (key)";

/// Stores points sorted by (key, step) with unique (key, step) as one chunk per key, and returns
/// the series ids of the keys whose new chunk is small (candidates for compaction).
async fn store_chunks(
    conn: &mut PgConnection,
    run_id: Uuid,
    points: &[Unique<'_>],
) -> Result<Vec<i64>> {
    let mut small = Vec::new();
    let mut pending: Vec<&Unique> = points.iter().collect();
    for _ in 0..RESOLVE_ATTEMPTS {
        let mut keys: Vec<&str> = Vec::new();
        let (mut lo, mut hi) = (Vec::<i32>::new(), Vec::<i32>::new());
        let mut sizes: HashMap<&str, usize> = HashMap::new();
        let mut steps = Vec::with_capacity(pending.len());
        let mut values = Vec::with_capacity(pending.len());
        let mut times = Vec::with_capacity(pending.len());
        for (n, &&((key, step), (value, time))) in pending.iter().enumerate() {
            // Postgres array slices are 1-based and inclusive; CHUNK keeps these far below i32::MAX.
            let index = n as i32 + 1;
            if keys.last() != Some(&key) {
                keys.push(key);
                lo.push(index);
                hi.push(index);
            }
            *hi.last_mut().expect("a key was pushed") = index;
            *sizes.entry(key).or_default() += 1;
            steps.push(step);
            values.push(value);
            times.push(time);
        }
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(STORE_CHUNKS)
            .bind(run_id)
            .bind(&keys)
            .bind(&lo)
            .bind(&hi)
            .bind(&steps)
            .bind(&values)
            .bind(&times)
            .fetch_all(&mut *conn)
            .await?;
        let mut missing = Vec::new();
        for (key, id) in rows {
            match id {
                Some(id) if sizes.get(key.as_str()).is_some_and(|&n| n < SMALL_CHUNK) => {
                    small.push(id)
                }
                Some(_) => {}
                None => missing.push(key),
            }
        }
        if missing.is_empty() {
            return Ok(small);
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

/// Merges the newest chunks of a series into one when the newest [`COMPACT_AFTER`] are all small.
///
/// The merged chunk takes the `seq` of the newest chunk it replaces, which is correct only if no
/// chunk between them in `seq` order is invisible here (still being written). Writers hold a share
/// lock on their series from before their chunk takes its `seq` until they commit; compaction takes
/// the exclusive lock, so it runs only when no other write of the series is in flight. When one is,
/// compaction is skipped (never waited for, so it cannot deadlock) and a later write does it.
async fn compact_if_due(conn: &mut PgConnection, series_id: i64) -> Result<()> {
    const NEWEST: &str = "SELECT cardinality(steps) FROM metric_chunks WHERE series_id = $1 ORDER BY seq DESC LIMIT $2";
    let sizes: Vec<i32> = sqlx::query_scalar(NEWEST)
        .bind(series_id)
        .bind(COMPACT_AFTER as i64)
        .fetch_all(&mut *conn)
        .await?;
    if sizes.len() < COMPACT_AFTER || sizes.iter().any(|&n| n as usize >= SMALL_CHUNK) {
        return Ok(());
    }
    let locked = sqlx::query("SELECT 1 FROM metric_series WHERE id = $1 FOR UPDATE SKIP LOCKED")
        .bind(series_id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !locked {
        return Ok(());
    }
    // Read again under the lock: writes that committed meanwhile are visible to this statement.
    let newest: Vec<(i64, Vec<i64>, Vec<f64>, Vec<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT seq, steps, vals, wall_times FROM metric_chunks
         WHERE series_id = $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(series_id)
    .bind(COMPACT_AFTER as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut tail: Vec<(i64, Chunk)> = newest
        .into_iter()
        .map(|(seq, steps, values, times)| (seq, Chunk::from((steps, values, times))))
        .take_while(|(_, c)| c.steps.len() < SMALL_CHUNK)
        .collect();
    if tail.len() < 2 {
        return Ok(());
    }
    tail.reverse();
    let (seqs, chunks): (Vec<i64>, Vec<Chunk>) = tail.into_iter().unzip();
    let (&keep, replaced) = seqs.split_last().expect("at least two chunks");
    let merged = merge(chunks);
    sqlx::query(
        "UPDATE metric_chunks SET steps = $3, vals = $4, wall_times = $5
         WHERE series_id = $1 AND seq = $2",
    )
    .bind(series_id)
    .bind(keep)
    .bind(&merged.steps)
    .bind(&merged.values)
    .bind(&merged.times)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM metric_chunks WHERE series_id = $1 AND seq = ANY($2)")
        .bind(series_id)
        .bind(replaced)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores the points and returns how many distinct (key, step) pairs were written.
/// Call inside a transaction: a batch is stored entirely or not at all.
pub async fn log(conn: &mut PgConnection, run_id: Uuid, points: &[MetricPoint]) -> Result<usize> {
    validate(points)?;
    let unique: Vec<Unique> = dedupe(points, Utc::now()).into_iter().collect();
    let mut small = Vec::new();
    for chunk in unique.chunks(CHUNK) {
        small.extend(store_chunks(conn, run_id, chunk).await?);
    }
    // Compaction comes last, after every share lock this call takes.
    small.sort_unstable();
    small.dedup();
    for series_id in small {
        compact_if_due(conn, series_id).await?;
    }
    Ok(unique.len())
}

/// Every series of the given runs, merged, ordered by run and key.
async fn series_of_runs(pool: &PgPool, run_ids: &[Uuid]) -> Result<Vec<(Uuid, String, Chunk)>> {
    let rows: Vec<(Uuid, String, Vec<i64>, Vec<f64>, Vec<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT s.run_id, s.key, c.steps, c.vals, c.wall_times
         FROM metric_series s JOIN metric_chunks c ON c.series_id = s.id
         WHERE s.run_id = ANY($1) ORDER BY s.run_id, s.key, c.seq",
    )
    .bind(run_ids)
    .fetch_all(pool)
    .await?;
    let mut grouped: Vec<(Uuid, String, Vec<Chunk>)> = Vec::new();
    for (run, key, steps, values, times) in rows {
        let chunk = Chunk::from((steps, values, times));
        match grouped.last_mut() {
            Some((r, k, chunks)) if *r == run && *k == key => chunks.push(chunk),
            _ => grouped.push((run, key, vec![chunk])),
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
    let rows: Vec<(Vec<i64>, Vec<f64>, Vec<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT c.steps, c.vals, c.wall_times
         FROM metric_series s JOIN metric_chunks c ON c.series_id = s.id
         WHERE s.run_id = $1 AND s.key = $2 ORDER BY c.seq",
    )
    .bind(run_id)
    .bind(key)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Err(AppError::NotFound(format!(
            "metric {key:?} of run {run_id}"
        )));
    }
    Ok(merge(rows.into_iter().map(Chunk::from).collect()))
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
    let width = (last - lo + 1) as f64;
    let mut out: Vec<(i64, MetricBucket)> = Vec::new();
    for ((&step, &value), time) in points.steps.iter().zip(&points.values).zip(&points.times) {
        let bucket = ((step - lo) as f64 / width * f64::from(buckets)) as i64;
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
            timestamp: None,
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
    }
}
