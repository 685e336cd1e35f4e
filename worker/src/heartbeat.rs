//! A background thread that keeps a job's lease alive and carries the server's "stop" back to the job.

use crate::client::{ClientError, ServerClient};
use crucible_types::JobProgress;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use uuid::Uuid;

/// Shared between the job and its heartbeat thread.
#[derive(Default)]
pub struct JobSignals {
    /// Set when the job was cancelled or its lease was lost: the job stops at its next check.
    pub stop: AtomicBool,
    /// Set when the job finished: the thread exits.
    pub done: AtomicBool,
    /// Latest progress, sent with each heartbeat.
    pub progress: Mutex<Option<JobProgress>>,
}

impl JobSignals {
    /// Whether the job should stop now.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records progress for the next heartbeat.
    pub fn set_progress(&self, done: u64, total: u64, message: &str) {
        crate::telemetry::telemetry().progress(done, total);
        if let Ok(mut p) = self.progress.lock() {
            *p = Some(JobProgress {
                done,
                total,
                message: message.to_string(),
            });
        }
    }
}

/// Heartbeats every third of the lease until `signals.done`; stops the job on cancel or lost lease.
pub fn spawn(
    client: ServerClient,
    job_id: Uuid,
    worker_id: Uuid,
    lease_seconds: u32,
    signals: Arc<JobSignals>,
) -> JoinHandle<()> {
    let period = Duration::from_secs_f64(f64::from(lease_seconds.max(3)) / 3.0);
    std::thread::spawn(move || {
        let tick = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while !signals.done.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < period {
                continue;
            }
            waited = Duration::ZERO;
            let progress = signals.progress.lock().ok().and_then(|p| p.clone());
            match client.heartbeat(job_id, worker_id, progress) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(%job_id, "job cancelled; stopping");
                    signals.stop.store(true, Ordering::Relaxed);
                }
                Err(ClientError::LeaseLost(why)) => {
                    tracing::warn!(%job_id, %why, "lease lost; stopping");
                    signals.stop.store(true, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(%job_id, error = %e, "heartbeat failed"),
            }
        }
    })
}
