//! Metric ingestion and reads. Points are upserted per (run, key, step), so retries, duplicates and
//! late arrivals from asynchronous RL workers all converge to one value per step.

use crate::error::{AppError, Result};
use chrono::{DateTime, Utc};
use crucible_types::{MetricBucket, MetricHistory, MetricPoint, MetricSeries, MetricSummary};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Rows per INSERT statement in the bulk path: large enough to amortise round trips, small enough
/// to keep each statement's parameter arrays modest.
const CHUNK: usize = 10_000;

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

/// Collapses repeats of (key, step) within one call (last one wins), as Postgres refuses to
/// upsert the same row twice in one statement.
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

/// Resolves (creating when new) the series of each point, then inserts the points; a macro so the
/// upsert variant below extends the same text.
macro_rules! insert_points_sql {
    () => {
        "WITH pts AS (SELECT * FROM unnest($2::text[], $3::bigint[], $4::float8[], $5::timestamptz[])
                      AS t(key, step, value, wall_time)),
              created AS (INSERT INTO metric_series (run_id, key) SELECT DISTINCT $1::uuid, key FROM pts
                          ON CONFLICT (run_id, key) DO NOTHING RETURNING id, key),
              series AS (SELECT id, key FROM created
                         UNION ALL
                         SELECT id, key FROM metric_series WHERE run_id = $1 AND key IN (SELECT key FROM pts))
         INSERT INTO metric_points (series_id, step, value, wall_time)
         SELECT series.id, pts.step, pts.value, pts.wall_time FROM pts JOIN series USING (key)"
    };
}

/// Inserts points whose (series, step) is new.
const INSERT_NEW: &str = insert_points_sql!();

/// Inserts or overwrites points: retries, duplicates, late points.
const UPSERT: &str = concat!(
    insert_points_sql!(),
    " ON CONFLICT (series_id, step) DO UPDATE SET value = EXCLUDED.value, wall_time = EXCLUDED.wall_time"
);

/// Runs one of the two point statements.
async fn insert_points(
    conn: &mut PgConnection,
    sql: &'static str,
    run_id: Uuid,
    keys: &[&str],
    steps: &[i64],
    values: &[f64],
    times: &[DateTime<Utc>],
) -> Result<(), sqlx::Error> {
    sqlx::query(sql)
        .bind(run_id)
        .bind(keys)
        .bind(steps)
        .bind(values)
        .bind(times)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores the points and returns how many distinct (key, step) pairs were written.
/// Series creation and the point upsert travel as one statement per chunk: one round trip.
pub async fn log(conn: &mut PgConnection, run_id: Uuid, points: &[MetricPoint]) -> Result<usize> {
    validate(points)?;
    let unique: Vec<_> = dedupe(points, Utc::now()).into_iter().collect();
    for chunk in unique.chunks(CHUNK) {
        let mut keys = Vec::with_capacity(chunk.len());
        let mut steps = Vec::with_capacity(chunk.len());
        let mut values = Vec::with_capacity(chunk.len());
        let mut times = Vec::with_capacity(chunk.len());
        for ((key, step), (value, time)) in chunk {
            keys.push(*key);
            steps.push(*step);
            values.push(*value);
            times.push(*time);
        }
        // Most points are new: try the plain insert (half the cost of an upsert) and fall back to
        // the upsert only when some (key, step) already exists.
        sqlx::query("SAVEPOINT metric_points_insert")
            .execute(&mut *conn)
            .await?;
        let plain = insert_points(conn, INSERT_NEW, run_id, &keys, &steps, &values, &times).await;
        match plain {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT metric_points_insert")
                    .execute(&mut *conn)
                    .await?;
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                sqlx::query("ROLLBACK TO SAVEPOINT metric_points_insert")
                    .execute(&mut *conn)
                    .await?;
                insert_points(conn, UPSERT, run_id, &keys, &steps, &values, &times).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(unique.len())
}

/// Every key of the run with its count, range and latest value.
pub async fn summaries(pool: &PgPool, run_id: Uuid) -> Result<Vec<MetricSummary>> {
    let rows: Vec<(String, i64, i64, f64, f64, f64)> = sqlx::query_as(
        "SELECT s.key, count(*), max(p.step),
                (array_agg(p.value ORDER BY p.step DESC))[1], min(p.value), max(p.value)
         FROM metric_series s JOIN metric_points p ON p.series_id = s.id
         WHERE s.run_id = $1 GROUP BY s.key ORDER BY s.key",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(key, count, last_step, last_value, min, max)| MetricSummary {
                key,
                count,
                last_step,
                last_value,
                min,
                max,
            },
        )
        .collect())
}

async fn series_id(pool: &PgPool, run_id: Uuid, key: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM metric_series WHERE run_id = $1 AND key = $2")
        .bind(run_id)
        .bind(key)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("metric {key:?} of run {run_id}")))
}

/// Every point of one metric, by step.
pub async fn history(pool: &PgPool, run_id: Uuid, key: &str) -> Result<MetricHistory> {
    let id = series_id(pool, run_id, key).await?;
    let rows: Vec<(i64, f64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT step, value, wall_time FROM metric_points WHERE series_id = $1 ORDER BY step",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let mut h = MetricHistory {
        key: key.to_string(),
        steps: Vec::with_capacity(rows.len()),
        values: Vec::with_capacity(rows.len()),
        timestamps_ms: Vec::with_capacity(rows.len()),
    };
    for (step, value, t) in rows {
        h.steps.push(step);
        h.values.push(value);
        h.timestamps_ms.push(t.timestamp_millis());
    }
    Ok(h)
}

/// Bounds on the bucket count a chart may ask for.
pub const MAX_BUCKETS: i32 = 2000;

/// About `buckets` equal-width step buckets, each with min, max and last value, computed in Postgres.
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
    let id = series_id(pool, run_id, key).await?;
    let rows: Vec<(i64, i64, f64, f64, f64, i64, DateTime<Utc>)> = sqlx::query_as(
        "WITH bounds AS (SELECT min(step) AS lo, max(step) + 1 AS hi FROM metric_points WHERE series_id = $1),
              b AS (SELECT p.step, p.value, p.wall_time,
                           width_bucket(p.step::float8, bounds.lo::float8, bounds.hi::float8, $2) AS bucket
                    FROM metric_points p, bounds WHERE p.series_id = $1)
         SELECT min(step), max(step), min(value), max(value),
                (array_agg(value ORDER BY step DESC))[1], count(*)::bigint,
                (array_agg(wall_time ORDER BY step DESC))[1]
         FROM b GROUP BY bucket ORDER BY bucket",
    )
    .bind(id)
    .bind(buckets)
    .fetch_all(pool)
    .await?;
    let total_points = rows.iter().map(|r| r.5).sum();
    let buckets = rows
        .into_iter()
        .map(
            |(step_min, step_max, min, max, last, count, t)| MetricBucket {
                step_min,
                step_max,
                min,
                max,
                last,
                count,
                last_time_ms: t.timestamp_millis(),
            },
        )
        .collect();
    Ok(MetricSeries {
        key: key.to_string(),
        total_points,
        buckets,
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
}
