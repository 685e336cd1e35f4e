//! `/api/v1/runs/{id}/metrics`: batch and bulk logging, summaries, full history, downsampled series.

use crate::auth::{AuthTeam, Viewer};
use crate::error::{AppError, Result};
use crate::extract::{ApiBody, ApiJson, ApiPath, ApiQuery};
use crate::live;
use crate::routes::{owned_run, visible_run};
use crate::state::AppState;
use crate::store::metrics;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use crucible_types::{
    ApiError, LiveEvent, LogMetrics, LogMetricsResult, MAX_METRIC_BATCH, MetricHistory,
    MetricPoint, MetricSeries, MetricSummary,
};
use uuid::Uuid;

/// Largest bulk upload: enough for a million points as NDJSON.
const MAX_BULK_BYTES: usize = 128 * 1024 * 1024;
/// Default bucket count of a chart series.
const DEFAULT_BUCKETS: i32 = 1000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs/{id}/metrics", get(summaries).post(log))
        .route(
            "/runs/{id}/metrics/bulk",
            post(log_bulk).layer(DefaultBodyLimit::max(MAX_BULK_BYTES)),
        )
        .route("/runs/{id}/metrics/history", get(history))
        .route("/runs/{id}/metrics/series", get(series))
}

async fn store(
    s: &AppState,
    auth: &AuthTeam,
    run_id: Uuid,
    points: &[MetricPoint],
) -> Result<LogMetricsResult> {
    metrics::validate(points)?;
    // The whole call is one transaction with one synchronous commit (the server's default
    // `synchronous_commit`): the 200 goes out only once the points are flushed to the WAL, so an
    // acknowledged point survives a crash of Postgres or of this server. A client that got no
    // answer resends the same batch; that is harmless (see store::metrics).
    // Postgres would re-plan the chunk insert on every call (its custom plans, which know the array
    // sizes, look cheaper than the cached generic one), which cost more than executing it; the
    // generic plan suits every batch size. Sent with BEGIN, it costs no round trip of its own.
    let mut tx = s
        .pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    let owned = owned_run(&mut tx, auth, run_id).await?;
    let accepted = metrics::log(&mut tx, run_id, points).await?;
    if let Some(max_step) = points.iter().map(|p| p.step).max() {
        let mut keys: Vec<String> = points.iter().map(|p| p.key.clone()).collect();
        keys.sort();
        keys.dedup();
        let event = LiveEvent::MetricsLogged {
            run_id,
            project_id: owned.run.project_id,
            keys,
            max_step,
            count: accepted,
        };
        live::notify(&mut tx, &event).await?;
    }
    tx.commit().await?;
    s.telemetry.points_ingested(accepted);
    Ok(LogMetricsResult { accepted })
}

/// Logs up to 1000 points (MLflow's limit); repeats of (key, step) overwrite, late points are kept.
#[utoipa::path(post, path = "/api/v1/runs/{id}/metrics", params(("id" = Uuid, Path)), request_body = LogMetrics,
    responses((status = 200, body = LogMetricsResult), (status = 422, body = ApiError)))]
pub async fn log(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<LogMetrics>,
) -> Result<Json<LogMetricsResult>> {
    if body.points.len() > MAX_METRIC_BATCH {
        return Err(AppError::invalid(
            "points",
            format!(
                "at most {MAX_METRIC_BATCH} points per call; use /metrics/bulk for larger uploads"
            ),
        ));
    }
    Ok(Json(store(&s, &auth, id, &body.points).await?))
}

/// The body of a bulk upload as the OpenAPI document describes it: at least one `MetricPoint`,
/// each sent as one line. (The document's type only; the handler reads the lines itself.)
pub struct MetricLines;

impl utoipa::PartialSchema for MetricLines {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("MetricPoint"))
            .min_items(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for MetricLines {}

/// Logs any number of points sent as NDJSON (one `MetricPoint` per line), in one transaction.
#[utoipa::path(post, path = "/api/v1/runs/{id}/metrics/bulk", params(("id" = Uuid, Path)),
    request_body(content = MetricLines, content_type = "application/x-ndjson",
        description = "One `MetricPoint` per line (blank lines are skipped); up to 128 MiB."),
    responses((status = 200, body = LogMetricsResult), (status = 422, body = ApiError)))]
pub async fn log_bulk(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiBody(body): ApiBody,
) -> Result<Json<LogMetricsResult>> {
    let mut points = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let point: MetricPoint = crate::extract::parse_json(line).map_err(|e| match e {
            AppError::Invalid { field, message } => AppError::invalid(
                format!("line {}: {field}", i + 1),
                format!("line {}: {message}", i + 1),
            ),
            other => other,
        })?;
        points.push(point);
    }
    if points.is_empty() {
        return Err(AppError::invalid(
            "body",
            "no points: send one MetricPoint per line",
        ));
    }
    Ok(Json(store(&s, &auth, id, &points).await?))
}

/// The run's metric keys with their latest values.
#[utoipa::path(get, path = "/api/v1/runs/{id}/metrics", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<MetricSummary>)))]
pub async fn summaries(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<MetricSummary>>> {
    visible_run(&mut *s.pool.acquire().await?, scope, id).await?;
    Ok(Json(metrics::summaries(&s.pool, id).await?))
}

/// Which metric to read (keys may contain `/`, so they travel as a query parameter).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// Metric name.
    pub key: String,
    /// Bucket count for `/series`, 1–2000 (default 1000).
    #[param(minimum = 1, maximum = 2000)]
    pub buckets: Option<i32>,
}

/// Every point of one metric.
#[utoipa::path(get, path = "/api/v1/runs/{id}/metrics/history", params(("id" = Uuid, Path), KeyQuery),
    responses((status = 200, body = MetricHistory), (status = 404, body = ApiError)))]
pub async fn history(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> Result<Json<MetricHistory>> {
    visible_run(&mut *s.pool.acquire().await?, scope, id).await?;
    Ok(Json(metrics::history(&s.pool, id, &q.key).await?))
}

/// A chart-sized series: min, max and last value per step bucket.
#[utoipa::path(get, path = "/api/v1/runs/{id}/metrics/series", params(("id" = Uuid, Path), KeyQuery),
    responses((status = 200, body = MetricSeries), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
pub async fn series(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> Result<Json<MetricSeries>> {
    visible_run(&mut *s.pool.acquire().await?, scope, id).await?;
    Ok(Json(
        metrics::downsample(&s.pool, id, &q.key, q.buckets.unwrap_or(DEFAULT_BUCKETS)).await?,
    ))
}
