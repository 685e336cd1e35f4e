//! `/api/v1/datasets`: JSONL import, listing and row previews.

use crate::auth::{AuthTeam, ScopeCheck, Viewer};
use crate::error::{AppError, Result};
use crate::extract::{ApiBody, ApiPath, ApiQuery};
use crate::routes::projects::TeamFilter;
use crate::state::AppState;
use crate::store::datasets;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crucible_types::{ApiError, Dataset, DatasetRows, ImportDatasetQuery, ImportDatasetResult};
use uuid::Uuid;

/// Largest JSONL import.
const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(list))
        .route(
            "/datasets/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/datasets/{id}", get(show))
        .route("/datasets/{id}/rows", get(rows))
}

/// The body of an import as the OpenAPI document describes it: at least one row object, each
/// sent as one line. (The document's type only; the handler reads the lines itself.)
pub struct DatasetUpload;

impl utoipa::PartialSchema for DatasetUpload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Object))
            .min_items(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for DatasetUpload {}

/// Imports a JSONL body as a new version of the named dataset (or returns the identical existing one).
#[utoipa::path(post, path = "/api/v1/datasets/import", params(ImportDatasetQuery),
    request_body(content = DatasetUpload, content_type = "application/x-ndjson",
        description = "One row object per line (blank lines are skipped), with the fields the `kind` needs (docs/datasets.md); up to 256 MiB."),
    responses((status = 201, body = ImportDatasetResult), (status = 200, body = ImportDatasetResult),
              (status = 422, body = ApiError)))]
pub async fn import(
    State(s): State<AppState>,
    auth: AuthTeam,
    ApiQuery(q): ApiQuery<ImportDatasetQuery>,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, Json<ImportDatasetResult>)> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| AppError::invalid("body", format!("not UTF-8: {e}")))?;
    let rows = datasets::parse_jsonl(q.kind, text)?;
    let mut tx = s.pool.begin().await?;
    let result = datasets::import(
        &mut tx,
        auth.team_id,
        &q.name,
        q.kind,
        q.source.as_deref(),
        &rows,
    )
    .await?;
    tx.commit().await?;
    let status = if result.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(result)))
}

/// Lists dataset versions.
#[utoipa::path(get, path = "/api/v1/datasets", params(TeamFilter), responses((status = 200, body = Vec<Dataset>)))]
pub async fn list(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<TeamFilter>,
) -> Result<Json<Vec<Dataset>>> {
    let Some(team) = scope.narrow(f.team_id) else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(datasets::list(&s.pool, team).await?))
}

/// One dataset version.
#[utoipa::path(get, path = "/api/v1/datasets/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Dataset), (status = 404, body = ApiError)))]
pub async fn show(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Dataset>> {
    Ok(Json(scope.visible(datasets::get(&s.pool, id).await?)?))
}

/// A window of rows.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RowsQuery {
    /// First row (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Rows to return, 1–1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Rows for a preview.
#[utoipa::path(get, path = "/api/v1/datasets/{id}/rows", params(("id" = Uuid, Path), RowsQuery),
    responses((status = 200, body = DatasetRows), (status = 404, body = ApiError)))]
pub async fn rows(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<RowsQuery>,
) -> Result<Json<DatasetRows>> {
    scope.visible(datasets::get(&s.pool, id).await?)?;
    Ok(Json(
        datasets::rows(&s.pool, id, q.offset.unwrap_or(0), q.limit.unwrap_or(20)).await?,
    ))
}
