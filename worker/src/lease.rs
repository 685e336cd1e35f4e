//! The lease loop: registers with a server, leases jobs, runs them, and streams progress and results
//! back over HTTP. It never touches the database, so any number of workers on any number of
//! machines can serve one server; a worker killed mid-job loses its lease and the next one
//! finishes the job (uploads are idempotent, so nothing is duplicated).

use crate::client::{ClientError, ServerClient};
use crate::heartbeat::JobSignals;
use crate::jobs::{self, JobError};
use crate::telemetry::{JobOutcome, telemetry};
use crucible_types::{Device, JobKind, JobSpec, Lease, RegisterWorker, WorkerCapabilities};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use uuid::Uuid;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Server base URL.
    pub server: String,
    /// Team token.
    pub token: String,
    /// Display name.
    pub name: String,
    /// Where benchmark files live (`CRUCIBLE_DATA_DIR`).
    pub data_dir: Option<std::path::PathBuf>,
    /// Wait between empty lease polls.
    pub poll: Duration,
    /// Exit after this many jobs (tests, one-shot runs); run forever when `None`.
    pub max_jobs: Option<usize>,
    /// Where training jobs write (a relative `out_dir` lands in `<work_dir>/<job id>/`; RL jobs
    /// write `<work_dir>/<job id>/rl`).
    pub work_dir: std::path::PathBuf,
    /// Where to serve the worker's Prometheus metrics (`/metrics`); none when `None`.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What this machine offers: the CPU always; CUDA when built with it and a GPU answers; wgpu
/// when an adapter opens (a software one included: a job that asks for wgpu gets it).
pub fn capabilities() -> WorkerCapabilities {
    let mut devices = vec![Device::Cpu];
    if cfg!(feature = "cuda") && crucible_gpu::device::best_device().is_ok_and(|d| d.is_cuda()) {
        devices.push(Device::Cuda);
    }
    match crucible_gpu::device::wgpu_device() {
        Ok(_) => devices.push(Device::Wgpu),
        Err(e) => tracing::info!("the worker offers no wgpu device: {e}"),
    }
    WorkerCapabilities {
        devices,
        memory_gb: system_memory_gb(),
        kinds: JobKind::ALL.to_vec(),
    }
}

fn system_memory_gb() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(str::to_string))
        })
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0)
}

/// Registers and serves jobs until `max_jobs` are done (or forever).
pub fn run(config: &WorkerConfig) -> Result<(), WorkerError> {
    if let Some(addr) = config.metrics_addr {
        let bound = crate::telemetry::serve_metrics(addr)
            .map_err(|source| WorkerError::Metrics { addr, source })?;
        tracing::info!("worker metrics at http://{bound}/metrics");
    }
    let client = ServerClient::new(&config.server, Some(&config.token));
    let worker = client.register(&RegisterWorker {
        name: config.name.clone(),
        capabilities: capabilities(),
    })?;
    tracing::info!(worker = %worker.id, devices = ?worker.capabilities.devices, "worker registered");
    let mut done = 0usize;
    while config.max_jobs.is_none_or(|max| done < max) {
        match client.lease(worker.id)? {
            Some(lease) => {
                serve(&client, worker.id, config, lease);
                done += 1;
            }
            None => std::thread::sleep(config.poll),
        }
    }
    Ok(())
}

/// Runs one leased job with a heartbeat beside it, then reports how it ended.
fn serve(client: &ServerClient, worker_id: Uuid, config: &WorkerConfig, lease: Lease) {
    let job_id = lease.job.id;
    let kind = lease.job.kind.to_string();
    tracing::info!(%job_id, %kind, attempt = lease.job.attempts, "job leased");
    telemetry().job_started(&kind);
    let signals = Arc::new(JobSignals::default());
    let beat = crate::heartbeat::spawn(
        client.clone(),
        job_id,
        worker_id,
        lease.lease_seconds,
        signals.clone(),
    );
    let outcome = match &lease.job.spec {
        JobSpec::Eval(_) => jobs::eval::run(client, worker_id, config, &lease, &signals),
        JobSpec::Generate(spec) => jobs::generate::run(client, &lease, spec, &signals),
        JobSpec::Pretrain(spec) | JobSpec::Sft(spec) => {
            jobs::train::run(client, config, &lease, spec, &signals)
        }
        JobSpec::Rl(spec) => jobs::rl::run(client, config, &lease, spec, &signals),
    };
    signals.done.store(true, Ordering::Relaxed);
    let _ = beat.join();
    let outcome = match outcome {
        Ok(()) if signals.should_stop() => Err(JobError::Stopped("cancelled or lease lost".into())),
        other => other,
    };
    telemetry().job_finished(
        &kind,
        match &outcome {
            Ok(()) => JobOutcome::Succeeded,
            Err(JobError::Stopped(_)) => JobOutcome::Stopped,
            Err(_) => JobOutcome::Failed,
        },
    );
    match &outcome {
        Ok(()) => tracing::info!(%job_id, "job succeeded"),
        Err(e @ JobError::Internal(_)) => tracing::error!(%job_id, error = %e, "job failed"),
        Err(e) => tracing::warn!(%job_id, error = %e, "job did not succeed"),
    }
    let error = outcome.err().map(|e| e.to_string());
    if let Err(e) = client.complete(job_id, worker_id, error) {
        tracing::warn!(%job_id, error = %e, "could not report completion; the lease will expire and the job retry");
    }
}
