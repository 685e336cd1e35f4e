//! `/api/v1/jobs`: submission, the queue, cancellation, and the lease holder's heartbeats and completion.

use crate::auth::{AuthTeam, ScopeCheck, Viewer};
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery, TaggedJson};
use crate::live;
use crate::state::AppState;
use crate::store::jobs;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crucible_types::{ApiError, CompleteJob, Heartbeat, HeartbeatReply, Job, JobStatus, SubmitJob};
use sqlx::PgConnection;
use uuid::Uuid;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list).post(submit))
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/jobs/{id}/heartbeat", post(heartbeat))
        .route("/jobs/{id}/complete", post(complete))
}

/// Loads a job and checks the caller's team owns it.
async fn owned_job(conn: &mut PgConnection, auth: &AuthTeam, id: Uuid) -> Result<Job> {
    auth.scope().visible(jobs::get(conn, id).await?)
}

/// Submits a typed job; it gets a run (and, for evals, one eval record per benchmark).
#[utoipa::path(post, path = "/api/v1/jobs", request_body = SubmitJob,
    responses((status = 201, body = Job),
              (status = 404, body = ApiError, description = "the model, a `dataset:<id>` benchmark or the project the spec names is not the team's"),
              (status = 422, body = ApiError)))]
pub async fn submit(
    State(s): State<AppState>,
    auth: AuthTeam,
    TaggedJson(req): TaggedJson<SubmitJob>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = jobs::queue(&s.pool, auth.team_id, &req).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Which jobs to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only this team's jobs.
    pub team_id: Option<Uuid>,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The queue, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", params(JobFilter), responses((status = 200, body = Vec<Job>)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<JobFilter>,
) -> Result<Json<Vec<Job>>> {
    let limit = f.limit.unwrap_or(100);
    // Checked before the scope: a bad limit is refused even where the answer would be empty.
    crate::store::check_window(limit, jobs::MAX_LIST, 0)?;
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(jobs::list(&s.pool, team, f.status, limit).await?))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 404, body = ApiError)))]
pub async fn show(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Job>> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(scope.visible(jobs::get(&mut conn, id).await?)?))
}

/// Cancels a queued job, or asks the worker of a running one to stop.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 409, body = ApiError)))]
pub async fn cancel(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Job>> {
    let mut tx = s.pool.begin().await?;
    owned_job(&mut tx, &auth, id).await?;
    let job = jobs::cancel(&mut tx, id).await?;
    live::job_run_updated(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(Json(job))
}

/// Renews the lease and reports progress; the reply says whether to stop.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/heartbeat", params(("id" = Uuid, Path)), request_body = Heartbeat,
    responses((status = 200, body = HeartbeatReply), (status = 409, body = ApiError)))]
pub async fn heartbeat(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatReply>> {
    let mut tx = s.pool.begin().await?;
    owned_job(&mut tx, &auth, id).await?;
    let cancel = jobs::heartbeat(
        &mut tx,
        id,
        req.worker_id,
        req.progress.as_ref(),
        s.lease_seconds,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(HeartbeatReply { cancel }))
}

/// Ends the job with success or a failure reason.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/complete", params(("id" = Uuid, Path)), request_body = CompleteJob,
    responses((status = 200, body = Job), (status = 409, body = ApiError)))]
pub async fn complete(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CompleteJob>,
) -> Result<Json<Job>> {
    let mut tx = s.pool.begin().await?;
    owned_job(&mut tx, &auth, id).await?;
    let job = jobs::complete(&mut tx, id, req.worker_id, req.error.as_deref()).await?;
    live::job_run_updated(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(Json(job))
}
