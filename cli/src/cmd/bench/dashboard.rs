//! `crucible bench dashboard`: server time of every dashboard page over a team-sized database —
//! 10,000 runs, a 1,000-model × 12-benchmark leaderboard, a run with 12 metrics × 5,000 points —
//! against the same data served as JSON by `/api/v1` (the floor: the store queries alone).

use super::server::ServerChild;
use crate::cmd::db::DbArgs;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::time::Instant;

/// Arguments of `crucible bench dashboard`.
#[derive(clap::Args)]
pub struct Args {
    /// Timed requests per page (after two warm-up requests).
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,
    /// Runs in the database.
    #[arg(long, default_value_t = 10_000)]
    pub runs: usize,
    /// Models on the leaderboard (each evaluated on 12 benchmarks).
    #[arg(long, default_value_t = 1_000)]
    pub models: usize,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The benchmark's own database, recreated on every run so the sizes are exact.
const BENCH_DB: &str = "crucible_bench_dashboard";

const BENCHMARKS: [&str; 12] = [
    "aime2024",
    "aime2025",
    "amc2023",
    "arc_challenge",
    "bbh",
    "gpqa_diamond",
    "gsm8k",
    "humaneval",
    "math500",
    "mbpp",
    "mmlu",
    "synthetic",
];

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base
        .rsplit_once('/')
        .context("the database URL has no database name")?;
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

/// Fills the database with SQL (fast), except metrics, which go through the API as a trainer's do.
async fn seed(url: &str, team: uuid::Uuid, runs: usize, models: usize) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let benchmarks = BENCHMARKS
        .iter()
        .map(|b| format!("'{b}'"))
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        "
        INSERT INTO projects (id, team_id, name) SELECT gen_random_uuid(), '{team}', 'project-' || g
            FROM generate_series(1, 20) g;
        INSERT INTO runs (id, project_id, name, kind, status, params, tags, created_at, updated_at)
            SELECT gen_random_uuid(), p.id, 'run-' || g,
                   (ARRAY['eval','generate','sft','rl','pretrain','external'])[1 + g % 6],
                   (ARRAY['queued','running','finished','failed','killed'])[1 + g % 5],
                   jsonb_build_object('lr', (1 + g % 7)::text || 'e-4', 'seed', g::text, 'group_size', '16'),
                   jsonb_build_object('stage', (ARRAY['sft','rl','eval'])[1 + g % 3]),
                   now() - make_interval(secs => g), now() - make_interval(secs => g)
            FROM generate_series(1, {runs}) g
            JOIN LATERAL (SELECT id FROM projects ORDER BY name OFFSET (g % 20) LIMIT 1) p ON true;
        INSERT INTO models (id, team_id, name, source, path, architecture)
            SELECT gen_random_uuid(), '{team}', 'model-' || lpad(g::text, 5, '0'), 'hf_local',
                   '/models/m' || g, 'MiMoForCausalLM'
            FROM generate_series(1, {models}) g;
        INSERT INTO evals (id, team_id, model_id, benchmark, sampling, n_samples, status, problems, created_at, finished_at)
            SELECT gen_random_uuid(), '{team}', m.id, b, '{{}}'::jsonb, 4, 'finished', 500, now(), now()
            FROM models m CROSS JOIN unnest(ARRAY[{benchmarks}]) b;
        INSERT INTO eval_scores (eval_id, metric, value, ci_low, ci_high, n)
            SELECT id, 'pass@1', v, greatest(v - 0.04, 0), least(v + 0.04, 1), 500
            FROM (SELECT id, random() AS v FROM evals) e;
        INSERT INTO eval_samples (eval_id, problem_idx, sample_idx, problem_id, prompt, completion,
                                  extracted, verdict, correct, reward, tokens, truncated)
            SELECT e.id, p, s, 'problem-' || p, 'Problem ' || p || ': what is ' || p || ' squared?',
                   repeat('Let me think step by step. ', 30) || '\\boxed{{' || (p * p + s % 2) || '}}',
                   (p * p + s % 2)::text, CASE WHEN s % 2 = 0 THEN 'correct' ELSE 'wrong' END,
                   s % 2 = 0, CASE WHEN s % 2 = 0 THEN 1.0 ELSE 0.0 END, 240, false
            FROM (SELECT id FROM evals ORDER BY id LIMIT 1) e, generate_series(0, 99) p, generate_series(0, 3) s;
        INSERT INTO datasets (id, team_id, name, version, kind, content_hash, row_count)
            SELECT gen_random_uuid(), '{team}', 'dataset-' || g, 1, 'math', md5(g::text), 1000
            FROM generate_series(1, 5) g;
        INSERT INTO dataset_rows (dataset_id, idx, data)
            SELECT d.id, i, jsonb_build_object('problem', 'What is ' || i || ' + ' || i || '?', 'answer', (2 * i)::text)
            FROM datasets d, generate_series(0, 999) i;
        INSERT INTO workers (id, team_id, name, capabilities)
            SELECT gen_random_uuid(), '{team}', 'worker-' || g,
                   '{{\"devices\": [\"cpu\"], \"memory_gb\": 64, \"kinds\": [\"eval\"]}}'::jsonb
            FROM generate_series(1, 10) g;
        INSERT INTO jobs (id, team_id, kind, spec, status, priority, attempts, created_at)
            SELECT gen_random_uuid(), '{team}', 'eval',
                   jsonb_build_object('kind', 'eval', 'model_id', (SELECT id FROM models LIMIT 1), 'benchmarks', jsonb_build_array('gsm8k')),
                   (ARRAY['queued','running','succeeded','failed'])[1 + g % 4], 0, 1, now() - make_interval(secs => g)
            FROM generate_series(1, 300) g;
        ANALYZE;
        "
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .context("seeding the benchmark database")?;
    Ok(())
}

