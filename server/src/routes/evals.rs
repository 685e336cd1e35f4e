//! `/api/v1/evals` and `/api/v1/leaderboard`: results uploaded by workers, the sample browser, and
//! the team leaderboard.

use crate::auth::{AuthTeam, ScopeCheck, Viewer};
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery, LossyJson};
use crate::routes::projects::TeamFilter;
use crate::state::AppState;
use crate::store::evals;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use crucible_types::{
    ApiError, Eval, LeaderboardRow, ProblemSamples, SampleFilter, UploadSamples, UploadScores,
};
use sqlx::PgConnection;
use uuid::Uuid;

/// Sample uploads carry long completions.
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/evals", get(list))
        .route("/evals/{id}", get(show))
        .route(
            "/evals/{id}/samples",
            get(samples)
                .post(upload_samples)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/evals/{id}/scores", post(upload_scores))
        .route("/leaderboard", get(leaderboard))
}

async fn owned(conn: &mut PgConnection, auth: &AuthTeam, id: Uuid) -> Result<()> {
    auth.scope().visible(evals::get(conn, id).await?).map(drop)
}

/// Which evals to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EvalFilter {
    /// Only evals of this job.
    pub job_id: Option<Uuid>,
    /// Only evals of this model.
    pub model_id: Option<Uuid>,
}

/// Evals with their scores, newest first.
#[utoipa::path(get, path = "/api/v1/evals", params(EvalFilter), responses((status = 200, body = Vec<Eval>)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<EvalFilter>,
) -> Result<Json<Vec<Eval>>> {
    Ok(Json(
        evals::list(&s.pool, scope.team(), f.job_id, f.model_id, 500).await?,
    ))
}

/// One eval with its scores and contamination report.
#[utoipa::path(get, path = "/api/v1/evals/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Eval), (status = 404, body = ApiError)))]
pub async fn show(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Eval>> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(scope.visible(evals::get(&mut conn, id).await?)?))
}

/// Sample-browser query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SamplesQuery {
    /// `all` (default), `all_wrong`, `all_right` or `mixed`.
    #[param(inline)]
    pub filter: Option<SampleFilter>,
    /// Problems to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Problems to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Problems with their n samples each.
#[utoipa::path(get, path = "/api/v1/evals/{id}/samples", params(("id" = Uuid, Path), SamplesQuery),
    responses((status = 200, body = Vec<ProblemSamples>)))]
pub async fn samples(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<SamplesQuery>,
) -> Result<Json<Vec<ProblemSamples>>> {
    scope.visible(evals::get(&mut *s.pool.acquire().await?, id).await?)?;
    let filter = q.filter.unwrap_or(SampleFilter::All);
    Ok(Json(
        evals::samples(
            &s.pool,
            id,
            filter,
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

/// Stores graded samples from the lease holder; re-uploads overwrite.
#[utoipa::path(post, path = "/api/v1/evals/{id}/samples", params(("id" = Uuid, Path)), request_body = UploadSamples,
    responses((status = 200, description = "stored"), (status = 409, body = ApiError)))]
pub async fn upload_samples(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    LossyJson(req): LossyJson<UploadSamples>,
) -> Result<Json<serde_json::Value>> {
    let mut tx = s.pool.begin().await?;
    owned(&mut tx, &auth, id).await?;
    let n = evals::upload_samples(&mut tx, id, req.worker_id, &req.samples).await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "stored": n })))
}

/// Stores the final scores from the lease holder and finishes the eval.
#[utoipa::path(post, path = "/api/v1/evals/{id}/scores", params(("id" = Uuid, Path)), request_body = UploadScores,
    responses((status = 200, body = Eval), (status = 409, body = ApiError)))]
pub async fn upload_scores(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UploadScores>,
) -> Result<Json<Eval>> {
    let mut tx = s.pool.begin().await?;
    owned(&mut tx, &auth, id).await?;
    let eval = evals::finish(&mut tx, id, req.worker_id, req.problems, &req.scores).await?;
    tx.commit().await?;
    Ok(Json(eval))
}

/// The best eval per (team, model, benchmark), with its interval and contamination flag.
#[utoipa::path(get, path = "/api/v1/leaderboard", params(TeamFilter), responses((status = 200, body = Vec<LeaderboardRow>)))]
pub async fn leaderboard(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<TeamFilter>,
) -> Result<Json<Vec<LeaderboardRow>>> {
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(evals::leaderboard(&s.pool, team).await?))
}
