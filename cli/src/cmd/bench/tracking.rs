//! `crucible bench tracking`: the metric-ingestion benchmark against MLflow's figures.
//! It starts a real `crucible serve` child on loopback so the RSS it reports is the server's alone.

use super::server::ServerChild;
use crate::cmd::db::DbArgs;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::time::Instant;

/// Arguments of `crucible bench tracking`.
#[derive(clap::Args)]
pub struct Args {
    /// Points per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Number of batches.
    #[arg(long, default_value_t = 100)]
    pub batches: usize,
    #[command(flatten)]
    pub db: DbArgs,
}

async fn bench(args: Args) -> Result<()> {
    let url = args.db.resolve().await?;
    let token = crate::cmd::token::create(
        &DbArgs {
            database_url: Some(url.clone()),
        },
        "bench",
        "bench tracking",
    )
    .await?;
    let client = reqwest::Client::new();
    let server = ServerChild::start(&client, &url).await?;
    let base = server.base.clone();
    let auth = format!("Bearer {token}");
    let project: serde_json::Value = client
        .post(format!("{base}/api/v1/projects"))
        .header("Authorization", &auth)
        .json(&json!({ "name": format!("bench-{}", uuid::Uuid::new_v4()) }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let run: serde_json::Value = client
        .post(format!("{base}/api/v1/runs"))
        .header("Authorization", &auth)
        .json(&json!({ "project_id": project["id"], "name": "bench-tracking", "kind": "external" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let run_id = run["id"].as_str().context("run has no id")?.to_string();

    // Bodies are built before the clock starts: the benchmark measures the server, not JSON building.
    let bodies: Vec<String> = (0..args.batches)
        .map(|b| {
            let points: Vec<_> = (0..args.batch)
                .map(|i| {
                    let step = b * args.batch + i;
                    json!({ "key": "train/loss", "step": step, "value": 1.0 / (1.0 + step as f64) })
                })
                .collect();
            json!({ "points": points }).to_string()
        })
        .collect();
    let bar = ProgressBar::new(args.batches as u64)
        .with_style(ProgressStyle::with_template(
            "{msg} {bar:40} {pos}/{len} batches",
        )?)
        .with_message("logging");
    let started = Instant::now();
    for body in bodies {
        client
            .post(format!("{base}/api/v1/runs/{run_id}/metrics"))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        bar.inc(1);
    }
    let log_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let started = Instant::now();
    let history: serde_json::Value = client
        .get(format!("{base}/api/v1/runs/{run_id}/metrics/history"))
        .header("Authorization", &auth)
        .query(&[("key", "train/loss")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let read_s = started.elapsed().as_secs_f64();
    let expected = args.batch * args.batches;
    let got = history["steps"].as_array().map_or(0, Vec::len);
    if got != expected {
        bail!("read back {got} points, expected {expected}");
    }
    let rss = server.rss_mb()?;
    println!(
        "logged {expected} points in {log_s:.3} s, read them back in {read_s:.3} s; server RSS {rss:.1} MB"
    );
    println!(
        "{}",
        json!({ "log_s": log_s, "read_s": read_s, "rss_mb": rss })
    );
    Ok(())
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}
