//! HTTP routes: `/api/v1` (Crucible's own API, documented by OpenAPI) and `/api/2.0/mlflow`
//! (the subset of MLflow's REST API its Python client needs).

pub mod artifacts;
pub mod datasets;
pub mod evals;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod mlflow;
pub mod models;
pub mod openapi;
pub mod projects;
pub mod prometheus;
pub mod runs;
pub mod workers;

use crate::auth::{AuthTeam, ScopeCheck};
use crate::error::Result;
use crate::state::AppState;
use crate::store::runs::{OwnedRun, get_owned};
use axum::Router;
use axum::routing::get;
use crucible_types::ReadScope;
use sqlx::PgConnection;
use uuid::Uuid;

/// The `/api/v1` router.
pub fn api_v1() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .merge(projects::router())
        .merge(runs::router())
        .merge(artifacts::router())
        .merge(metrics::router())
        .merge(datasets::router())
        .merge(models::router())
        .merge(jobs::router())
        .merge(workers::router())
        .merge(evals::router())
        .merge(events::router())
        .merge(openapi::router())
}

/// Liveness and database reachability, for load balancers and `crucible up`.
#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, description = "server and database are up")))]
pub async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str> {
    sqlx::query("SELECT 1").execute(&state.pool).await?;
    Ok("ok")
}

/// Loads a run and checks that the caller's team owns it.
pub async fn owned_run(conn: &mut PgConnection, auth: &AuthTeam, run_id: Uuid) -> Result<OwnedRun> {
    visible_run(conn, auth.scope(), run_id).await
}

/// Loads a run the reader may see (another team's is "not found").
pub async fn visible_run(
    conn: &mut PgConnection,
    scope: ReadScope,
    run_id: Uuid,
) -> Result<OwnedRun> {
    scope.visible(get_owned(conn, run_id).await?)
}
