//! `/api/v1/workers`: registration, listing and leasing. Workers never touch the database.

use crate::auth::{AuthTeam, Viewer};
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::projects::TeamFilter;
use crate::state::AppState;
use crate::store::{jobs, workers};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crucible_types::{ApiError, Lease, RegisterWorker, Worker};
use uuid::Uuid;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workers", get(list).post(register))
        .route("/workers/{id}/lease", post(lease))
}

/// Registers a worker of the caller's team; a bad name, memory, device or kind list is a 422
/// naming the field.
#[utoipa::path(post, path = "/api/v1/workers", request_body = RegisterWorker,
    responses((status = 201, body = Worker), (status = 422, body = ApiError)))]
pub async fn register(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiJson(req): ApiJson<RegisterWorker>,
) -> Result<(StatusCode, Json<Worker>)> {
    let mut tx = s.pool.begin().await?;
    let w = workers::register(&mut tx, auth.team_id, &req, s.lease_seconds).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(w)))
}

/// Workers seen in the last 24 hours, most recently seen first; `online` is false once one has
/// been silent for a whole lease.
#[utoipa::path(get, path = "/api/v1/workers", params(TeamFilter), responses((status = 200, body = Vec<Worker>)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<TeamFilter>,
) -> Result<Json<Vec<Worker>>> {
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(workers::list(&s.pool, team).await?))
}

/// Leases the best queued job the worker can run: 200 with the lease, or 204 when there is none.
#[utoipa::path(post, path = "/api/v1/workers/{id}/lease", params(("id" = Uuid, Path)),
    responses((status = 200, body = Lease), (status = 204, description = "no job for this worker")))]
pub async fn lease(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response> {
    let mut tx = s.pool.begin().await?;
    let worker = workers::touch(&mut tx, auth.team_id, id, s.lease_seconds).await?;
    let lease = jobs::lease(&mut tx, &worker, s.lease_seconds).await?;
    if let Some(l) = &lease {
        crate::live::job_run_updated(&mut tx, &l.job).await?;
    }
    tx.commit().await?;
    Ok(match lease {
        Some(l) => Json(l).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
