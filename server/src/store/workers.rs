//! Workers: registration and listing (the queue tracks leases on jobs).

use crate::error::{AppError, Result};
use crucible_types::{RegisterWorker, Worker, WorkerCapabilities};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

#[derive(FromRow)]
struct WorkerRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    capabilities: Json<WorkerCapabilities>,
    registered_at: chrono::DateTime<chrono::Utc>,
    last_seen_at: chrono::DateTime<chrono::Utc>,
}

impl From<WorkerRow> for Worker {
    fn from(r: WorkerRow) -> Self {
        Worker {
            id: r.id,
            team_id: r.team_id,
            name: r.name,
            capabilities: r.capabilities.0,
            registered_at: r.registered_at,
            last_seen_at: r.last_seen_at,
        }
    }
}

/// Registers a worker of the team.
pub async fn register(
    conn: &mut PgConnection,
    team_id: Uuid,
    req: &RegisterWorker,
) -> Result<Worker> {
    crate::store::projects::check_name("name", &req.name)?;
    if req.capabilities.kinds.is_empty() {
        return Err(AppError::invalid(
            "capabilities.kinds",
            "a worker must run at least one job kind",
        ));
    }
    let row: WorkerRow = sqlx::query_as(
        "INSERT INTO workers (id, team_id, name, capabilities) VALUES ($1, $2, $3, $4)
         RETURNING id, team_id, name, capabilities, registered_at, last_seen_at",
    )
    .bind(Uuid::new_v4())
    .bind(team_id)
    .bind(&req.name)
    .bind(Json(&req.capabilities))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// The worker, checked to belong to `team_id`; refreshes its last-seen time.
pub async fn touch(conn: &mut PgConnection, team_id: Uuid, id: Uuid) -> Result<Worker> {
    let row: WorkerRow = sqlx::query_as(
        "UPDATE workers SET last_seen_at = now() WHERE id = $1
         RETURNING id, team_id, name, capabilities, registered_at, last_seen_at",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("worker {id}")))?;
    if row.team_id != team_id {
        return Err(AppError::Forbidden("worker belongs to another team".into()));
    }
    Ok(row.into())
}

/// All workers, most recently seen first.
pub async fn list(pool: &PgPool, team_id: Option<Uuid>) -> Result<Vec<Worker>> {
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "SELECT id, team_id, name, capabilities, registered_at, last_seen_at FROM workers
         WHERE $1::uuid IS NULL OR team_id = $1 ORDER BY last_seen_at DESC",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