/// Logs 12 metrics × 5,000 points to `run` through the API.
async fn log_metrics(client: &reqwest::Client, base: &str, token: &str, run: &str) -> Result<()> {
    for key in 0..12 {
        for chunk in 0..5 {
            let points: Vec<Value> = (chunk * 1000..(chunk + 1) * 1000)
                .map(|step| {
                    json!({ "key": format!("train/metric_{key:02}"), "step": step,
                                    "value": (1.0 + key as f64) / (1.0 + step as f64) })
                })
                .collect();
            client
                .post(format!("{base}/api/v1/runs/{run}/metrics"))
                .bearer_auth(token)
                .json(&json!({ "points": points }))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    Ok(())
}

/// Median and 95th percentile in milliseconds of `repeats` GETs of `path` (body fully read).
async fn time_get(client: &reqwest::Client, url: &str, repeats: usize) -> Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(repeats);
    for i in 0..repeats + 2 {
        let started = Instant::now();
        let r = client.get(url).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if i >= 2 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let p95 = samples[((samples.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)];
    Ok((median, p95))
}

async fn bench(args: Args) -> Result<()> {
    let admin_url = args.db.resolve().await?;
    let url = with_database(&admin_url, BENCH_DB)?;
    let mut admin = PgConnection::connect(&admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {BENCH_DB}")))
        .execute(&mut admin)
        .await?;
    let token = crate::cmd::token::create(
        &DbArgs {
            database_url: Some(url.clone()),
        },
        "bench",
        "bench dashboard",
    )
    .await?;
    let pool = crucible_server::connect(&url).await?;
    let team: uuid::Uuid = sqlx::query_scalar("SELECT id FROM teams WHERE name = 'bench'")
        .fetch_one(&pool)
        .await?;
    let spinner = ProgressBar::new_spinner().with_message(format!(
        "seeding {} runs and a {} × 12 leaderboard",
        args.runs, args.models
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    seed(&url, team, args.runs, args.models).await?;
    let ids = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(sql)
                .fetch_one(&pool)
                .await
        }
    };
    let run = ids("SELECT id FROM runs WHERE name = 'run-1'")
        .await?
        .to_string();
    let eval = ids("SELECT eval_id FROM eval_samples LIMIT 1")
        .await?
        .to_string();
    let dataset = ids("SELECT id FROM datasets ORDER BY name LIMIT 1")
        .await?
        .to_string();
    let client = reqwest::Client::new();
    let server = ServerChild::start(&client, &url).await?;
    let base = server.base.clone();
    spinner.set_message("logging 60,000 metric points");
    log_metrics(&client, &base, &token, &run).await?;
    spinner.finish_and_clear();
    // Reads are team-private: pages read as a signed-in browser, the JSON twins with the token.
    let session = crucible_server::store::sessions::sign_in(&pool, &token).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    headers.insert(
        reqwest::header::COOKIE,
        format!("{}={session}", crucible_server::auth::SESSION_COOKIE).parse()?,
    );
    let reader = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;

    // (page, dashboard path, the JSON twin from /api/v1, when there is one)
    let pages: Vec<(&str, String, Option<String>)> = vec![
        ("runs", "/".into(), Some("/api/v1/runs?limit=50".into())),
        (
            "runs_filtered",
            "/?kind=rl&status=finished&q=run-1".into(),
            Some("/api/v1/runs?kind=rl&status=finished&q=run-1&limit=50".into()),
        ),
        (
            "run",
            format!("/runs/{run}"),
            Some(format!("/api/v1/runs/{run}/metrics")),
        ),
        ("evals", "/evals".into(), None),
        (
            "eval",
            format!("/evals/{eval}"),
            Some(format!("/api/v1/evals/{eval}/samples?limit=20")),
        ),
        (
            "leaderboard",
            "/leaderboard".into(),
            Some("/api/v1/leaderboard".into()),
        ),
        (
            "datasets",
            "/datasets".into(),
            Some("/api/v1/datasets".into()),
        ),
        (
            "dataset",
            format!("/datasets/{dataset}"),
            Some(format!("/api/v1/datasets/{dataset}/rows?limit=25")),
        ),
        ("models", "/models".into(), Some("/api/v1/models".into())),
        (
            "jobs",
            "/jobs".into(),
            Some("/api/v1/jobs?limit=200".into()),
        ),
        ("submit", "/jobs/new".into(), None),
    ];
    let bar = ProgressBar::new(pages.len() as u64)
        .with_style(ProgressStyle::with_template(
            "{msg} {bar:30} {pos}/{len} pages",
        )?)
        .with_message("timing");
    let mut figures = serde_json::Map::new();
    let mut worst: f64 = 0.0;
    println!(
        "{:<14} {:>10} {:>10} {:>12} {:>8}",
        "page", "median ms", "p95 ms", "JSON API ms", "ratio"
    );
    for (name, path, twin) in pages {
        let (median, p95) = time_get(&reader, &format!("{base}{path}"), args.repeats).await?;
        let api = match &twin {
            Some(p) => Some(
                time_get(&reader, &format!("{base}{p}"), args.repeats)
                    .await?
                    .0,
            ),
            None => None,
        };
        worst = worst.max(median);
        bar.suspend(|| {
            println!(
                "{name:<14} {median:>10.1} {p95:>10.1} {:>12} {:>8}",
                api.map_or("–".into(), |a| format!("{a:.1}")),
                api.map_or("–".into(), |a| format!("{:.2}x", median / a)),
            )
        });
        figures.insert(
            name.to_string(),
            json!({ "median_ms": median, "p95_ms": p95, "api_median_ms": api }),
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rss = server.rss_mb()?;
    println!("slowest page median {worst:.1} ms (target ≤ 100 ms); server RSS {rss:.1} MB");
    println!(
        "{}",
        json!({ "pages": figures, "max_median_ms": worst, "rss_mb": rss })
    );
    Ok(())
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_bench_database_replaces_only_the_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/crucible?sslmode=disable", "b").unwrap(),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h/x", "b").unwrap(),
            "postgres://u@h/b"
        );
    }
}
