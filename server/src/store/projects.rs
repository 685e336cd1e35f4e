//! Projects: a team's folders of runs.

use crate::error::{AppError, Result};
use crate::store::on_unique;
use crucible_types::Project;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

#[derive(FromRow)]
struct ProjectRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    description: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            team_id: r.team_id,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
        }
    }
}

/// Creates a project; a duplicate name in the team is a 409.
pub async fn create(
    conn: &mut PgConnection,
    team_id: Uuid,
    name: &str,
    description: &str,
) -> Result<Project> {
    crucible_types::check_name("name", name)?;
    let row: ProjectRow = sqlx::query_as(
        "INSERT INTO projects (id, team_id, name, description) VALUES ($1, $2, $3, $4)
         RETURNING id, team_id, name, description, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(team_id)
    .bind(name)
    .bind(description)
    .fetch_one(conn)
    .await
    .map_err(on_unique(
        "name",
        format!("a project named {name:?} already exists in this team"),
    ))?;
    Ok(row.into())
}

/// The project with this id.
pub async fn get<'e>(executor: impl sqlx::PgExecutor<'e>, id: Uuid) -> Result<Project> {
    sqlx::query_as::<_, ProjectRow>(
        "SELECT id, team_id, name, description, created_at FROM projects WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?
    .map(Into::into)
    .ok_or_else(|| AppError::NotFound(format!("project {id}")))
}

/// The team's project with this name, if any.
pub async fn find_by_name(
    conn: &mut PgConnection,
    team_id: Uuid,
    name: &str,
) -> Result<Option<Project>> {
    Ok(sqlx::query_as::<_, ProjectRow>(
        "SELECT id, team_id, name, description, created_at FROM projects WHERE team_id = $1 AND name = $2",
    )
    .bind(team_id)
    .bind(name)
    .fetch_optional(conn)
    .await?
    .map(Into::into))
}

/// All projects, optionally of one team, newest first.
pub async fn list(pool: &PgPool, team_id: Option<Uuid>) -> Result<Vec<Project>> {
    let rows: Vec<ProjectRow> = sqlx::query_as(
        "SELECT id, team_id, name, description, created_at FROM projects
         WHERE $1::uuid IS NULL OR team_id = $1 ORDER BY created_at DESC",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
