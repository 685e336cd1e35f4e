//! `crucible worker`: lease jobs from a server and run them on this machine.

use crate::cmd::api::ServerArgs;
use anyhow::{Context, Result};
use crucible_worker::WorkerConfig;
use std::time::Duration;

/// Arguments of `crucible worker`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Name shown in the dashboard.
    #[arg(long, default_value = "local")]
    pub name: String,
    /// Folder of benchmark files.
    #[arg(long, env = "CRUCIBLE_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Exit after this many jobs.
    #[arg(long)]
    pub max_jobs: Option<usize>,
    /// Seconds between polls of an empty queue.
    #[arg(long, default_value_t = 1.0)]
    pub poll_seconds: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464; port 0 picks one).
    #[arg(long, env = "CRUCIBLE_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Args {
    /// The library's view of these arguments.
    pub fn config(&self) -> Result<WorkerConfig> {
        Ok(WorkerConfig {
            server: self.server.server.clone(),
            token: self
                .server
                .token
                .clone()
                .context("a worker needs --token or CRUCIBLE_TOKEN")?,
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            poll: Duration::from_secs_f64(self.poll_seconds.max(0.05)),
            max_jobs: self.max_jobs,
            work_dir: crate::cmd::db::crucible_home().join("work"),
            metrics_addr: self.metrics_addr,
        })
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    crucible_worker::run(&args.config()?).context("worker stopped")
}
