//! What a tracked run sends to its server, in one place for the worker's jobs and the CLI's
//! local runs: metric batches ([`RunSink`]) and, for RL, each step's rollouts and checkpoints
//! ([`RlReporter`]). Failed uploads are logged and the run goes on: the run's own files keep
//! everything, and the client has already retried.

use crate::client::ServerClient;
use crate::eval::Problem;
use crate::rl::rollout::{RolloutGroup, completion_records};
use crate::train::MetricsSink;
use crucible_types::{MetricPoint, Model, ModelSource, RegisterModel};
use reqwest::StatusCode;
use std::path::Path;
use uuid::Uuid;

/// Points buffered before one upload.
const FLUSH_EVERY: usize = 64;

/// Sends metrics to a run as `<prefix><key>`, in batches.
pub struct RunSink<'a> {
    client: &'a ServerClient,
    run_id: Uuid,
    /// `train/` for pretrain/SFT (their keys are bare), empty for RL (its keys are qualified).
    prefix: &'static str,
    buffer: Vec<MetricPoint>,
}

impl<'a> RunSink<'a> {
    /// An empty sink for `run_id`.
    pub fn new(client: &'a ServerClient, run_id: Uuid, prefix: &'static str) -> Self {
        Self {
            client,
            run_id,
            prefix,
            buffer: Vec::new(),
        }
    }

    /// Uploads what is buffered.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let points = std::mem::take(&mut self.buffer);
        if let Err(e) = self.client.log_metrics(self.run_id, points) {
            tracing::warn!(error = %e, "could not log metrics");
        }
    }
}

impl MetricsSink for RunSink<'_> {
    fn record(&mut self, step: u64, values: &[(&str, f64)]) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let prefix = self.prefix;
        // Stamped here, so a batch the client resends after a crash lands exactly as first sent.
        let now = chrono::Utc::now().timestamp_millis();
        self.buffer
            .extend(
                values
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| MetricPoint {
                        key: format!("{prefix}{k}"),
                        step,
                        value: *v,
                        timestamp_ms: Some(now),
                    }),
            );
        if self.buffer.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
}

impl Drop for RunSink<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// An RL run's server side: metrics, rollouts as completions, checkpoints as models.
pub struct RlReporter<'a> {
    sink: RunSink<'a>,
    client: &'a ServerClient,
    run_id: Uuid,
    /// Checkpoints are registered as `<model_name>-step<N>`.
    model_name: String,
}

impl<'a> RlReporter<'a> {
    /// A reporter for `run_id`, naming checkpoints after `model_name`.
    pub fn new(client: &'a ServerClient, run_id: Uuid, model_name: String) -> Self {
        Self {
            sink: RunSink::new(client, run_id, ""),
            client,
            run_id,
            model_name,
        }
    }

    /// The run being reported.
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// A step's metrics, delivered at once (a step takes seconds, and the dashboard follows live).
    pub fn metrics(&mut self, step: u64, values: &[(&str, f64)]) {
        self.sink.record(step, values);
        self.sink.flush();
    }

    /// A step's rollouts, stored as the run's completions.
    pub fn rollouts(&mut self, step: u64, problems: &[Problem], groups: &[RolloutGroup]) {
        let records = completion_records(step, problems, groups);
        if let Err(e) = self.client.upload_completions(self.run_id, records) {
            tracing::warn!(step, error = %e, "could not store the step's rollouts");
        }
    }

    /// Registers the checkpoint exported to `model_dir`; `None` when it could not be.
    pub fn checkpoint(&mut self, step: u64, model_dir: &Path) -> Option<Model> {
        let path = std::path::absolute(model_dir).unwrap_or_else(|_| model_dir.to_path_buf());
        let req = RegisterModel {
            name: format!("{}-step{step}", self.model_name),
            source: ModelSource::Checkpoint {
                path: path.to_string_lossy().into_owned(),
                run_id: self.run_id,
                step: i64::try_from(step).unwrap_or(i64::MAX),
            },
            training_datasets: Vec::new(),
        };
        match self.client.register_model(&req) {
            Ok(m) => {
                tracing::info!(model = %m.id, name = %m.name, "checkpoint registered");
                Some(m)
            }
            // A resumed run registers a checkpoint its first attempt already registered.
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
                tracing::info!(name = %req.name, error = %e, "checkpoint already registered");
                None
            }
            Err(e) => {
                tracing::warn!(name = %req.name, error = %e, "could not register checkpoint");
                None
            }
        }
    }

    /// Uploads any metrics still buffered.
    pub fn flush(&mut self) {
        self.sink.flush();
    }
}
