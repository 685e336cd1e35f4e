//! `/api/v1/projects`.

use crate::auth::{AuthTeam, ScopeCheck, Viewer};
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::projects;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use crucible_types::{ApiError, CreateProject, Project};
use uuid::Uuid;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{id}", get(show))
}

/// Filter of list endpoints that can be narrowed to one team.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamFilter {
    /// Only this team's items.
    pub team_id: Option<Uuid>,
}

/// Creates a project in the caller's team.
#[utoipa::path(post, path = "/api/v1/projects", request_body = CreateProject,
    responses((status = 201, body = Project), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn create(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiJson(req): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<Project>)> {
    let mut tx = s.pool.begin().await?;
    let p = projects::create(&mut tx, auth.team_id, &req.name, &req.description).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Lists projects, newest first.
#[utoipa::path(get, path = "/api/v1/projects", params(TeamFilter), responses((status = 200, body = Vec<Project>)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<TeamFilter>,
) -> Result<Json<Vec<Project>>> {
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(projects::list(&s.pool, team).await?))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Project), (status = 404, body = ApiError)))]
pub async fn show(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Project>> {
    Ok(Json(scope.visible(projects::get(&s.pool, id).await?)?))
}
