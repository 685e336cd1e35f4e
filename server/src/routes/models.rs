//! `/api/v1/models`: register and list models.

use crate::auth::{AuthTeam, ScopeCheck, Viewer};
use crate::error::Result;
use crate::extract::{ApiPath, ApiQuery, TaggedJson};
use crate::routes::projects::TeamFilter;
use crate::state::AppState;
use crate::store::{models, runs};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crucible_types::{ApiError, Model, ModelSource, RegisterModel};
use uuid::Uuid;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/models", get(list).post(register))
        .route("/models/{id}", get(show))
}

/// Registers a local HF folder, a checkpoint or an OpenAI-compatible endpoint.
#[utoipa::path(post, path = "/api/v1/models", request_body = RegisterModel,
    responses((status = 201, body = Model),
              (status = 404, body = ApiError, description = "`source.path` (or its config.json) is not on the server, or `source.run_id` names no run of the team's"),
              (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn register(
    State(s): State<AppState>,
    auth: AuthTeam,
    TaggedJson(req): TaggedJson<RegisterModel>,
) -> Result<(StatusCode, Json<Model>)> {
    let mut tx = s.pool.begin().await?;
    if let ModelSource::Checkpoint { run_id, .. } = &req.source {
        runs::get_owned(&mut tx, *run_id)
            .await
            .and_then(|run| auth.scope().visible(run))
            .map_err(|e| e.named_by("source.run_id"))?;
    }
    let m = models::register(&mut tx, auth.team_id, &req).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Lists models, newest first.
#[utoipa::path(get, path = "/api/v1/models", params(TeamFilter), responses((status = 200, body = Vec<Model>)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<TeamFilter>,
) -> Result<Json<Vec<Model>>> {
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(models::list(&s.pool, team).await?))
}

/// One model.
#[utoipa::path(get, path = "/api/v1/models/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Model), (status = 404, body = ApiError)))]
pub async fn show(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Model>> {
    Ok(Json(scope.visible(models::get(&s.pool, id).await?)?))
}
