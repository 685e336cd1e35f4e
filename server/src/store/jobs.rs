//! The job queue in Postgres: submission, leases with `FOR UPDATE SKIP LOCKED`, heartbeats,
//! expiry with bounded attempts, cancellation and completion. Any number of workers and server
//! replicas can share it: every transition is one transaction on the job's row.

use crate::error::{AppError, Result};
use crate::store::{models, projects, runs};
use crucible_types::{
    CreateRun, EvalStatus, EvalTarget, Job, JobKind, JobProgress, JobRequirements, JobSpec,
    JobStatus, Lease, RunKind, RunStatus, SamplingParams, SubmitJob, Worker, config_params,
};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

/// Project that holds eval runs when the spec names none.
const EVALS_PROJECT: &str = "evals";
/// Project that holds generate runs.
const GENERATE_PROJECT: &str = "generate";
/// Project that holds training runs.
const TRAINING_PROJECT: &str = "training";

#[derive(FromRow)]
struct JobRow {
    id: Uuid,
    team_id: Uuid,
    kind: String,
    spec: Json<JobSpec>,
    requirements: Json<JobRequirements>,
    status: String,
    priority: i32,
    run_id: Option<Uuid>,
    attempts: i32,
    max_attempts: i32,
    worker_id: Option<Uuid>,
    lease_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    heartbeat_at: Option<chrono::DateTime<chrono::Utc>>,
    progress: Option<Json<JobProgress>>,
    error: Option<String>,
    cancel_requested: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = AppError;
    fn try_from(r: JobRow) -> Result<Self> {
        let corrupt =
            |e: crucible_types::UnknownVariant| AppError::Db(sqlx::Error::Decode(Box::new(e)));
        Ok(Job {
            id: r.id,
            team_id: r.team_id,
            kind: r.kind.parse::<JobKind>().map_err(corrupt)?,
            spec: r.spec.0,
            status: r.status.parse::<JobStatus>().map_err(corrupt)?,
            priority: r.priority,
            requirements: r.requirements.0,
            run_id: r.run_id,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            worker_id: r.worker_id,
            lease_expires_at: r.lease_expires_at,
            heartbeat_at: r.heartbeat_at,
            progress: r.progress.map(|p| p.0),
            error: r.error,
            cancel_requested: r.cancel_requested,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

const COLUMNS: &str = "id, team_id, kind, spec, requirements, status, priority, run_id, attempts, max_attempts, \
     worker_id, lease_expires_at, heartbeat_at, progress, error, cancel_requested, created_at, started_at, finished_at";

async fn project_for(
    conn: &mut PgConnection,
    team_id: Uuid,
    given: Option<Uuid>,
    default: &str,
) -> Result<Uuid> {
    if let Some(id) = given {
        let field = "spec.project_id";
        let p = projects::get(&mut *conn, id)
            .await
            .map_err(|e| e.named_by(field))?;
        if p.team_id != team_id {
            return Err(AppError::missing(field, format!("project {id} not found")));
        }
        return Ok(id);
    }
    if let Some(p) = projects::find_by_name(conn, team_id, default).await? {
        return Ok(p.id);
    }
    Ok(projects::create(
        conn,
        team_id,
        default,
        "created for jobs submitted without a project",
    )
    .await?
    .id)
}

/// Queues `req` for the team in one transaction and announces its run; the API and the
/// dashboard's form both submit through here.
pub async fn queue(pool: &PgPool, team_id: Uuid, req: &SubmitJob) -> Result<Job> {
    let mut tx = pool.begin().await?;
    let job = submit(&mut tx, team_id, req).await?;
    crate::live::job_run_updated(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(job)
}

/// Enqueues a job, creating its run (and, for evals, one eval record per benchmark). The
/// request's own checks live in [`SubmitJob::validate`]; here only what needs the database:
/// the model and datasets it names exist and belong to the team.
pub async fn submit(conn: &mut PgConnection, team_id: Uuid, req: &SubmitJob) -> Result<Job> {
    req.validate()?;
    let max_attempts = req.max_attempts.unwrap_or(3);
    let model = match req.spec.model_id() {
        Some(id) => {
            let field = "spec.model_id";
            let m = models::get_in(&mut *conn, id)
                .await
                .map_err(|e| e.named_by(field))?;
            if m.team_id != team_id {
                return Err(AppError::missing(field, format!("model {id} not found")));
            }
            Some(m)
        }
        None => None,
    };
    for (field, id) in req.spec.dataset_ids() {
        let owner: Option<Uuid> = sqlx::query_scalar("SELECT team_id FROM datasets WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if owner != Some(team_id) {
            return Err(AppError::missing(
                format!("spec.{field}"),
                format!("dataset {id} not found"),
            ));
        }
    }
    let model_name = model.as_ref().map(|m| m.name.clone()).unwrap_or_default();
    let (project_id, run_name, params): (Uuid, String, Vec<(String, String)>) = match &req.spec {
        JobSpec::Eval(e) => {
            let project = project_for(conn, team_id, e.project_id, EVALS_PROJECT).await?;
            let params = vec![
                ("model".to_string(), model_name.clone()),
                ("benchmarks".to_string(), e.benchmarks.join(",")),
                (
                    "preset".to_string(),
                    e.preset
                        .unwrap_or(crucible_types::Preset::Greedy)
                        .to_string(),
                ),
            ];
            (
                project,
                format!("eval {model_name} on {}", e.benchmarks.join(",")),
                params,
            )
        }
        JobSpec::Generate(g) => {
            let project = project_for(conn, team_id, None, GENERATE_PROJECT).await?;
            let params = vec![
                ("model".to_string(), model_name.clone()),
                ("prompts".to_string(), g.prompts.len().to_string()),
                (
                    "max_new_tokens".to_string(),
                    g.sampling.max_new_tokens.to_string(),
                ),
            ];
            (project, format!("generate with {model_name}"), params)
        }
        JobSpec::Pretrain(t) | JobSpec::Sft(t) => {
            let project = project_for(conn, team_id, None, TRAINING_PROJECT).await?;
            (
                project,
                format!(
                    "{} {}",
                    req.spec.kind(),
                    t.model_name.clone().unwrap_or_default()
                )
                .trim()
                .to_string(),
                config_params(&t.config).into_iter().collect(),
            )
        }
        JobSpec::Rl(r) => {
            let project = project_for(conn, team_id, None, TRAINING_PROJECT).await?;
            let mut params: Vec<(String, String)> = config_params(&r.config).into_iter().collect();
            params.push(("model".to_string(), model_name.clone()));
            let name = r.model_name.clone().unwrap_or_else(|| model_name.clone());
            (project, format!("rl {name}"), params)
        }
    };
    let kind = match req.spec.kind() {
        JobKind::Eval => RunKind::Eval,
        JobKind::Generate => RunKind::Generate,
        JobKind::Sft => RunKind::Sft,
        JobKind::Rl => RunKind::Rl,
        JobKind::Pretrain => RunKind::Pretrain,
    };
    let run = runs::create(
        conn,
        &CreateRun {
            project_id,
            // Generated from the model and benchmark names: cut to the longest name a run takes.
            name: Some(
                run_name
                    .chars()
                    .take(crucible_types::MAX_NAME_CHARS)
                    .collect(),
            ),
            kind: Some(kind),
            status: Some(RunStatus::Queued),
            params: params.into_iter().collect(),
            config: serde_json::to_value(&req.spec).ok(),
            ..CreateRun::default()
        },
    )
    .await?;
    let job_id = Uuid::new_v4();
    let row: JobRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs (id, team_id, kind, spec, requirements, status, priority, run_id, max_attempts)
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8) RETURNING {COLUMNS}"
    )))
    .bind(job_id)
    .bind(team_id)
    .bind(req.spec.kind().as_str())
    .bind(Json(&req.spec))
    .bind(Json(&req.requirements))
    .bind(req.priority)
    .bind(run.id)
    .bind(max_attempts)
    .fetch_one(&mut *conn)
    .await?;
    if let JobSpec::Eval(e) = &req.spec {
        for b in &e.benchmarks {
            let (n, sampling) = e.resolve(b).map_err(|m| AppError::from(m.under("spec")))?;
            sqlx::query(
                "INSERT INTO evals (id, team_id, run_id, job_id, model_id, benchmark, sampling, n_samples, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued')",
            )
            .bind(Uuid::new_v4())
            .bind(team_id)
            .bind(run.id)
            .bind(job_id)
            .bind(req.spec.model_id())
            .bind(b)
            .bind(Json(&sampling))
            .bind(n as i32)
            .execute(&mut *conn)
            .await?;
        }
    }
    row.try_into()
}

/// One job.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Job> {
    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("job {id}")))?
    .try_into()
}

