//! `/api/2.0/mlflow`: the part of MLflow's REST API its Python client uses to log runs, so existing
//! training scripts report to Crucible by setting `MLFLOW_TRACKING_URI` (and `MLFLOW_TRACKING_TOKEN`).
//! Experiments map to projects, MLflow statuses to run statuses; everything lands in `/api/v1`.

use crate::auth::{AuthTeam, ScopeCheck};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery};
use crate::live;
use crate::routes::owned_run;
use crate::state::AppState;
use crate::store::{metrics, projects, runs};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crucible_types::{CreateRun, MetricPoint, Project, Run, RunKind, RunStatus, StringMap};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

pub mod artifacts;
mod filter;
mod history;
mod wire;

use filter::{matches, parse_filter, sort_runs};
use wire::{RUN_NAME_TAG, experiment_json, run_info_json, run_json, status_from_mlflow};

/// MLflow's id of the experiment a client uses when none is set; it maps to the team's `Default` project.
const DEFAULT_EXPERIMENT_ID: &str = "0";
const DEFAULT_EXPERIMENT_NAME: &str = "Default";
/// Largest `max_results` of runs/search, as in MLflow.
const MAX_SEARCH_RESULTS: usize = 50_000;

/// Routes of this module, mounted under `/api/2.0/mlflow`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route("/experiments/get", get(get_experiment))
        .route("/runs/create", post(create_run))
        .route("/runs/update", post(update_run))
        .route("/runs/get", get(get_run))
        .route("/runs/search", post(search_runs))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/logged-models/search", post(search_logged_models))
        .route("/metrics/get-history", get(history::get_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(history::get_history_bulk_interval),
        )
}

/// MLflow's error body: `{"error_code": …, "message": …}` with MLflow's codes.
pub struct MlflowError(AppError);

/// One of the API's extractors on the MLflow face, so that a refused token, body or query is
/// answered in MLflow's error format like every other error of these routes.
pub struct Ml<X>(pub X);

impl<S: Send + Sync, X: FromRequestParts<S, Rejection = AppError>> FromRequestParts<S> for Ml<X> {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, MlflowError> {
        X::from_request_parts(parts, state)
            .await
            .map(Ml)
            .map_err(MlflowError)
    }
}

impl<S: Send + Sync, X: FromRequest<S, Rejection = AppError>> FromRequest<S> for Ml<X> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self, MlflowError> {
        X::from_request(req, state)
            .await
            .map(Ml)
            .map_err(MlflowError)
    }
}

impl<E: Into<AppError>> From<E> for MlflowError {
    fn from(e: E) -> Self {
        MlflowError(e.into())
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let (status, _) = self.0.status_and_code();
        let code = match &self.0 {
            AppError::Invalid { .. } => "INVALID_PARAMETER_VALUE",
            AppError::NotFound(_)
            | AppError::Missing { .. }
            | AppError::Db(sqlx::Error::RowNotFound) => "RESOURCE_DOES_NOT_EXIST",
            AppError::Unauthorized(_) => "UNAUTHENTICATED",
            AppError::Conflict { .. } => "RESOURCE_ALREADY_EXISTS",
            AppError::LeaseLost(_) => "INVALID_STATE",
            AppError::TooLarge(_) => "REQUEST_LIMIT_EXCEEDED",
            AppError::Db(_) | AppError::Internal(_) => "INTERNAL_ERROR",
        };
        let status = if status == StatusCode::CONFLICT || status == StatusCode::UNPROCESSABLE_ENTITY
        {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        let body = self.0.body();
        let mut response = (
            status,
            Json(json!({ "error_code": code, "message": body.message })),
        )
            .into_response();
        self.0.attach_cause(&mut response);
        response
    }
}

type MlResult<T> = Result<T, MlflowError>;

/// Resolves an MLflow experiment id in the caller's team.
async fn experiment(
    conn: &mut PgConnection,
    auth: &AuthTeam,
    id: &str,
) -> Result<Project, AppError> {
    if id == DEFAULT_EXPERIMENT_ID {
        if let Some(p) = projects::find_by_name(conn, auth.team_id, DEFAULT_EXPERIMENT_NAME).await?
        {
            return Ok(p);
        }
        return projects::create(
            conn,
            auth.team_id,
            DEFAULT_EXPERIMENT_NAME,
            "MLflow's default experiment",
        )
        .await;
    }
    let uuid = Uuid::parse_str(id).map_err(|_| AppError::NotFound(format!("experiment {id:?}")))?;
    auth.scope().visible(projects::get(conn, uuid).await?)
}

#[derive(Deserialize)]
struct SearchLoggedModels {
    #[serde(default)]
    experiment_ids: Vec<String>,
}

/// MLflow 3's logged-model search, which its client runs while listing a run's artifacts.
/// Crucible keeps no MLflow logged models (`log_model` is not supported; models are registered
/// through `/api/v1/models`), so after checking that the experiments are the caller's it
/// answers that there are none.
async fn search_logged_models(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<SearchLoggedModels>>,
) -> MlResult<Json<Value>> {
    let mut conn = s.pool.acquire().await?;
    for id in &req.experiment_ids {
        experiment(&mut conn, &auth, id).await?;
    }
    Ok(Json(json!({ "models": [] })))
}

fn parse_run_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound(format!("run {id:?}")))
}

