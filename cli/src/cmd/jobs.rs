//! `crucible jobs`: the queue as a table.

use crate::cmd::api::ServerArgs;
use anyhow::Result;
use crucible_types::{Job, JobStatus};

/// Arguments of `crucible jobs`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only jobs in this state (queued, running, succeeded, failed, cancelled).
    #[arg(long)]
    pub status: Option<JobStatus>,
}

/// Runs the subcommand.
pub fn run(a: Args) -> Result<()> {
    let jobs: Vec<Job> = a.server.client().jobs(a.status)?;
    println!(
        "{:<36}  {:<8}  {:<9}  {:>4}  {:>7}  {:<36}  progress / error",
        "id", "kind", "status", "prio", "attempt", "worker"
    );
    for j in jobs {
        let detail = match (&j.error, &j.progress) {
            (Some(e), _) => e.clone(),
            (None, Some(p)) => format!("{}/{} {}", p.done, p.total, p.message),
            (None, None) => String::new(),
        };
        let worker = j
            .worker_id
            .map(|w| w.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<36}  {:<8}  {:<9}  {:>4}  {:>3}/{:<3}  {:<36}  {detail}",
            j.id, j.kind, j.status, j.priority, j.attempts, j.max_attempts, worker
        );
    }
    Ok(())
}
