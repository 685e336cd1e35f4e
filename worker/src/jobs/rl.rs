//! The `rl` job: GRPO from the lease's model with the spec's config. Metrics stream to the job's
//! run, every step's rollouts become the run's completions, and every checkpoint is registered
//! as a `checkpoint` model of the run. The run resumes from its last checkpoint when the job is
//! retried on the same machine (its folder is `<work_dir>/<job id>/rl`).

use std::path::{Path, PathBuf};

use super::sink::RunSink;
use crate::client::{ClientError, ServerClient};
use crate::eval::{Benchmark, Problem};
use crate::heartbeat::JobSignals;
use crate::lease::WorkerConfig;
use crate::rl::rollout::{RolloutGroup, completion_records};
use crate::rl::{RlHooks, problems};
use crate::train::MetricsSink;
use crucible_types::{Lease, ModelSource, RegisterModel, RlSpec};
use uuid::Uuid;

/// Sends the run's results to the server.
struct JobHooks<'a> {
    sink: RunSink<'a>,
    client: &'a ServerClient,
    run_id: Uuid,
    /// Checkpoints are registered as `<model_name>-step<N>`.
    model_name: String,
    signals: &'a JobSignals,
}

impl RlHooks for JobHooks<'_> {
    fn metrics(&mut self, step: u64, values: &[(&str, f64)]) {
        self.sink.record(step, values);
        // A step takes seconds: deliver at once so the dashboard follows live.
        self.sink.flush();
    }

    fn rollouts(&mut self, step: u64, problems: &[Problem], groups: &[RolloutGroup]) {
        let records = completion_records(step, problems, groups);
        if let Err(e) = self.client.upload_completions(self.run_id, records) {
            tracing::warn!(step, error = %e, "could not store the step's rollouts");
        }
    }

    fn checkpoint(&mut self, step: u64, model_dir: &Path) {
        let req = RegisterModel {
            name: format!("{}-step{step}", self.model_name),
            source: ModelSource::Checkpoint {
                path: model_dir.to_string_lossy().into_owned(),
                run_id: self.run_id,
                step: i64::try_from(step).unwrap_or(i64::MAX),
            },
            training_datasets: Vec::new(),
        };
        match self.client.register_model(&req) {
            Ok(m) => tracing::info!(model = %m.id, name = %m.name, "checkpoint registered"),
            // 409: a resumed job registers a checkpoint its first attempt already registered.
            Err(ClientError::LeaseLost(why)) => {
                tracing::info!(name = %req.name, %why, "checkpoint already registered")
            }
            Err(e) => tracing::warn!(name = %req.name, error = %e, "could not register checkpoint"),
        }
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
) -> Result<(), String> {
    let run_id = lease.job.run_id.ok_or("rl job has no run")?;
    spec.config
        .validate()
        .map_err(|e| e.under("spec.config").to_string())?;
    let model = lease.model.as_ref().ok_or("rl job without a model")?;
    let start = match &model.source {
        ModelSource::HfLocal { path } | ModelSource::Checkpoint { path, .. } => PathBuf::from(path),
        ModelSource::Openai { .. } => {
            return Err(
                "RL trains local weights; an OpenAI-compatible endpoint cannot be the policy"
                    .into(),
            );
        }
    };
    let problems = problems::resolve(&spec.config.data, &mut |id| {
        let (meta, rows) = client.dataset(id).map_err(|e| e.to_string())?;
        Benchmark::from_rows(&meta.name, meta.kind, &rows).map_err(|e| e.to_string())
    })
    .map_err(|e| e.to_string())?;
    let out_dir = config.work_dir.join(lease.job.id.to_string()).join("rl");
    let mut hooks = JobHooks {
        sink: RunSink::new(client, run_id, ""),
        client,
        run_id,
        model_name: spec
            .model_name
            .clone()
            .unwrap_or_else(|| format!("rl-{}", &lease.job.id.simple().to_string()[..8])),
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
    hooks.sink.flush();
    let outcome = outcome.map_err(|e| e.to_string())?;
    tracing::info!(steps = outcome.steps, stopped = outcome.stopped, model = %outcome.model_dir.display(), "rl run ended");
    Ok(())
}
