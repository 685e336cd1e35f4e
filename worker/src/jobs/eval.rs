//! The `eval` job: for each benchmark of the lease, generate, grade, upload samples chunk by chunk,
//! then upload scores. A retried job regenerates the same samples (seeded), so re-uploads overwrite.

use super::JobError;
use crate::client::ServerClient;
use crate::eval::{
    Benchmark, Generator, LocalGenerator, OpenAiConfig, OpenAiGenerator, load_benchmark, run_eval,
};
use crate::heartbeat::JobSignals;
use crate::lease::WorkerConfig;
use crucible_gpu::model::MimoModel;
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::jobs::Device;
use crucible_types::{JobSpec, Lease, MetricPoint, ModelSource, Speculative};
use uuid::Uuid;

/// A loaded local model, kept alive while its generator borrows it.
pub(super) struct LocalModel {
    model: MimoModel,
    tokenizer: Tokenizer,
}

/// Where a job's completions come from. The local model is boxed: the handle lives for the
/// whole job and the enum stays small.
pub(super) enum ModelHandle {
    Local(Box<LocalModel>),
    Remote(OpenAiGenerator),
}

impl ModelHandle {
    /// Loads the lease's model: a local HF folder (or checkpoint) on the device the job asks
    /// for (or the best one), or an OpenAI-compatible endpoint.
    pub(super) fn open(source: &ModelSource, device: Option<Device>) -> Result<Self, JobError> {
        if let ModelSource::Openai { base_url, model } = source {
            return OpenAiGenerator::new(OpenAiConfig::new(base_url.clone(), model.clone()))
                .map(ModelHandle::Remote)
                .map_err(JobError::internal);
        }
        let dir = super::local_weights(source)?
            .ok_or_else(|| JobError::internal("a model without local weights"))?;
        let path = dir.display();
        let device = crucible_gpu::device::for_requirement(device)
            .map_err(|e| JobError::internal(format!("selecting a device: {e}")))?;
        let model = MimoModel::load(&dir, &device.load_options())
            .map_err(|e| JobError::internal(format!("loading {path}: {e}")))?;
        tracing::info!(model = %path, device = %model.runs_on(), "model loaded");
        let tokenizer = Tokenizer::load(&dir)
            .map_err(|e| JobError::internal(format!("loading the tokenizer of {path}: {e}")))?;
        Ok(ModelHandle::Local(Box::new(LocalModel {
            model,
            tokenizer,
        })))
    }

    /// A generator over the handle; `speculative` applies to a local model.
    pub(super) fn generator(&mut self, speculative: Speculative) -> Box<dyn Generator + '_> {
        match self {
            ModelHandle::Local(m) => {
                Box::new(LocalGenerator::new(&m.model, &m.tokenizer).with_speculative(speculative))
            }
            ModelHandle::Remote(g) => Box::new(g),
        }
    }
}

/// Prefix of a benchmark name that refers to an imported dataset: `dataset:<id>`.
const DATASET_PREFIX: &str = "dataset:";

/// Resolves a benchmark name: an imported dataset (fetched from the server) or a built-in loader.
fn benchmark(
    client: &ServerClient,
    name: &str,
    config: &WorkerConfig,
    limit: Option<usize>,
) -> Result<Benchmark, JobError> {
    if let Some(id) = name.strip_prefix(DATASET_PREFIX) {
        let id: Uuid = id
            .parse()
            .map_err(|_| JobError::invalid(format!("{name}: not a dataset id")))?;
        let (meta, rows) = client
            .dataset(id)
            .map_err(|e| JobError::internal(format!("{name}: {e}")))?;
        let bench =
            Benchmark::from_rows(&meta.name, meta.kind, &rows).map_err(JobError::internal)?;
        return Ok(bench.truncated(limit));
    }
    load_benchmark(name, config.data_dir.as_deref(), limit).map_err(JobError::internal)
}

/// Runs every benchmark of the lease; `Err` carries the reason the job failed.
pub(crate) fn run(
    client: &ServerClient,
    worker_id: Uuid,
    config: &WorkerConfig,
    lease: &Lease,
    signals: &JobSignals,
) -> Result<(), JobError> {
    let JobSpec::Eval(spec) = &lease.job.spec else {
        return Err(JobError::invalid("not an eval job"));
    };
    let limit = spec.limit.map(|l| l as usize);
    let benches = lease
        .evals
        .iter()
        .map(|t| benchmark(client, &t.benchmark, config, limit))
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = benches.iter().map(|b| b.problems.len() as u64).sum();
    let model = lease
        .model
        .as_ref()
        .ok_or_else(|| JobError::invalid("eval job without a model"))?;
    let mut handle = ModelHandle::open(&model.source, lease.job.requirements.device)?;
    let mut generator = handle.generator(spec.speculative);
    let mut before = 0u64;
    for (target, bench) in lease.evals.iter().zip(&benches) {
        let mut upload = |records| {
            client
                .upload_samples(target.eval_id, worker_id, records)
                .map_err(|e| crate::eval::EvalError::Sink(e.to_string()))
        };
        let stop = || signals.should_stop();
        let mut progress =
            |done: u64, _| signals.set_progress(before + done, total, &target.benchmark);
        let report = run_eval(
            bench,
            generator.as_mut(),
            target.n_samples,
            &target.sampling,
            &spec.ks,
            &mut upload,
            &stop,
            &mut progress,
        )
        .map_err(|e| JobError::internal(format!("{}: {e}", target.benchmark)))?;
        before += bench.problems.len() as u64;
        client
            .upload_scores(
                target.eval_id,
                worker_id,
                report.problems as i32,
                report.scores.clone(),
            )
            .map_err(|e| {
                JobError::internal(format!("uploading scores of {}: {e}", target.benchmark))
            })?;
        if let Some(run_id) = lease.job.run_id {
            let points = report
                .scores
                .iter()
                .map(|s| MetricPoint {
                    key: format!("eval/{}/{}", target.benchmark, s.metric),
                    step: 0,
                    value: s.value,
                    timestamp_ms: Some(chrono::Utc::now().timestamp_millis()),
                })
                .collect();
            if let Err(e) = client.log_metrics(run_id, points) {
                tracing::warn!(error = %e, "could not log eval metrics to the run");
            }
        }
        tracing::info!(benchmark = %target.benchmark, problems = report.problems, "eval finished");
    }
    Ok(())
}
