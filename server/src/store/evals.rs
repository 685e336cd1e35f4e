//! Eval records: idempotent sample uploads, scores, the sample browser and the leaderboard.

use crate::error::{AppError, Result};
use crate::store::{contamination, jobs};
use crucible_types::{
    Eval, EvalScore, EvalStatus, LeaderboardRow, ProblemSamples, SampleFilter, SampleRecord,
    SamplingParams,
};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

#[derive(FromRow)]
struct EvalRow {
    id: Uuid,
    team_id: Uuid,
    run_id: Option<Uuid>,
    job_id: Option<Uuid>,
    model_id: Uuid,
    benchmark: String,
    sampling: Json<SamplingParams>,
    n_samples: i32,
    status: String,
    problems: Option<i32>,
    contamination: Option<serde_json::Value>,
    created_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

const COLUMNS: &str = "id, team_id, run_id, job_id, model_id, benchmark, sampling, n_samples, status, problems, \
     contamination, created_at, finished_at";

#[derive(FromRow)]
struct ScoreRow {
    eval_id: Uuid,
    metric: String,
    value: f64,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    n: i32,
}

/// The scores of `ids`, one query for all of them.
async fn scores_of(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<ScoreRow>> {
    Ok(sqlx::query_as(
        "SELECT eval_id, metric, value, ci_low, ci_high, n FROM eval_scores
         WHERE eval_id = ANY($1) ORDER BY eval_id, metric",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

impl EvalRow {
    fn into_eval(self, scores: Vec<EvalScore>) -> Result<Eval> {
        let status = self
            .status
            .parse::<EvalStatus>()
            .map_err(|e| AppError::Db(sqlx::Error::Decode(Box::new(e))))?;
        Ok(Eval {
            id: self.id,
            team_id: self.team_id,
            run_id: self.run_id,
            job_id: self.job_id,
            model_id: self.model_id,
            benchmark: self.benchmark,
            sampling: self.sampling.0,
            n_samples: self.n_samples,
            status,
            problems: self.problems,
            scores,
            contamination: self.contamination,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

/// Attaches each eval's scores (rows arrive sorted by eval then metric).
async fn with_scores(conn: &mut PgConnection, rows: Vec<EvalRow>) -> Result<Vec<Eval>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut by_eval: std::collections::HashMap<Uuid, Vec<EvalScore>> = Default::default();
    for s in scores_of(conn, &ids).await? {
        by_eval.entry(s.eval_id).or_default().push(EvalScore {
            metric: s.metric,
            value: s.value,
            ci_low: s.ci_low,
            ci_high: s.ci_high,
            n: s.n,
        });
    }
    rows.into_iter()
        .map(|r| {
            let scores = by_eval.remove(&r.id).unwrap_or_default();
            r.into_eval(scores)
        })
        .collect()
}

/// One eval with its scores.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Eval> {
    let r: EvalRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM evals WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("eval {id}")))?;
    Ok(with_scores(conn, vec![r]).await?.remove(0))
}

/// Evals, newest first, optionally of one team, job or model: at most `limit` (1–500).
pub async fn list(
    pool: &PgPool,
    team_id: Option<Uuid>,
    job_id: Option<Uuid>,
    model_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Eval>> {
    crate::store::check_window(limit, 500, 0)?;
    let mut conn = pool.acquire().await?;
    let rows: Vec<EvalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM evals WHERE ($1::uuid IS NULL OR job_id = $1) AND ($2::uuid IS NULL OR model_id = $2)
           AND ($4::uuid IS NULL OR team_id = $4)
         ORDER BY created_at DESC LIMIT $3"
    )))
    .bind(job_id)
    .bind(model_id)
    .bind(limit)
    .bind(team_id)
    .fetch_all(&mut *conn)
    .await?;
    with_scores(&mut conn, rows).await
}

/// The eval, checked to be part of a job whose lease `worker_id` holds.
async fn leased_eval(conn: &mut PgConnection, eval_id: Uuid, worker_id: Uuid) -> Result<Eval> {
    let eval = get(conn, eval_id).await?;
    let job = eval.job_id.ok_or_else(|| AppError::Conflict {
        field: None,
        message: "eval has no job".into(),
    })?;
    jobs::held(conn, job, worker_id).await?;
    Ok(eval)
}

/// Stores samples; a re-upload of the same (problem, sample) overwrites it, so retries never duplicate.
pub async fn upload_samples(
    conn: &mut PgConnection,
    eval_id: Uuid,
    worker_id: Uuid,
    samples: &[SampleRecord],
) -> Result<usize> {
    let eval = leased_eval(conn, eval_id, worker_id).await?;
    for (i, s) in samples.iter().enumerate() {
        if s.problem_idx < 0 || s.sample_idx < 0 || s.sample_idx >= eval.n_samples {
            return Err(AppError::invalid(
                format!("samples[{i}]"),
                format!(
                    "problem_idx must be ≥ 0 and sample_idx in 0..{}",
                    eval.n_samples
                ),
            ));
        }
        if !s.reward.is_finite() {
            return Err(AppError::invalid(
                format!("samples[{i}].reward"),
                "must be finite",
            ));
        }
    }
    let col = |f: fn(&SampleRecord) -> String| samples.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO eval_samples (eval_id, problem_idx, sample_idx, problem_id, prompt, completion, extracted, verdict,
                                   correct, reward, tokens, truncated)
         SELECT $1, * FROM unnest($2::int[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                  $9::bool[], $10::float8[], $11::int[], $12::bool[])
         ON CONFLICT (eval_id, problem_idx, sample_idx) DO UPDATE SET
            problem_id = EXCLUDED.problem_id, prompt = EXCLUDED.prompt, completion = EXCLUDED.completion,
            extracted = EXCLUDED.extracted, verdict = EXCLUDED.verdict, correct = EXCLUDED.correct,
            reward = EXCLUDED.reward, tokens = EXCLUDED.tokens, truncated = EXCLUDED.truncated",
    )
    .bind(eval_id)
    .bind(samples.iter().map(|s| s.problem_idx).collect::<Vec<_>>())
    .bind(samples.iter().map(|s| s.sample_idx).collect::<Vec<_>>())
    .bind(col(|s| s.problem_id.clone()))
    .bind(col(|s| s.prompt.clone()))
    .bind(col(|s| s.completion.clone()))
    .bind(samples.iter().map(|s| s.extracted.clone()).collect::<Vec<_>>())
    .bind(col(|s| s.verdict.clone()))
    .bind(samples.iter().map(|s| s.correct).collect::<Vec<_>>())
    .bind(samples.iter().map(|s| s.reward).collect::<Vec<_>>())
    .bind(samples.iter().map(|s| s.tokens).collect::<Vec<_>>())
    .bind(samples.iter().map(|s| s.truncated).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(samples.len())
}

/// Stores the final scores, marks the eval finished and computes its contamination report.
pub async fn finish(
    conn: &mut PgConnection,
    eval_id: Uuid,
    worker_id: Uuid,
    problems: i32,
    scores: &[EvalScore],
) -> Result<Eval> {
    let eval = leased_eval(conn, eval_id, worker_id).await?;
    for (i, s) in scores.iter().enumerate() {
        crucible_types::check_key(&format!("scores[{i}].metric"), &s.metric)?;
        if !(0.0..=1.0).contains(&s.value) {
            return Err(AppError::invalid(
                format!("scores[{i}].value"),
                "must be in [0, 1]",
            ));
        }
        sqlx::query(
            "INSERT INTO eval_scores (eval_id, metric, value, ci_low, ci_high, n) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (eval_id, metric) DO UPDATE SET value = EXCLUDED.value, ci_low = EXCLUDED.ci_low,
                ci_high = EXCLUDED.ci_high, n = EXCLUDED.n",
        )
        .bind(eval_id)
        .bind(&s.metric)
        .bind(s.value)
        .bind(s.ci_low)
        .bind(s.ci_high)
        .bind(s.n)
        .execute(&mut *conn)
        .await?;
    }
    let report = contamination_report(conn, &eval).await?;
    sqlx::query("UPDATE evals SET status = 'finished', problems = $2, contamination = $3, finished_at = now() WHERE id = $1")
        .bind(eval_id)
        .bind(problems)
        .bind(report)
        .execute(&mut *conn)
        .await?;
    get(conn, eval_id).await
}

async fn contamination_report(
    conn: &mut PgConnection,
    eval: &Eval,
) -> Result<Option<serde_json::Value>> {
    let training: Vec<Uuid> =
        sqlx::query_scalar("SELECT unnest(training_datasets) FROM models WHERE id = $1")
            .bind(eval.model_id)
            .fetch_all(&mut *conn)
            .await?;
    if training.is_empty() {
        return Ok(None);
    }
    let rows: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT data FROM dataset_rows WHERE dataset_id = ANY($1)")
            .bind(&training)
            .fetch_all(&mut *conn)
            .await?;
    let prompts: Vec<String> = sqlx::query_scalar("SELECT DISTINCT ON (problem_idx) prompt FROM eval_samples WHERE eval_id = $1 ORDER BY problem_idx")
        .bind(eval.id)
        .fetch_all(conn)
        .await?;
    Ok(Some(contamination::report(
        prompts.iter().map(String::as_str),
        rows.iter().map(contamination::row_text),
    )))
}

#[derive(FromRow)]
struct SampleRow {
    problem_idx: i32,
    sample_idx: i32,
    problem_id: String,
    prompt: String,
    completion: String,
    extracted: Option<String>,
    verdict: String,
    correct: bool,
    reward: f64,
    tokens: i32,
    truncated: bool,
}

/// Problems with their samples, filtered by how many samples were right.
pub async fn samples(
    pool: &PgPool,
    eval_id: Uuid,
    filter: SampleFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<ProblemSamples>> {
    crate::store::check_window(limit, 200, offset)?;
    let having = match filter {
        SampleFilter::All => "true",
        SampleFilter::AllWrong => "bool_or(correct) = false",
        SampleFilter::AllRight => "bool_and(correct)",
        SampleFilter::Mixed => "bool_or(correct) AND NOT bool_and(correct)",
    };
    let problems: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT problem_idx FROM eval_samples WHERE eval_id = $1 GROUP BY problem_idx HAVING {having}
         ORDER BY problem_idx OFFSET $2 LIMIT $3"
    )))
    .bind(eval_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let rows: Vec<SampleRow> = sqlx::query_as(
        "SELECT problem_idx, sample_idx, problem_id, prompt, completion, extracted, verdict, correct, reward, tokens, truncated
         FROM eval_samples WHERE eval_id = $1 AND problem_idx = ANY($2) ORDER BY problem_idx, sample_idx",
    )
    .bind(eval_id)
    .bind(&problems)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<ProblemSamples> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|p| p.problem_idx != r.problem_idx) {
            out.push(ProblemSamples {
                problem_idx: r.problem_idx,
                problem_id: r.problem_id.clone(),
                correct: 0,
                samples: Vec::new(),
            });
        }
        let p = out.last_mut().expect("pushed above");
        p.correct += i64::from(r.correct);
        p.samples.push(SampleRecord {
            problem_idx: r.problem_idx,
            sample_idx: r.sample_idx,
            problem_id: r.problem_id,
            prompt: r.prompt,
            completion: r.completion,
            extracted: r.extracted,
            verdict: r.verdict,
            correct: r.correct,
            reward: r.reward,
            tokens: r.tokens,
            truncated: r.truncated,
        });
    }
    Ok(out)
}

/// Best finished eval per (team, model, benchmark) by pass@1, newest first among ties.
pub async fn leaderboard(pool: &PgPool, team_id: Option<Uuid>) -> Result<Vec<LeaderboardRow>> {
    #[derive(FromRow)]
    struct Row {
        team_id: Uuid,
        model_id: Uuid,
        model_name: String,
        benchmark: String,
        score: f64,
        ci_low: Option<f64>,
        ci_high: Option<f64>,
        n_samples: i32,
        problems: i32,
        eval_id: Uuid,
        finished_at: Option<chrono::DateTime<chrono::Utc>>,
        sampling: Json<SamplingParams>,
        contaminated: bool,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT DISTINCT ON (e.team_id, e.model_id, e.benchmark)
                e.team_id, e.model_id, m.name AS model_name, e.benchmark, s.value AS score, s.ci_low, s.ci_high,
                e.n_samples, COALESCE(e.problems, s.n) AS problems, e.id AS eval_id, e.finished_at, e.sampling,
                COALESCE((e.contamination->>'flagged')::bool, false) AS contaminated
         FROM evals e
         JOIN eval_scores s ON s.eval_id = e.id AND s.metric = 'pass@1'
         JOIN models m ON m.id = e.model_id
         WHERE e.status = 'finished' AND ($1::uuid IS NULL OR e.team_id = $1)
         ORDER BY e.team_id, e.model_id, e.benchmark, s.value DESC, e.finished_at DESC",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| LeaderboardRow {
            team_id: r.team_id,
            model_id: r.model_id,
            model_name: r.model_name,
            benchmark: r.benchmark,
            score: r.score,
            ci_low: r.ci_low,
            ci_high: r.ci_high,
            n_samples: r.n_samples,
            problems: r.problems,
            eval_id: r.eval_id,
            finished_at: r.finished_at,
            sampling: r.sampling.0,
            contaminated: r.contaminated,
        })
        .collect())
}