/// Most jobs one listing returns.
pub const MAX_LIST: i64 = 1000;

/// Jobs, newest first, optionally of one team and status.
pub async fn list(
    pool: &PgPool,
    team_id: Option<Uuid>,
    status: Option<JobStatus>,
    limit: i64,
) -> Result<Vec<Job>> {
    crate::store::check_window(limit, MAX_LIST, 0)?;
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::text IS NULL OR status = $2)
         ORDER BY created_at DESC LIMIT $3"
    )))
    .bind(team_id)
    .bind(status.map(JobStatus::as_str))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Marks the job's run (and unfinished evals) with the job's terminal outcome.
async fn settle_run(
    conn: &mut PgConnection,
    job_id: Uuid,
    status: JobStatus,
    error: Option<&str>,
) -> Result<()> {
    let (run_status, eval_status) = match status {
        JobStatus::Succeeded => (RunStatus::Finished, EvalStatus::Finished),
        JobStatus::Cancelled => (RunStatus::Killed, EvalStatus::Killed),
        _ => (RunStatus::Failed, EvalStatus::Failed),
    };
    sqlx::query(
        "UPDATE runs SET status = $2, finished_at = COALESCE(finished_at, now()), updated_at = now()
         WHERE id = (SELECT run_id FROM jobs WHERE id = $1) AND status NOT IN ('finished', 'failed', 'killed')",
    )
    .bind(job_id)
    .bind(run_status.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE evals SET status = $2, error = $3, finished_at = COALESCE(finished_at, now())
         WHERE job_id = $1 AND status NOT IN ('finished', 'failed', 'killed')",
    )
    .bind(job_id)
    .bind(eval_status.as_str())
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Returns jobs whose lease ran out to the queue, or fails them once their attempts are spent.
pub async fn reap_expired(conn: &mut PgConnection) -> Result<()> {
    let expired: Vec<(Uuid, bool)> = sqlx::query_as(
        "UPDATE jobs SET
            status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
            error = 'lease expired: worker ' || worker_id::text || ' stopped sending heartbeats (attempt '
                    || attempts || ' of ' || max_attempts || ')',
            worker_id = NULL, lease_expires_at = NULL,
            finished_at = CASE WHEN attempts >= max_attempts THEN now() END
         WHERE status = 'running' AND lease_expires_at < now()
         RETURNING id, status = 'failed'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (id, failed) in expired {
        tracing::warn!(job = %id, failed, "job lease expired");
        if failed {
            settle_run(
                conn,
                id,
                JobStatus::Failed,
                Some("lease expired too many times"),
            )
            .await?;
        }
    }
    Ok(())
}

/// Hands the worker the best queued job it can run, or `None`.
pub async fn lease(
    conn: &mut PgConnection,
    worker: &Worker,
    lease_seconds: u32,
) -> Result<Option<Lease>> {
    reap_expired(conn).await?;
    let caps = &worker.capabilities;
    let kinds: Vec<&str> = caps.kinds.iter().map(|k| k.as_str()).collect();
    let devices: Vec<&str> = caps.devices.iter().map(|d| d.as_str()).collect();
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', worker_id = $2, attempts = attempts + 1,
                lease_expires_at = now() + make_interval(secs => $6), heartbeat_at = now(),
                started_at = COALESCE(started_at, now()), error = NULL
         WHERE id = (
            SELECT id FROM jobs
            WHERE status = 'queued' AND team_id = $1 AND NOT cancel_requested AND kind = ANY($3)
              AND (requirements->>'device' IS NULL OR requirements->>'device' = ANY($4))
              AND (requirements->>'min_memory_gb' IS NULL OR (requirements->>'min_memory_gb')::float8 <= $5)
            ORDER BY priority DESC, created_at
            LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    )))
    .bind(worker.team_id)
    .bind(worker.id)
    .bind(&kinds)
    .bind(&devices)
    .bind(caps.memory_gb)
    .bind(f64::from(lease_seconds))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let job: Job = row.try_into()?;
    sqlx::query(
        "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now()
         WHERE id = $1 AND status = 'queued'",
    )
    .bind(job.run_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE evals SET status = 'running' WHERE job_id = $1 AND status = 'queued'")
        .bind(job.id)
        .execute(&mut *conn)
        .await?;
    let model = match job.spec.model_id() {
        Some(id) => Some(models::get_in(&mut *conn, id).await?),
        None => None,
    };
    let targets: Vec<(String, Uuid, i32, Json<SamplingParams>)> = sqlx::query_as(
        "SELECT benchmark, id, n_samples, sampling FROM evals
             WHERE job_id = $1 AND status <> 'finished' ORDER BY created_at, benchmark",
    )
    .bind(job.id)
    .fetch_all(&mut *conn)
    .await?;
    let evals = targets
        .into_iter()
        .map(|(benchmark, eval_id, n, sampling)| EvalTarget {
            benchmark,
            eval_id,
            n_samples: n as u32,
            sampling: sampling.0,
        })
        .collect();
    Ok(Some(Lease {
        job,
        model,
        evals,
        lease_seconds,
    }))
}

/// The running job held by `worker_id`, or a 409 saying the lease is gone.
pub async fn held(conn: &mut PgConnection, job_id: Uuid, worker_id: Uuid) -> Result<Job> {
    let job = get(conn, job_id).await?;
    if job.status != JobStatus::Running || job.worker_id != Some(worker_id) {
        return Err(AppError::LeaseLost(format!(
            "worker {worker_id} does not hold the lease of job {job_id} (status {})",
            job.status
        )));
    }
    Ok(job)
}

/// Renews the lease and records progress; tells the worker whether to stop.
pub async fn heartbeat(
    conn: &mut PgConnection,
    job_id: Uuid,
    worker_id: Uuid,
    progress: Option<&JobProgress>,
    lease_seconds: u32,
) -> Result<bool> {
    held(conn, job_id, worker_id).await?;
    let cancel: bool = sqlx::query_scalar(
        "UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $3),
                progress = COALESCE($2, progress)
         WHERE id = $1 RETURNING cancel_requested",
    )
    .bind(job_id)
    .bind(progress.map(Json))
    .bind(f64::from(lease_seconds))
    .fetch_one(&mut *conn)
    .await?;
    crate::store::workers::seen(conn, worker_id, lease_seconds).await?;
    Ok(cancel)
}

/// Ends the job: succeeded (progress then reads done = total), failed (no retry: the worker saw
/// a real error) or, if cancellation was asked for, cancelled.
pub async fn complete(
    conn: &mut PgConnection,
    job_id: Uuid,
    worker_id: Uuid,
    error: Option<&str>,
) -> Result<Job> {
    let job = held(conn, job_id, worker_id).await?;
    let status = match (job.cancel_requested, error) {
        (true, _) => JobStatus::Cancelled,
        (false, None) => JobStatus::Succeeded,
        (false, Some(_)) => JobStatus::Failed,
    };
    // A job that succeeded did all its work, whatever its last heartbeat said: its progress is final.
    sqlx::query(
        "UPDATE jobs SET status = $2, error = $3, finished_at = now(), lease_expires_at = NULL,
                progress = CASE WHEN $2 = 'succeeded' AND progress IS NOT NULL
                                THEN jsonb_set(progress, '{done}', progress->'total') ELSE progress END
         WHERE id = $1",
    )
    .bind(job_id)
    .bind(status.as_str())
    .bind(error)
    .execute(&mut *conn)
    .await?;
    settle_run(conn, job_id, status, error).await?;
    get(conn, job_id).await
}

/// Cancels a queued job at once, or asks the worker of a running one to stop.
pub async fn cancel(conn: &mut PgConnection, job_id: Uuid) -> Result<Job> {
    let job = get(conn, job_id).await?;
    match job.status {
        JobStatus::Queued => {
            sqlx::query("UPDATE jobs SET status = 'cancelled', cancel_requested = true, finished_at = now() WHERE id = $1")
                .bind(job_id)
                .execute(&mut *conn)
                .await?;
            settle_run(conn, job_id, JobStatus::Cancelled, Some("cancelled")).await?;
        }
        JobStatus::Running => {
            sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1")
                .bind(job_id)
                .execute(&mut *conn)
                .await?;
        }
        done => {
            return Err(AppError::Conflict {
                field: None,
                message: format!("job is already {done}"),
            });
        }
    }
    get(conn, job_id).await
}

/// How many jobs of every team are in each (status, kind): the queue's gauges on `/metrics`.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, String, i64)>> {
    Ok(
        sqlx::query_as("SELECT status, kind, count(*) FROM jobs GROUP BY status, kind")
            .fetch_all(pool)
            .await?,
    )
}
