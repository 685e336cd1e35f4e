//! `/api/2.0/mlflow-artifacts`: MLflow's artifact proxy, where the `mlflow-artifacts:` URI of
//! every run resolves, so the real client's `log_artifact(s)`, `log_dict`, `log_text`,
//! `log_figure`, `list_artifacts` and `download_artifacts` work unchanged. A run's artifacts live
//! at `<run id>/artifacts/<path>`; uploads stream into the store (see [`crate::artifacts`]).

use super::{Ml, MlResult, parse_run_id};
use crate::artifacts::check_path;
use crate::auth::AuthTeam;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::routes::owned_run;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The folder of a run's artifacts inside its URI.
const ARTIFACTS: &str = "artifacts";

/// Routes of this module, mounted under `/api/2.0/mlflow-artifacts`. Uploads are bounded by the
/// store's own cap ([`crate::artifacts::Artifacts::max_bytes`]), not the default body limit.
pub fn router() -> Router<AppState> {
    Router::new().route("/artifacts", get(list)).route(
        "/artifacts/{*path}",
        get(download).put(upload).layer(DefaultBodyLimit::disable()),
    )
}

/// The run and the path below its artifacts (`""`: the folder itself) that
/// `<run id>/artifacts[/<path>]` names, once the run is known to be the caller's.
async fn owned_path(s: &AppState, auth: &AuthTeam, full: &str) -> Result<(Uuid, String), AppError> {
    let (run_id, below) = split(full)?;
    owned_run(&mut *s.pool.acquire().await?, auth, run_id).await?;
    Ok((run_id, below))
}

/// Splits `<run id>/artifacts[/<path>]` into the run and the checked path below its artifacts.
fn split(full: &str) -> Result<(Uuid, String), AppError> {
    let field = "path";
    let full = full.trim_start_matches('/');
    let (run, rest) = full.split_once('/').unwrap_or((full, ""));
    let run_id = parse_run_id(run)?;
    let below = match rest.split_once('/') {
        Some((ARTIFACTS, below)) => below,
        None if rest == ARTIFACTS => "",
        _ => {
            return Err(AppError::invalid(
                field,
                format!("{full:?} is not <run id>/artifacts/<path>"),
            ));
        }
    };
    if !below.is_empty() {
        check_path(field, below)?;
    }
    Ok((run_id, below.to_string()))
}

/// `PUT /artifacts/<run id>/artifacts/<path>`: the body, streamed into the store.
async fn upload(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Path(path): Path<String>,
    request: Request,
) -> MlResult<Json<Value>> {
    let (run_id, below) = owned_path(&s, &auth, &path).await?;
    if below.is_empty() {
        return Err(AppError::invalid("path", "an upload names a file below artifacts/").into());
    }
    let written = s.artifacts.put(run_id, &below, request.into_body()).await?;
    tracing::debug!(%run_id, path = %below, bytes = written, "artifact stored");
    Ok(Json(json!({})))
}

/// `GET /artifacts/<run id>/artifacts/<path>`: the file, streamed out.
async fn download(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Path(path): Path<String>,
) -> MlResult<Response> {
    let (run_id, below) = owned_path(&s, &auth, &path).await?;
    let (size, stream) = s.artifacts.get(run_id, &below).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    path: String,
}

/// `GET /artifacts?path=<run id>/artifacts[/<folder>]`: the folder's entries, by name.
async fn list(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiQuery(q)): Ml<ApiQuery<ListQuery>>,
) -> MlResult<Json<Value>> {
    let (run_id, below) = owned_path(&s, &auth, &q.path).await?;
    let files: Vec<Value> = s
        .artifacts
        .list(run_id, &below)
        .await?
        .into_iter()
        .map(|e| match e.size {
            Some(size) => json!({ "path": e.name, "is_dir": false, "file_size": size }),
            None => json!({ "path": e.name, "is_dir": true }),
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}
