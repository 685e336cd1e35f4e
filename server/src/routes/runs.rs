//! `/api/v1/runs`: create, read, list, status, params and tags.

use crate::auth::{AuthTeam, ScopeCheck, Viewer};
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery, LossyJson};
use crate::live;
use crate::routes::{owned_run, visible_run};
use crate::state::AppState;
use crate::store::{completions, projects, runs};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use crucible_types::{
    ApiError, CompletionRecord, CreateRun, Run, RunFilter, RunPage, ScalarMap, UpdateRun,
};
use uuid::Uuid;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list).post(create))
        .route("/runs/{id}", get(show).patch(update))
        .route("/runs/{id}/params", post(log_params))
        .route("/runs/{id}/tags", post(set_tags))
        .route("/runs/{id}/tags/{key}", delete(delete_tag))
        .route(
            "/runs/{id}/completions",
            get(list_completions).post(upload_completions),
        )
}

/// Creates a run in one of the caller's projects.
#[utoipa::path(post, path = "/api/v1/runs", request_body = CreateRun,
    responses((status = 201, body = Run),
              (status = 404, body = ApiError, description = "`project_id` or `parent_run_id` names nothing of the team's"),
              (status = 422, body = ApiError)))]
pub async fn create(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiJson(req): ApiJson<CreateRun>,
) -> Result<(StatusCode, Json<Run>)> {
    // An unknown project and another team's read the same.
    projects::get(&s.pool, req.project_id)
        .await
        .and_then(|p| auth.scope().visible(p))
        .map_err(|e| e.named_by("project_id"))?;
    let mut tx = s.pool.begin().await?;
    let run = runs::create(&mut tx, &req).await?;
    live::run_updated(&mut tx, &run).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Lists runs with filters, sort and pagination.
#[utoipa::path(get, path = "/api/v1/runs", params(RunFilter),
    responses((status = 200, body = RunPage), (status = 422, body = ApiError)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(mut f): ApiQuery<RunFilter>,
) -> Result<Json<RunPage>> {
    // Checked before the scope: a bad page is refused even where the answer would be empty.
    runs::page_of(&f)?;
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(RunPage {
            runs: Vec::new(),
            total: 0,
        }));
    };
    f.team_id = team;
    Ok(Json(runs::list(&s.pool, &f).await?))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Run), (status = 404, body = ApiError)))]
pub async fn show(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Run>> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(visible_run(&mut conn, scope, id).await?.run))
}

/// Changes a run's status or name.
#[utoipa::path(patch, path = "/api/v1/runs/{id}", params(("id" = Uuid, Path)), request_body = UpdateRun,
    responses((status = 200, body = Run), (status = 409, body = ApiError)))]
pub async fn update(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateRun>,
) -> Result<Json<Run>> {
    let mut tx = s.pool.begin().await?;
    let owned = owned_run(&mut tx, &auth, id).await?;
    let run = runs::update(&mut tx, &owned.run, req.status, req.name.as_deref()).await?;
    live::run_updated(&mut tx, &run).await?;
    tx.commit().await?;
    Ok(Json(run))
}

/// Logs params; a param cannot change value once logged.
#[utoipa::path(post, path = "/api/v1/runs/{id}/params", params(("id" = Uuid, Path)), request_body = ScalarMap,
    responses((status = 200, body = Run), (status = 409, body = ApiError)))]
pub async fn log_params(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(params): ApiJson<ScalarMap>,
) -> Result<Json<Run>> {
    let mut tx = s.pool.begin().await?;
    let owned = owned_run(&mut tx, &auth, id).await?;
    runs::log_params(&mut tx, &owned.run, &params.0).await?;
    let run = runs::get_owned(&mut tx, id).await?.run;
    tx.commit().await?;
    Ok(Json(run))
}

/// Sets tags (overwriting values of existing keys).
#[utoipa::path(post, path = "/api/v1/runs/{id}/tags", params(("id" = Uuid, Path)), request_body = ScalarMap,
    responses((status = 200, body = Run)))]
pub async fn set_tags(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(tags): ApiJson<ScalarMap>,
) -> Result<Json<Run>> {
    let mut tx = s.pool.begin().await?;
    owned_run(&mut tx, &auth, id).await?;
    runs::set_tags(&mut tx, id, &tags.0).await?;
    let run = runs::get_owned(&mut tx, id).await?.run;
    tx.commit().await?;
    Ok(Json(run))
}

/// Removes a tag.
#[utoipa::path(delete, path = "/api/v1/runs/{id}/tags/{key}", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError)))]
pub async fn delete_tag(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath((id, key)): ApiPath<(Uuid, String)>,
) -> Result<StatusCode> {
    let mut tx = s.pool.begin().await?;
    owned_run(&mut tx, &auth, id).await?;
    runs::delete_tag(&mut tx, id, &key).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/runs/{id}/completions`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct UploadCompletions {
    /// Completions in any order.
    pub completions: Vec<CompletionRecord>,
}

/// Stores completions (RL rollouts, generate outputs); re-uploads overwrite.
#[utoipa::path(post, path = "/api/v1/runs/{id}/completions", params(("id" = Uuid, Path)), request_body = UploadCompletions,
    responses((status = 200, description = "stored"), (status = 422, body = ApiError)))]
pub async fn upload_completions(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    LossyJson(body): LossyJson<UploadCompletions>,
) -> Result<Json<serde_json::Value>> {
    let mut tx = s.pool.begin().await?;
    owned_run(&mut tx, &auth, id).await?;
    let n = completions::upload(&mut tx, id, &body.completions).await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "stored": n })))
}

/// Which completions to read.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompletionQuery {
    /// Only this step.
    pub step: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Rows to return, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The run's completions, by step, group and sample.
#[utoipa::path(get, path = "/api/v1/runs/{id}/completions", params(("id" = Uuid, Path), CompletionQuery),
    responses((status = 200, body = Vec<CompletionRecord>)))]
pub async fn list_completions(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<CompletionQuery>,
) -> Result<Json<Vec<CompletionRecord>>> {
    visible_run(&mut *s.pool.acquire().await?, scope, id).await?;
    Ok(Json(
        completions::list(
            &s.pool,
            id,
            q.step,
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await?,
    ))
}
