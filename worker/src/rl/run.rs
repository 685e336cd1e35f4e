//! An RL run from start (or resume) to its last step: steps, per-step metrics and rollouts to the
//! caller's hooks, periodic held-out evals through the eval harness, resumable checkpoints that
//! are exported as models. The worker's `rl` job and `crucible train rl` both call [`run`].

use std::path::{Path, PathBuf};

use crucible_types::sampling::SamplingParams;
use crucible_types::{RlConfig, RlEval};

use super::RlError;
use super::rollout::RolloutGroup;
use super::trainer::RlTrainer;
use crate::eval::{EvalReport, LocalGenerator, Problem, load_benchmark, run_eval};

/// Where a run's results go. Hooks must not fail the run: one that cannot deliver logs and moves
/// on (like [`crate::train::MetricsSink`]).
pub trait RlHooks {
    /// Metrics of `step` (rollout, batch, train and time figures; eval scores).
    fn metrics(&mut self, step: u64, values: &[(&str, f64)]);
    /// Every group rolled out at `step`; `problems` resolves their problem indices.
    fn rollouts(&mut self, _step: u64, _problems: &[Problem], _groups: &[RolloutGroup]) {}
    /// A checkpoint of `step` was exported to `model_dir` (register it as a model).
    fn checkpoint(&mut self, _step: u64, _model_dir: &Path) {}
    /// `(done, total)` steps, and what is happening.
    fn progress(&mut self, _done: u64, _total: u64, _phase: &str) {}
    /// Asked between steps; `true` saves a checkpoint and returns early.
    fn should_stop(&self) -> bool {
        false
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RlOutcome {
    /// Steps completed (all of them unless stopped).
    pub steps: u64,
    pub stopped: bool,
    /// The last exported model.
    pub model_dir: PathBuf,
    /// Held-out evals run in this call, by step.
    pub evals: Vec<(u64, EvalReport)>,
}

/// Runs (or resumes) the RL run of `config` in `out_dir`, starting from the policy in
/// `start_dir`. `data_dir` holds benchmark files for evals other than `synthetic`.
pub fn run(
    config: &RlConfig,
    start_dir: &Path,
    problems: Vec<Problem>,
    out_dir: &Path,
    data_dir: Option<&Path>,
    hooks: &mut dyn RlHooks,
) -> Result<RlOutcome, RlError> {
    let device = crucible_gpu::device::best_device()?;
    let mut trainer = RlTrainer::new(config.clone(), start_dir, problems, out_dir, &device)?;
    let mut evals = Vec::new();
    let eval_due = |step: u64| {
        step == 0
            || step == config.steps
            || (config.eval_every > 0 && step.is_multiple_of(config.eval_every))
    };
    let mut evaluate = |trainer: &RlTrainer, hooks: &mut dyn RlHooks| -> Result<(), RlError> {
        let step = trainer.step_count();
        let Some(spec) = &config.eval else {
            return Ok(());
        };
        hooks.progress(step, config.steps, "evaluating");
        let report = held_out(trainer, spec, config.seed, data_dir)?;
        let prefix = format!("eval/{}", spec.benchmark);
        let mut values = Vec::new();
        for s in &report.scores {
            values.push((format!("{prefix}/{}", s.metric), s.value));
            if let (Some(lo), Some(hi)) = (s.ci_low, s.ci_high) {
                values.push((format!("{prefix}/{}_ci_low", s.metric), lo));
                values.push((format!("{prefix}/{}_ci_high", s.metric), hi));
            }
        }
        let named: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        hooks.metrics(step, &named);
        tracing::info!(step, scores = ?report.scores, "held-out eval");
        evals.push((step, report));
        Ok(())
    };
    // The resumable checkpoint is written last: it is the commit point of a step. A kill before
    // it repeats the step on resume (bit-identically, so the export and the registration repeat
    // harmlessly); a kill after it has nothing of the step left to do.
    let checkpoint = |trainer: &RlTrainer, hooks: &mut dyn RlHooks| -> Result<PathBuf, RlError> {
        let step = trainer.step_count();
        let dir = out_dir.join("checkpoints").join(format!("step-{step}"));
        trainer.export(&dir)?;
        hooks.checkpoint(step, &dir);
        trainer.save_checkpoint()?;
        Ok(dir)
    };

    if trainer.step_count() == 0 {
        evaluate(&trainer, hooks)?;
    }
    let mut model_dir = None;
    let mut stopped = false;
    while trainer.step_count() < config.steps {
        if hooks.should_stop() {
            stopped = true;
            model_dir = Some(checkpoint(&trainer, hooks)?);
            break;
        }
        hooks.progress(trainer.step_count(), config.steps, "training");
        let report = trainer.step()?;
        let named: Vec<(&str, f64)> = report
            .metrics
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        hooks.metrics(report.step, &named);
        if config.store_rollouts {
            hooks.rollouts(report.step, trainer.problems(), &report.rollouts);
        }
        // The step's eval comes before its checkpoint, so a run killed while evaluating
        // evaluates again on resume instead of skipping the step's eval.
        if eval_due(report.step) {
            evaluate(&trainer, hooks)?;
        }
        let last = report.step == config.steps;
        if last || (config.checkpoint_every > 0 && report.step % config.checkpoint_every == 0) {
            model_dir = Some(checkpoint(&trainer, hooks)?);
        }
    }
    hooks.progress(trainer.step_count(), config.steps, "done");
    let model_dir = match model_dir {
        Some(dir) => dir,
        // Resumed after the last step: the export exists, or is written now.
        None => checkpoint(&trainer, hooks)?,
    };
    Ok(RlOutcome {
        steps: trainer.step_count(),
        stopped,
        model_dir,
        evals,
    })
}

/// The held-out eval of the current policy through the eval harness (the same code, benchmark,
/// prompts and scores as an `eval` job).
fn held_out(
    trainer: &RlTrainer,
    spec: &RlEval,
    seed: u64,
    data_dir: Option<&Path>,
) -> Result<EvalReport, RlError> {
    let bench = load_benchmark(&spec.benchmark, data_dir, spec.limit.map(|l| l as usize))?;
    let model = trainer.params().inference_model()?;
    let mut generator = LocalGenerator::new(&model, trainer.tokenizer());
    let sampling = SamplingParams {
        temperature: spec.temperature,
        top_p: if spec.temperature > 0.0 { 0.95 } else { 1.0 },
        max_new_tokens: spec.max_new_tokens,
        seed,
        ..SamplingParams::default()
    };
    Ok(run_eval(
        &bench,
        &mut generator,
        spec.n_samples,
        &sampling,
        &[],
        &mut |_| Ok(()),
        &|| false,
        &mut |_, _| {},
    )?)
}