#[derive(Deserialize)]
struct CreateExperiment {
    name: String,
}

async fn create_experiment(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<CreateExperiment>>,
) -> MlResult<Json<Value>> {
    let mut tx = s.pool.begin().await?;
    let p = projects::create(&mut tx, auth.team_id, &req.name, "").await?;
    tx.commit().await?;
    Ok(Json(json!({ "experiment_id": p.id.to_string() })))
}

#[derive(Deserialize)]
struct ByName {
    experiment_name: String,
}

async fn get_experiment_by_name(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiQuery(q)): Ml<ApiQuery<ByName>>,
) -> MlResult<Json<Value>> {
    let mut conn = s.pool.acquire().await?;
    let p = projects::find_by_name(&mut conn, auth.team_id, &q.experiment_name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("experiment named {:?}", q.experiment_name)))?;
    Ok(Json(json!({ "experiment": experiment_json(&p) })))
}

#[derive(Deserialize)]
struct ById {
    experiment_id: String,
}

async fn get_experiment(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiQuery(q)): Ml<ApiQuery<ById>>,
) -> MlResult<Json<Value>> {
    let mut tx = s.pool.begin().await?;
    let p = experiment(&mut tx, &auth, &q.experiment_id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "experiment": experiment_json(&p) })))
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

fn to_map(kvs: Vec<KeyValue>) -> StringMap {
    kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

#[derive(Deserialize)]
struct CreateRunReq {
    #[serde(default)]
    experiment_id: Option<String>,
    #[serde(default)]
    run_name: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create_run(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<CreateRunReq>>,
) -> MlResult<Json<Value>> {
    let mut tx = s.pool.begin().await?;
    let project = experiment(
        &mut tx,
        &auth,
        req.experiment_id
            .as_deref()
            .unwrap_or(DEFAULT_EXPERIMENT_ID),
    )
    .await?;
    let mut tags = to_map(req.tags);
    let name = req
        .run_name
        .filter(|n| !n.is_empty())
        .or_else(|| tags.remove(RUN_NAME_TAG));
    tags.remove(RUN_NAME_TAG);
    let run = runs::create(
        &mut tx,
        &CreateRun {
            project_id: project.id,
            name,
            kind: Some(RunKind::External),
            status: Some(RunStatus::Running),
            tags,
            ..CreateRun::default()
        },
    )
    .await?;
    live::run_updated(&mut tx, &run).await?;
    tx.commit().await?;
    Ok(Json(json!({ "run": run_json(&run, &[]) })))
}

#[derive(Deserialize)]
struct UpdateRunReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    run_name: Option<String>,
}

async fn update_run(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<UpdateRunReq>>,
) -> MlResult<Json<Value>> {
    let id = req.run.id()?;
    let status = req.status.as_deref().map(status_from_mlflow).transpose()?;
    let mut tx = s.pool.begin().await?;
    let owned = owned_run(&mut tx, &auth, id).await?;
    let run = runs::update(
        &mut tx,
        &owned.run,
        status,
        req.run_name.as_deref().filter(|n| !n.is_empty()),
    )
    .await?;
    live::run_updated(&mut tx, &run).await?;
    tx.commit().await?;
    Ok(Json(json!({ "run_info": run_info_json(&run) })))
}

/// The run an MLflow call is about: clients send `run_id` (new) or `run_uuid` (old).
#[derive(Deserialize)]
pub(super) struct RunRef {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
}

impl RunRef {
    fn id(self) -> Result<Uuid, AppError> {
        let id = self
            .run_id
            .or(self.run_uuid)
            .ok_or_else(|| AppError::invalid("run_id", "missing run_id"))?;
        parse_run_id(&id)
    }
}

async fn get_run(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiQuery(run)): Ml<ApiQuery<RunRef>>,
) -> MlResult<Json<Value>> {
    let id = run.id()?;
    let mut conn = s.pool.acquire().await?;
    let owned = owned_run(&mut conn, &auth, id).await?;
    let latest = metrics::latest(&s.pool, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(Json(json!({ "run": run_json(&owned.run, &latest) })))
}

#[derive(Deserialize)]
struct SearchReq {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
}

async fn search_runs(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<SearchReq>>,
) -> MlResult<Json<Value>> {
    let clauses = parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let max = req.max_results.unwrap_or(1000);
    if !(1..=MAX_SEARCH_RESULTS).contains(&max) {
        return Err(AppError::invalid(
            "max_results",
            format!("must be between 1 and {MAX_SEARCH_RESULTS}"),
        )
        .into());
    }
    let offset: usize = match &req.page_token {
        Some(t) if !t.is_empty() => t
            .parse()
            .map_err(|_| AppError::invalid("page_token", "not a page token from this server"))?,
        _ => 0,
    };
    let mut tx = s.pool.begin().await?;
    let mut project_ids = Vec::new();
    for id in &req.experiment_ids {
        project_ids.push(experiment(&mut tx, &auth, id).await?.id);
    }
    tx.commit().await?;
    let candidates: Vec<Run> = {
        let mut all = Vec::new();
        for pid in project_ids {
            let filter = crucible_types::RunFilter {
                project_id: Some(pid),
                limit: Some(500),
                ..Default::default()
            };
            let mut page_offset = 0;
            loop {
                let page = runs::list(
                    &s.pool,
                    &crucible_types::RunFilter {
                        offset: Some(page_offset),
                        ..filter.clone()
                    },
                )
                .await?;
                let n = page.runs.len() as i64;
                all.extend(page.runs);
                page_offset += n;
                if n == 0 || page_offset >= page.total {
                    break;
                }
            }
        }
        all
    };
    let ids: Vec<Uuid> = candidates.iter().map(|r| r.id).collect();
    let latest = metrics::latest(&s.pool, &ids).await?;
    let empty = Vec::new();
    let mut hits: Vec<&Run> = candidates
        .iter()
        .filter(|r| matches(r, latest.get(&r.id).unwrap_or(&empty), &clauses))
        .collect();
    sort_runs(&mut hits, &req.order_by);
    let page: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(max)
        .map(|r| run_json(r, latest.get(&r.id).unwrap_or(&empty)))
        .collect();
    let mut body = json!({ "runs": page });
    if offset + max < hits.len() {
        body["next_page_token"] = json!((offset + max).to_string());
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct MlMetric {
    key: String,
    value: f64,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    step: Option<i64>,
}

fn to_point(m: MlMetric) -> MetricPoint {
    MetricPoint {
        key: m.key,
        step: m.step.unwrap_or(0),
        value: m.value,
        timestamp_ms: m.timestamp,
    }
}

#[derive(Deserialize)]
struct LogBatchReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    metrics: Vec<MlMetric>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

/// Writes params, tags and metrics of one MLflow call in one transaction.
async fn write_batch(
    s: &AppState,
    auth: &AuthTeam,
    id: Uuid,
    params: StringMap,
    tags: StringMap,
    points: Vec<MetricPoint>,
) -> MlResult<Json<Value>> {
    if points.len() > crucible_types::MAX_METRIC_BATCH {
        return Err(AppError::invalid("metrics", "at most 1000 metrics per batch").into());
    }
    metrics::validate(&points)?;
    let mut tx = s.pool.begin().await?;
    let owned = owned_run(&mut tx, auth, id).await?;
    if !params.is_empty() {
        runs::log_params(&mut tx, &owned.run, &params).await?;
    }
    let mut tags = tags;
    if let Some(name) = tags.remove(RUN_NAME_TAG) {
        runs::update(&mut tx, &owned.run, None, Some(&name)).await?;
    }
    if !tags.is_empty() {
        runs::set_tags(&mut tx, id, &tags).await?;
    }
    let mut ingested = 0;
    if !points.is_empty() {
        ingested = metrics::log(&mut tx, id, &points).await?;
        let mut keys: Vec<String> = points.iter().map(|p| p.key.clone()).collect();
        keys.sort();
        keys.dedup();
        let max_step = points.iter().map(|p| p.step).max().unwrap_or(0);
        let event = crucible_types::LiveEvent::MetricsLogged {
            run_id: id,
            project_id: owned.run.project_id,
            keys,
            max_step,
            count: ingested,
        };
        crate::live::notify(&mut tx, &event).await?;
    }
    tx.commit().await?;
    s.telemetry.points_ingested(ingested);
    Ok(Json(json!({})))
}

async fn log_batch(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<LogBatchReq>>,
) -> MlResult<Json<Value>> {
    let id = req.run.id()?;
    let points = req.metrics.into_iter().map(to_point).collect();
    write_batch(&s, &auth, id, to_map(req.params), to_map(req.tags), points).await
}

#[derive(Deserialize)]
struct LogMetricReq {
    #[serde(flatten)]
    run: RunRef,
    #[serde(flatten)]
    metric: MlMetric,
}

async fn log_metric(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<LogMetricReq>>,
) -> MlResult<Json<Value>> {
    let id = req.run.id()?;
    write_batch(
        &s,
        &auth,
        id,
        BTreeMap::new(),
        BTreeMap::new(),
        vec![to_point(req.metric)],
    )
    .await
}

#[derive(Deserialize)]
struct KeyValueReq {
    #[serde(flatten)]
    run: RunRef,
    key: String,
    value: String,
}

async fn log_param(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<KeyValueReq>>,
) -> MlResult<Json<Value>> {
    let id = req.run.id()?;
    write_batch(
        &s,
        &auth,
        id,
        BTreeMap::from([(req.key, req.value)]),
        BTreeMap::new(),
        Vec::new(),
    )
    .await
}

async fn set_tag(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiJson(req)): Ml<ApiJson<KeyValueReq>>,
) -> MlResult<Json<Value>> {
    let id = req.run.id()?;
    write_batch(
        &s,
        &auth,
        id,
        BTreeMap::new(),
        BTreeMap::from([(req.key, req.value)]),
        Vec::new(),
    )
    .await
}
