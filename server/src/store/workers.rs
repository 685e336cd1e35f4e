//! Workers: registration, liveness and listing (the queue tracks leases on jobs).
//!
//! A worker is online while it keeps in touch: every registration, lease poll and heartbeat moves
//! `online_until` one lease length ahead, so a worker silent for a whole lease shows as offline
//! (the same rule that takes its job back). Workers unseen for [`LISTED_HOURS`] leave the list;
//! their rows stay, so jobs keep naming the worker that ran them.

use crate::error::{AppError, Result};
use crucible_types::{RegisterWorker, Worker, WorkerCapabilities};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

/// How long a silent worker stays listed (as offline) before it leaves the list.
pub const LISTED_HOURS: i32 = 24;

/// The columns of a [`Worker`], with `online` derived from `online_until`.
const COLUMNS: &str =
    "id, team_id, name, capabilities, registered_at, last_seen_at, online_until > now() AS online";

#[derive(FromRow)]
struct WorkerRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    capabilities: Json<WorkerCapabilities>,
    registered_at: chrono::DateTime<chrono::Utc>,
    last_seen_at: chrono::DateTime<chrono::Utc>,
    online: bool,
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
            online: r.online,
        }
    }
}

/// Registers a worker of the team after [`RegisterWorker::validate`] (printable name, memory
/// within physical bounds, devices and kinds named once each, at least one of each).
pub async fn register(
    conn: &mut PgConnection,
    team_id: Uuid,
    req: &RegisterWorker,
    lease_seconds: u32,
) -> Result<Worker> {
    req.validate()?;
    let row: WorkerRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO workers (id, team_id, name, capabilities, online_until)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(team_id)
    .bind(&req.name)
    .bind(Json(&req.capabilities))
    .bind(f64::from(lease_seconds))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Records that the worker was heard from: last seen now, online for one more lease.
pub async fn seen(conn: &mut PgConnection, id: Uuid, lease_seconds: u32) -> Result<Worker> {
    let row: WorkerRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE workers SET last_seen_at = now(), online_until = now() + make_interval(secs => $2)
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(f64::from(lease_seconds))
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("worker {id}")))?;
    Ok(row.into())
}

/// The worker, checked to belong to `team_id`; records that it was seen.
pub async fn touch(
    conn: &mut PgConnection,
    team_id: Uuid,
    id: Uuid,
    lease_seconds: u32,
) -> Result<Worker> {
    let worker = seen(conn, id, lease_seconds).await?;
    if worker.team_id != team_id {
        return Err(AppError::NotFound(format!("worker {id}")));
    }
    Ok(worker)
}

/// Workers seen in the last [`LISTED_HOURS`], most recently seen first.
pub async fn list(pool: &PgPool, team_id: Option<Uuid>) -> Result<Vec<Worker>> {
    let rows: Vec<WorkerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM workers
         WHERE ($1::uuid IS NULL OR team_id = $1) AND last_seen_at > now() - make_interval(hours => $2)
         ORDER BY last_seen_at DESC"
    )))
    .bind(team_id)
    .bind(LISTED_HOURS)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Workers of every team online now (heard from within one lease).
pub async fn online_count(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM workers WHERE online_until > now()")
            .fetch_one(pool)
            .await?,
    )
}
