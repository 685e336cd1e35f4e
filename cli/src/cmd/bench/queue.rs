//! `crucible bench queue`: how fast the job queue hands out work — jobs leased per second and the
//! latency of a lease call — with 1, 4 and 16 workers leasing at once from a real `crucible serve`
//! child. Each simulated worker is a client of the REST protocol a `crucible worker` speaks
//! (register, lease, complete) that runs nothing, so the figures are the queue's alone.

use super::server::ServerChild;
use crate::cmd::db::DbArgs;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Arguments of `crucible bench queue`.
#[derive(clap::Args)]
pub struct Args {
    /// Jobs queued for each worker count.
    #[arg(long, default_value_t = 400)]
    pub jobs: usize,
    /// Worker counts to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
    pub workers: Vec<usize>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The figures of one worker count.
struct Round {
    workers: usize,
    leases_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Calls of one benchmark, with the team's token.
struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .header("Authorization", &self.auth)
            .json(body)
            .send()
            .await?
            .error_for_status()?)
    }
}

/// One simulated worker: leases and completes until the queue is empty; returns the latency of
/// every lease call that handed out a job.
async fn drain(api: &Api, worker: &str) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    loop {
        let asked = Instant::now();
        let lease = api
            .post(&format!("/workers/{worker}/lease"), &json!({}))
            .await?;
        if lease.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(latencies);
        }
        latencies.push(asked.elapsed());
        let lease: Value = lease.json().await?;
        let job = lease["job"]["id"]
            .as_str()
            .context("a lease without a job id")?;
        api.post(
            &format!("/jobs/{job}/complete"),
            &json!({ "worker_id": worker, "error": null }),
        )
        .await?;
    }
}

async fn round(
    api: &Api,
    model: &str,
    workers: usize,
    jobs: usize,
    bar: &ProgressBar,
) -> Result<Round> {
    let spec = json!({ "spec": { "kind": "generate", "model_id": model, "prompts": ["queue"] } });
    for _ in 0..jobs {
        api.post("/jobs", &spec).await?;
        bar.inc(1);
    }
    let mut ids = Vec::new();
    for w in 0..workers {
        let registration = json!({ "name": format!("bench-{workers}-{w}"),
            "capabilities": { "devices": ["cpu"], "memory_gb": 1.0, "kinds": ["generate"] } });
        let worker: Value = api.post("/workers", &registration).await?.json().await?;
        ids.push(
            worker["id"]
                .as_str()
                .context("a worker without an id")?
                .to_string(),
        );
    }
    let started = Instant::now();
    let results = futures::future::join_all(ids.iter().map(|id| drain(api, id))).await;
    let wall = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = Vec::with_capacity(jobs);
    for r in results {
        latencies.extend(r?);
    }
    bar.inc(jobs as u64);
    if latencies.len() != jobs {
        bail!(
            "{} leases for {jobs} jobs: the queue handed a job out twice or lost one",
            latencies.len()
        );
    }
    latencies.sort_unstable();
    let quantile =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    Ok(Round {
        workers,
        leases_per_s: jobs as f64 / wall,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
    })
}

async fn bench(args: Args) -> Result<()> {
    if args.jobs == 0 || args.workers.is_empty() || args.workers.contains(&0) {
        bail!("--jobs and every --workers count must be at least 1");
    }
    let url = args.db.resolve().await?;
    let token = crate::cmd::token::create(
        &DbArgs {
            database_url: Some(url.clone()),
        },
        &format!("bench-queue-{}", uuid::Uuid::new_v4()),
        "bench queue",
    )
    .await?;
    let http = reqwest::Client::new();
    let server = ServerChild::start(&http, &url).await?;
    let api = Api {
        http,
        base: server.base.clone(),
        auth: format!("Bearer {token}"),
    };
    // Nothing runs the model: an endpoint model needs no weights on this machine.
    let model: Value = api
        .post("/models", &json!({ "name": "bench-queue", "source": { "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "none" } }))
        .await?
        .json()
        .await?;
    let model = model["id"]
        .as_str()
        .context("a model without an id")?
        .to_string();
    let bar = ProgressBar::new((2 * args.jobs * args.workers.len()) as u64).with_style(
        ProgressStyle::with_template("{spinner} queue {bar:30} {pos}/{len} (submit + lease)")?,
    );
    let mut rounds = Vec::new();
    for &workers in &args.workers {
        let r = round(&api, &model, workers, args.jobs, &bar).await?;
        bar.println(format!(
            "{workers:>2} workers: {:.0} leases/s, lease latency p50 {:.2} ms, p99 {:.2} ms",
            r.leases_per_s, r.p50_ms, r.p99_ms
        ));
        rounds.push(r);
    }
    bar.finish_and_clear();
    let base = rounds[0].leases_per_s;
    let figures: Vec<Value> = rounds
        .iter()
        .map(|r| {
            json!({ "workers": r.workers, "leases_per_s": r.leases_per_s, "lease_p50_ms": r.p50_ms,
            "lease_p99_ms": r.p99_ms, "throughput_vs_first": r.leases_per_s / base })
        })
        .collect();
    println!(
        "{}",
        json!({ "bench": "queue", "jobs_per_round": args.jobs, "rounds": figures })
    );
    Ok(())
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}
