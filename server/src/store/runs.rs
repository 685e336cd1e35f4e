//! Runs: create, read, list with filters, status changes, params and tags.

use crate::error::{AppError, Result};
use chrono::{DateTime, Utc};
use crucible_types::{
    CreateRun, MAX_VALUE_CHARS, RUN_SORT_COLUMNS, Run, RunFilter, RunKind, RunPage, RunStatus,
    StringMap,
};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

#[derive(FromRow)]
struct RunRow {
    id: Uuid,
    project_id: Uuid,
    name: String,
    kind: String,
    status: String,
    params: Json<StringMap>,
    tags: Json<StringMap>,
    parent_run_id: Option<Uuid>,
    command: Option<String>,
    config: Option<serde_json::Value>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RunRow> for Run {
    type Error = AppError;
    fn try_from(r: RunRow) -> Result<Self> {
        let corrupt =
            |e: crucible_types::UnknownVariant| AppError::Db(sqlx::Error::Decode(Box::new(e)));
        Ok(Run {
            id: r.id,
            project_id: r.project_id,
            name: r.name,
            kind: r.kind.parse().map_err(corrupt)?,
            status: r.status.parse().map_err(corrupt)?,
            params: r.params.0,
            tags: r.tags.0,
            parent_run_id: r.parent_run_id,
            command: r.command,
            config: r.config,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        })
    }
}

const RUN_COLUMNS: &str = "r.id, r.project_id, r.name, r.kind, r.status, r.params, r.tags, r.parent_run_id, \
     r.command, r.config, r.created_at, r.started_at, r.finished_at, r.updated_at";

/// A run together with the team that owns it, for authorization.
pub struct OwnedRun {
    /// The run.
    pub run: Run,
    /// Its project's team.
    pub team_id: Uuid,
}

/// Creates a run; the caller has checked that `project_id` belongs to the caller's team.
pub async fn create(conn: &mut PgConnection, req: &CreateRun) -> Result<Run> {
    let status = req.status.unwrap_or(RunStatus::Running);
    let kind = req.kind.unwrap_or(RunKind::External);
    let name = match &req.name {
        Some(n) => {
            crucible_types::check_name("name", n)?;
            n.clone()
        }
        None => format!("{kind}-{}", &Uuid::new_v4().simple().to_string()[..8]),
    };
    check_keys("params", &req.params)?;
    check_keys("tags", &req.tags)?;
    if let Some(parent) = req.parent_run_id {
        let parent_project: Option<Uuid> =
            sqlx::query_scalar("SELECT project_id FROM runs WHERE id = $1")
                .bind(parent)
                .fetch_optional(&mut *conn)
                .await?;
        // A parent elsewhere (another project, another team's) reads as missing: no leak.
        if parent_project != Some(req.project_id) {
            return Err(AppError::missing(
                "parent_run_id",
                format!("run {parent} not found in this project"),
            ));
        }
    }
    let sql = format!(
        "INSERT INTO runs AS r (id, project_id, name, kind, status, params, tags, parent_run_id, command, config,
                                started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                 CASE WHEN $5 = 'queued' THEN NULL ELSE now() END,
                 CASE WHEN $5 IN ('finished', 'failed', 'killed') THEN now() END)
         RETURNING {RUN_COLUMNS}"
    );
    let row: RunRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(req.project_id)
        .bind(name)
        .bind(kind.as_str())
        .bind(status.as_str())
        .bind(Json(&req.params))
        .bind(Json(&req.tags))
        .bind(req.parent_run_id)
        .bind(&req.command)
        .bind(&req.config)
        .fetch_one(conn)
        .await?;
    row.try_into()
}

