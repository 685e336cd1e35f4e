//! The `pretrain` and `sft` jobs: run `train::run` with metrics streaming to the job's run, then
//! register the trained model as a checkpoint of that run. A retried job on the same machine
//! resumes from the checkpoint in its `out_dir`.

use super::JobError;
use crate::client::ServerClient;
use crate::heartbeat::JobSignals;
use crate::lease::WorkerConfig;
use crate::report::RunSink;
use crate::train::TrainConfig;
use crucible_types::{Lease, ModelSource, RegisterModel, TrainSpec};

/// Runs the job; `Err` carries the reason it failed.
pub(crate) fn run(
    client: &ServerClient,
    config: &WorkerConfig,
    lease: &Lease,
    spec: &TrainSpec,
    signals: &JobSignals,
) -> Result<(), JobError> {
    let run_id = lease
        .job
        .run_id
        .ok_or_else(|| JobError::invalid("training job has no run"))?;
    lease.job.spec.validate().map_err(|e| e.under("spec"))?;
    let mut train: TrainConfig = spec.config.clone();
    if train.out_dir.is_relative() {
        train.out_dir = config
            .work_dir
            .join(lease.job.id.to_string())
            .join(&train.out_dir);
    }
    let mut sink = RunSink::new(client, run_id, "train/");
    let outcome = crate::train::run(&train, &mut sink, &|done, total| {
        signals.set_progress(done, total, "training")
    });
    sink.flush();
    let outcome = outcome.map_err(JobError::internal)?;
    let final_dir = train.out_dir.join("final");
    let name = spec.model_name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            lease.job.kind,
            &lease.job.id.simple().to_string()[..8]
        )
    });
    let req = RegisterModel {
        name,
        source: ModelSource::Checkpoint {
            path: final_dir.to_string_lossy().into_owned(),
            run_id,
            step: i64::try_from(outcome.steps).unwrap_or(i64::MAX),
        },
        training_datasets: Vec::new(),
    };
    client
        .register_model(&req)
        .map_err(|e| JobError::internal(format!("registering the trained model: {e}")))?;
    Ok(())
}
