//! The `rl` job: GRPO from the lease's model with the spec's config. Metrics stream to the job's
//! run, every step's rollouts become the run's completions, and every checkpoint is registered
//! as a `checkpoint` model of the run. The run resumes from its last checkpoint when the job is
//! retried on the same machine (its folder is `<work_dir>/<job id>/rl`).

use std::path::Path;

use super::JobError;
use crate::client::ServerClient;
use crate::eval::{Benchmark, Problem};
use crate::heartbeat::JobSignals;
use crate::lease::WorkerConfig;
use crate::report::RlReporter;
use crate::rl::rollout::RolloutGroup;
use crate::rl::{RlHooks, problems};
use crucible_types::{Lease, RlSpec};

/// The run's results to the server, progress and stop requests to the lease.
struct JobHooks<'a> {
    reporter: RlReporter<'a>,
    signals: &'a JobSignals,
}

impl RlHooks for JobHooks<'_> {
    fn metrics(&mut self, step: u64, values: &[(&str, f64)]) {
        self.reporter.metrics(step, values);
    }

    fn rollouts(&mut self, step: u64, problems: &[Problem], groups: &[RolloutGroup]) {
        self.reporter.rollouts(step, problems, groups);
    }

    fn checkpoint(&mut self, step: u64, model_dir: &Path) {
        self.reporter.checkpoint(step, model_dir);
    }

    fn progress(&mut self, done: u64, total: u64, phase: &str) {
        self.signals.set_progress(done, total, phase);
    }

    fn should_stop(&self) -> bool {
        self.signals.should_stop()
    }
}

/// Runs the job; `Err` carries the reason it failed.
pub(crate) fn run(
    client: &ServerClient,
    config: &WorkerConfig,
    lease: &Lease,
    spec: &RlSpec,
    signals: &JobSignals,
) -> Result<(), JobError> {
    let run_id = lease
        .job
        .run_id
        .ok_or_else(|| JobError::invalid("rl job has no run"))?;
    spec.config.validate().map_err(|e| e.under("spec.config"))?;
    let model = lease
        .model
        .as_ref()
        .ok_or_else(|| JobError::invalid("rl job without a model"))?;
    let start = super::local_weights(&model.source)?.ok_or_else(|| {
        JobError::invalid(
            "RL trains local weights; an OpenAI-compatible endpoint cannot be the policy",
        )
    })?;
    let problems = problems::resolve(&spec.config.data, &mut |id| {
        let (meta, rows) = client.dataset(id).map_err(|e| e.to_string())?;
        Benchmark::from_rows(&meta.name, meta.kind, &rows).map_err(|e| e.to_string())
    })
    .map_err(JobError::internal)?;
    let out_dir = config.work_dir.join(lease.job.id.to_string()).join("rl");
    let model_name = spec
        .model_name
        .clone()
        .unwrap_or_else(|| format!("rl-{}", &lease.job.id.simple().to_string()[..8]));
    let mut hooks = JobHooks {
        reporter: RlReporter::new(client, run_id, model_name),
        signals,
    };
    let outcome = crate::rl::run(
        &spec.config,
        &start,
        problems,
        &out_dir,
        config.data_dir.as_deref(),
        &mut hooks,
    );
    hooks.reporter.flush();
    let outcome = outcome.map_err(JobError::internal)?;
    tracing::info!(steps = outcome.steps, stopped = outcome.stopped, model = %outcome.model_dir.display(), "rl run ended");
    Ok(())
}