fn check_keys(field: &str, map: &StringMap) -> Result<()> {
    for (k, v) in map {
        crucible_types::check_key(&format!("{field}.{k}"), k)?;
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(AppError::invalid(
                format!("{field}.{k}"),
                format!("values must have at most {MAX_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// The run and its owning team.
pub async fn get_owned(conn: &mut PgConnection, id: Uuid) -> Result<OwnedRun> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        run: RunRow,
        team_id: Uuid,
    }
    let sql = format!(
        "SELECT {RUN_COLUMNS}, p.team_id FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = $1"
    );
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("run {id}")))?;
    Ok(OwnedRun {
        run: row.run.try_into()?,
        team_id: row.team_id,
    })
}

/// Moves a run to `status`, stamping start and finish times; a terminal run cannot be reopened.
pub async fn update(
    conn: &mut PgConnection,
    current: &Run,
    status: Option<RunStatus>,
    name: Option<&str>,
) -> Result<Run> {
    if let Some(next) = status
        && current.status.is_terminal()
        && next != current.status
    {
        return Err(AppError::Conflict {
            field: Some("status".into()),
            message: format!(
                "run is already {}; a finished run cannot become {next}",
                current.status
            ),
        });
    }
    if let Some(n) = name {
        crucible_types::check_name("name", n)?;
    }
    let sql = format!(
        "UPDATE runs r SET
            status = COALESCE($2, status),
            name = COALESCE($3, name),
            started_at = CASE WHEN $2 IS NOT NULL AND $2 <> 'queued' THEN COALESCE(started_at, now()) ELSE started_at END,
            finished_at = CASE WHEN $2 IN ('finished', 'failed', 'killed') THEN COALESCE(finished_at, now()) ELSE finished_at END,
            updated_at = now()
         WHERE id = $1 RETURNING {RUN_COLUMNS}"
    );
    let row: RunRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(current.id)
        .bind(status.map(RunStatus::as_str))
        .bind(name)
        .fetch_one(conn)
        .await?;
    row.try_into()
}

/// Adds params; re-logging the same value is a no-op, a different value is a 409 (as in MLflow).
pub async fn log_params(conn: &mut PgConnection, run: &Run, params: &StringMap) -> Result<()> {
    check_keys("params", params)?;
    for (k, v) in params {
        if let Some(old) = run.params.get(k)
            && old != v
        {
            return Err(AppError::Conflict {
                field: Some(format!("params.{k}")),
                message: format!(
                    "param {k:?} is already {old:?}; params cannot change once logged"
                ),
            });
        }
    }
    sqlx::query("UPDATE runs SET params = params || $2, updated_at = now() WHERE id = $1")
        .bind(run.id)
        .bind(Json(params))
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets (overwrites) tags.
pub async fn set_tags(conn: &mut PgConnection, run_id: Uuid, tags: &StringMap) -> Result<()> {
    check_keys("tags", tags)?;
    sqlx::query("UPDATE runs SET tags = tags || $2, updated_at = now() WHERE id = $1")
        .bind(run_id)
        .bind(Json(tags))
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes one tag; removing an absent tag is a 404.
pub async fn delete_tag(conn: &mut PgConnection, run_id: Uuid, key: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE runs SET tags = tags - $2, updated_at = now() WHERE id = $1 AND tags ? $2",
    )
    .bind(run_id)
    .bind(key)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("tag {key:?}")));
    }
    Ok(())
}

/// A listing's page and order, checked: `(limit, offset, sort column, descending)`.
pub fn page_of(f: &RunFilter) -> Result<(i64, i64, &str, bool)> {
    let limit = f.limit.unwrap_or(50);
    let offset = f.offset.unwrap_or(0);
    crate::store::check_window(limit, 500, offset)?;
    let sort = f.sort.as_deref().unwrap_or("-created_at");
    let (column, descending) = match sort.strip_prefix('-') {
        Some(c) => (c, true),
        None => (sort, false),
    };
    if !RUN_SORT_COLUMNS.contains(&column) {
        return Err(AppError::invalid(
            "sort",
            format!(
                "must be one of {} (prefix - for descending)",
                RUN_SORT_COLUMNS.join(", ")
            ),
        ));
    }
    Ok((limit, offset, column, descending))
}

/// The page of runs matching `f`, with the total count.
pub async fn list(pool: &PgPool, f: &RunFilter) -> Result<RunPage> {
    let (limit, offset, column, descending) = page_of(f)?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {RUN_COLUMNS}, count(*) OVER () AS total FROM runs r JOIN projects p ON p.id = r.project_id WHERE true"
    ));
    if let Some(v) = f.project_id {
        qb.push(" AND r.project_id = ").push_bind(v);
    }
    if let Some(v) = f.team_id {
        qb.push(" AND p.team_id = ").push_bind(v);
    }
    if let Some(v) = f.kind {
        qb.push(" AND r.kind = ").push_bind(v.as_str());
    }
    if let Some(v) = f.status {
        qb.push(" AND r.status = ").push_bind(v.as_str());
    }
    if let Some(v) = f.parent_run_id {
        qb.push(" AND r.parent_run_id = ").push_bind(v);
    }
    if let Some(q) = &f.q {
        let pattern = format!(
            "%{}%",
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        qb.push(" AND r.name ILIKE ").push_bind(pattern);
    }
    if let Some(tag) = &f.tag {
        match tag.split_once(':') {
            Some((k, v)) => {
                qb.push(" AND r.tags @> ")
                    .push_bind(serde_json::json!({ k: v }));
            }
            None => {
                qb.push(" AND r.tags ? ").push_bind(tag.clone());
            }
        }
    }
    qb.push(format!(
        " ORDER BY r.{column} {}, r.id",
        if descending { "DESC" } else { "ASC" }
    ));
    qb.push(" LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);

    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        run: RunRow,
        total: i64,
    }
    let rows: Vec<Row> = qb.build_query_as().fetch_all(pool).await?;
    let total = match rows.first() {
        Some(r) => r.total,
        None if offset > 0 => count(pool, f).await?,
        None => 0,
    };
    let runs = rows
        .into_iter()
        .map(|r| r.run.try_into())
        .collect::<Result<_>>()?;
    Ok(RunPage { runs, total })
}

/// Total matching runs when the requested page is past the end (the window count is then unavailable).
async fn count(pool: &PgPool, f: &RunFilter) -> Result<i64> {
    let mut first_page = f.clone();
    first_page.offset = Some(0);
    first_page.limit = Some(1);
    Ok(Box::pin(list(pool, &first_page)).await?.total)
}
