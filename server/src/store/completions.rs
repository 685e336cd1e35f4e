//! Completions of a run (RL rollouts, generate outputs): idempotent upload and per-step browsing.

use crate::error::{AppError, Result};
use crucible_types::CompletionRecord;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

/// Stores completions; a re-upload of the same (step, group, sample) overwrites it.
pub async fn upload(
    conn: &mut PgConnection,
    run_id: Uuid,
    items: &[CompletionRecord],
) -> Result<usize> {
    for (i, c) in items.iter().enumerate() {
        if c.step < 0 || c.group_idx < 0 || c.sample_idx < 0 {
            return Err(AppError::invalid(
                format!("completions[{i}]"),
                "step, group_idx and sample_idx must be ≥ 0",
            ));
        }
        if c.reward.is_some_and(|r| !r.is_finite()) {
            return Err(AppError::invalid(
                format!("completions[{i}].reward"),
                "must be finite",
            ));
        }
    }
    let text = |f: fn(&CompletionRecord) -> &str| {
        items.iter().map(|c| f(c).to_string()).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO completions (run_id, step, group_idx, sample_idx, problem_id, prompt, completion, reward, verdict,
                                  tokens, truncated)
         SELECT $1, * FROM unnest($2::bigint[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[],
                                  $8::float8[], $9::text[], $10::int[], $11::bool[])
         ON CONFLICT (run_id, step, group_idx, sample_idx) DO UPDATE SET
            problem_id = EXCLUDED.problem_id, prompt = EXCLUDED.prompt, completion = EXCLUDED.completion,
            reward = EXCLUDED.reward, verdict = EXCLUDED.verdict, tokens = EXCLUDED.tokens, truncated = EXCLUDED.truncated",
    )
    .bind(run_id)
    .bind(items.iter().map(|c| c.step).collect::<Vec<_>>())
    .bind(items.iter().map(|c| c.group_idx).collect::<Vec<_>>())
    .bind(items.iter().map(|c| c.sample_idx).collect::<Vec<_>>())
    .bind(text(|c| &c.problem_id))
    .bind(text(|c| &c.prompt))
    .bind(text(|c| &c.completion))
    .bind(items.iter().map(|c| c.reward).collect::<Vec<_>>())
    .bind(items.iter().map(|c| c.verdict.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|c| c.tokens).collect::<Vec<_>>())
    .bind(items.iter().map(|c| c.truncated).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(items.len())
}

#[derive(FromRow)]
struct Row {
    step: i64,
    group_idx: i32,
    sample_idx: i32,
    problem_id: String,
    prompt: String,
    completion: String,
    reward: Option<f64>,
    verdict: Option<String>,
    tokens: i32,
    truncated: bool,
}

/// A page of completions, optionally of one step, ordered by (step, group, sample).
pub async fn list(
    pool: &PgPool,
    run_id: Uuid,
    step: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<Vec<CompletionRecord>> {
    crate::store::check_window(limit, 1000, offset)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT step, group_idx, sample_idx, problem_id, prompt, completion, reward, verdict, tokens, truncated
         FROM completions WHERE run_id = $1 AND ($2::bigint IS NULL OR step = $2)
         ORDER BY step, group_idx, sample_idx OFFSET $3 LIMIT $4",
    )
    .bind(run_id)
    .bind(step)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CompletionRecord {
            step: r.step,
            group_idx: r.group_idx,
            sample_idx: r.sample_idx,
            problem_id: r.problem_id,
            prompt: r.prompt,
            completion: r.completion,
            reward: r.reward,
            verdict: r.verdict,
            tokens: r.tokens,
            truncated: r.truncated,
        })
        .collect())
}

/// The steps of a run that stored completions, ascending (the newest 1000).
pub async fn steps(pool: &PgPool, run_id: Uuid) -> Result<Vec<i64>> {
    let mut steps: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT step FROM completions WHERE run_id = $1 ORDER BY step DESC LIMIT 1000",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    steps.reverse();
    Ok(steps)
}
