//! Models: local HF folders, run checkpoints and OpenAI-compatible endpoints.

use crate::error::{AppError, Result};
use crate::store::on_unique;
use crucible_types::{Model, ModelSource, RegisterModel};
use sqlx::{FromRow, PgConnection, PgPool};
use std::path::Path;
use uuid::Uuid;

#[derive(FromRow)]
struct ModelRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    source: String,
    path: Option<String>,
    base_url: Option<String>,
    endpoint_model: Option<String>,
    hub_repo: Option<String>,
    hub_revision: Option<String>,
    architecture: Option<String>,
    produced_by_run: Option<Uuid>,
    step: Option<i64>,
    training_datasets: Vec<Uuid>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<ModelRow> for Model {
    fn from(r: ModelRow) -> Self {
        let source = match (r.source.as_str(), r.produced_by_run, r.step) {
            ("openai", ..) => ModelSource::Openai {
                base_url: r.base_url.unwrap_or_default(),
                model: r.endpoint_model.unwrap_or_default(),
            },
            ("hf_hub", ..) => ModelSource::HfHub {
                repo: r.hub_repo.unwrap_or_default(),
                revision: r.hub_revision,
            },
            ("checkpoint", Some(run_id), Some(step)) => ModelSource::Checkpoint {
                path: r.path.unwrap_or_default(),
                run_id,
                step,
            },
            _ => ModelSource::HfLocal {
                path: r.path.unwrap_or_default(),
            },
        };
        Model {
            id: r.id,
            team_id: r.team_id,
            name: r.name,
            source,
            architecture: r.architecture,
            training_datasets: r.training_datasets,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "id, team_id, name, source, path, base_url, endpoint_model, hub_repo, \
     hub_revision, architecture, produced_by_run, step, training_datasets, created_at";

/// Reads `architectures[0]` from an HF folder, refusing folders that are not one.
fn read_architecture(path: &str) -> Result<(String, serde_json::Value)> {
    let field = "source.path";
    if !Path::new(path).is_absolute() {
        return Err(AppError::invalid(field, "must be an absolute path"));
    }
    let config_path = Path::new(path).join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        let message = format!("cannot read {} on the server: {e}", config_path.display());
        match e.kind() {
            // The folder (or its config) is not there: a reference to nothing, like an unknown id.
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
                AppError::missing(field, message)
            }
            _ => AppError::invalid(field, message),
        }
    })?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        AppError::invalid(
            field,
            format!("{} is not valid JSON: {e}", config_path.display()),
        )
    })?;
    let arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .ok_or_else(|| {
            AppError::invalid(
                field,
                format!("{} has no `architectures` entry", config_path.display()),
            )
        })?
        .to_string();
    Ok((arch, config))
}

fn check_url(url: &str) -> Result<()> {
    if !crucible_types::is_endpoint_url(url) {
        return Err(AppError::invalid(
            "source.base_url",
            "must be an http:// or https:// URL without spaces",
        ));
    }
    Ok(())
}

/// A source as the `models` table stores it: its kind and the columns that kind fills.
#[derive(Default)]
struct SourceColumns<'a> {
    source: &'static str,
    path: Option<&'a str>,
    base_url: Option<&'a str>,
    endpoint_model: Option<&'a str>,
    hub_repo: Option<&'a str>,
    hub_revision: Option<&'a str>,
    run: Option<Uuid>,
    step: Option<i64>,
}

impl<'a> SourceColumns<'a> {
    /// The columns of `source`, after checking what can be checked without the worker.
    fn of(source: &'a ModelSource) -> Result<Self> {
        Ok(match source {
            ModelSource::HfLocal { path } => Self {
                source: "hf_local",
                path: Some(path),
                ..Self::default()
            },
            ModelSource::Checkpoint { path, run_id, step } => Self {
                source: "checkpoint",
                path: Some(path),
                run: Some(*run_id),
                step: Some(*step),
                ..Self::default()
            },
            ModelSource::Openai { base_url, model } => {
                check_url(base_url)?;
                crucible_types::check_name("source.model", model)?;
                Self {
                    source: "openai",
                    base_url: Some(base_url),
                    endpoint_model: Some(model),
                    ..Self::default()
                }
            }
            ModelSource::HfHub { repo, revision } => {
                if !crucible_types::is_hub_repo_id(repo) {
                    return Err(AppError::invalid(
                        "source.repo",
                        "must be a Hugging Face model id: `owner/name` of letters, digits, `-`, `_`, `.`",
                    ));
                }
                if let Some(r) = revision
                    .as_deref()
                    .filter(|r| !crucible_types::is_hub_revision(r))
                {
                    return Err(AppError::invalid(
                        "source.revision",
                        format!("{r:?} is not a branch, tag or commit name"),
                    ));
                }
                Self {
                    source: "hf_hub",
                    hub_repo: Some(repo),
                    hub_revision: revision.as_deref(),
                    ..Self::default()
                }
            }
        })
    }
}

/// Registers a model after checking its source: HF folders must be readable by the server.
pub async fn register(
    conn: &mut PgConnection,
    team_id: Uuid,
    req: &RegisterModel,
) -> Result<Model> {
    crucible_types::check_name("name", &req.name)?;
    let columns = SourceColumns::of(&req.source)?;
    let (architecture, config) = match columns.path {
        Some(p) => {
            let (a, c) = read_architecture(p)?;
            (Some(a), Some(c))
        }
        None => (None, None),
    };
    let row: ModelRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO models (id, team_id, name, source, path, base_url, endpoint_model, hub_repo,
                             hub_revision, architecture, config, produced_by_run, step, training_datasets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(team_id)
    .bind(&req.name)
    .bind(columns.source)
    .bind(columns.path)
    .bind(columns.base_url)
    .bind(columns.endpoint_model)
    .bind(columns.hub_repo)
    .bind(columns.hub_revision)
    .bind(architecture)
    .bind(config)
    .bind(columns.run)
    .bind(columns.step)
    .bind(&req.training_datasets)
    .fetch_one(conn)
    .await
    .map_err(on_unique("name", format!("a model named {:?} already exists in this team", req.name)))?;
    Ok(row.into())
}

/// One model.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Model> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, id).await
}

/// One model, inside the caller's transaction.
pub async fn get_in(conn: &mut PgConnection, id: Uuid) -> Result<Model> {
    sqlx::query_as::<_, ModelRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM models WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(Into::into)
    .ok_or_else(|| AppError::NotFound(format!("model {id}")))
}

/// All models, optionally of one team, newest first.
pub async fn list(pool: &PgPool, team_id: Option<Uuid>) -> Result<Vec<Model>> {
    let rows: Vec<ModelRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM models WHERE $1::uuid IS NULL OR team_id = $1 ORDER BY created_at DESC"
    )))
    .bind(team_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
