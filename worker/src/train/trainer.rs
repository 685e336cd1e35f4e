//! The training loop: per optimizer step, `grad_accum` packed micro-batches are run forward and
//! backward, their gradients summed, the global norm clipped, and AdamW applied at the
//! scheduled learning rate.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::checkpoint::{self, TrainState};
use super::metrics::MetricsSink;
use super::objective::{Targets, block_losses};
use super::optimizer::{AdamW, Gradients, accumulate, clip_scale, grad_norm};
use super::params::{Parameters, config_json};
use crate::data::packing::PackedBatch;
use crate::data::stream::{DocumentFormat, DocumentStream};
use crate::data::vocab::{END_OF_TEXT, IM_END};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::train::{DataSource, ModelInit, TrainConfig};

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based number of the step just taken.
    pub step: u64,
    /// The optimised objective: `loss_next + mtp_weight · mtp_loss`.
    pub loss: f64,
    /// Mean next-token cross-entropy over target tokens.
    pub next_loss: f64,
    /// Mean MTP (token after next) cross-entropy.
    pub mtp_loss: f64,
    /// Share of MTP targets the MTP layer's argmax got right.
    pub mtp_accuracy: f64,
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Non-padding tokens processed.
    pub tokens: usize,
    pub seconds: f64,
}

impl StepReport {
    /// The values a metrics sink receives.
    pub fn metrics(&self) -> [(&'static str, f64); 7] {
        [
            ("loss", self.loss),
            ("next_loss", self.next_loss),
            ("mtp_loss", self.mtp_loss),
            ("mtp_accuracy", self.mtp_accuracy),
            ("lr", self.lr),
            ("grad_norm", self.grad_norm),
            (
                "tokens_per_sec",
                self.tokens as f64 / self.seconds.max(1e-9),
            ),
        ]
    }
}

/// Summary of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub steps: u64,
    /// The last step's report (`None` if the run had nothing left to do).
    pub last: Option<StepReport>,
    /// Tokens and seconds of the steps run in this call (not before a resume).
    pub tokens: usize,
    pub seconds: f64,
    /// The exported HF-format model.
    pub model_dir: std::path::PathBuf,
}

/// A run in progress: weights, optimizer, data stream.
pub struct Trainer {
    config: TrainConfig,
    state: TrainState,
    stream: DocumentStream,
    tokenizer_dir: std::path::PathBuf,
    device: Device,
}

impl Trainer {
    /// Starts the run `config` describes, or resumes it from `config.checkpoint_path()` when a
    /// checkpoint is there.
    pub fn new(config: TrainConfig, device: &Device) -> Result<Self, TrainError> {
        if config.micro_batch == 0 || config.grad_accum == 0 || config.seq_len < 3 {
            return Err(TrainError::Invalid(format!(
                "micro_batch ({}) and grad_accum ({}) must be positive and seq_len ({}) at least 3",
                config.micro_batch, config.grad_accum, config.seq_len
            )));
        }
        let tokenizer_dir = match &config.init {
            ModelInit::Scratch { tokenizer_dir, .. } => tokenizer_dir.clone(),
            ModelInit::From { dir } => dir.clone(),
        };
        let tokenizer = Tokenizer::load(&tokenizer_dir)?;
        let DataSource::Synthetic {
            seed,
            max_steps,
            max_digits,
        } = config.data;
        let mut stream = DocumentStream::new(
            tokenizer,
            DocumentFormat::from(config.kind),
            seed,
            max_steps,
            max_digits,
        )?;
        let checkpoint_path = config.checkpoint_path();
        let state = if checkpoint_path.exists() {
            let state = checkpoint::load(&checkpoint_path, &config, device)?;
            tracing::info!(step = state.step, path = %checkpoint_path.display(), "resuming");
            stream.seek(state.cursor);
            state
        } else {
            let params = match &config.init {
                ModelInit::Scratch { architecture, .. } => {
                    let tok = stream.tokenizer();
                    let eos: Vec<u32> = [IM_END, END_OF_TEXT]
                        .iter()
                        .filter_map(|t| tok.token_to_id(t))
                        .collect();
                    let vocab = tok.vocab_size();
                    Parameters::init(config_json(architecture, vocab, &eos), config.seed, device)?
                }
                ModelInit::From { dir } => Parameters::load(dir, device)?,
            };
            TrainState {
                optimizer: AdamW::new(config.optimizer.clone(), &params)?,
                params,
                step: 0,
                cursor: stream.cursor(),
            }
        };
        Ok(Self {
            config,
            state,
            stream,
            tokenizer_dir,
            device: device.clone(),
        })
    }

    /// Optimizer steps completed so far.
    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    /// The current weights.
    pub fn params(&self) -> &Parameters {
        &self.state.params
    }

    /// The next micro-batches of one step, drawn from the stream.
    pub fn next_blocks(&mut self) -> Result<Vec<PackedBatch>, TrainError> {
        (0..self.config.grad_accum)
            .map(|_| {
                Ok(self
                    .stream
                    .next_batch(self.config.micro_batch, self.config.seq_len)?)
            })
            .collect()
    }

    /// Runs one optimizer step on the next data.
    pub fn step(&mut self) -> Result<StepReport, TrainError> {
        let start = Instant::now();
        let blocks = self.next_blocks()?;
        let report = self.step_on(&blocks)?;
        Ok(StepReport {
            seconds: start.elapsed().as_secs_f64(),
            ..report
        })
    }

    /// Runs one optimizer step on `blocks` (normally [`Self::next_blocks`]).
    pub fn step_on(&mut self, blocks: &[PackedBatch]) -> Result<StepReport, TrainError> {
        let start = Instant::now();
        let (report, grads) = self.losses_and_gradients(blocks)?;
        let lr =
            self.config
                .schedule
                .lr(self.config.optimizer.lr, self.state.step, self.config.steps);
        let norm = grad_norm(&grads)?;
        if !norm.is_finite() || !report.loss.is_finite() {
            return Err(TrainError::Invalid(format!(
                "step {}: loss {} / gradient norm {norm} is not finite",
                self.state.step + 1,
                report.loss
            )));
        }
        let scale = clip_scale(norm, self.config.grad_clip);
        self.state
            .optimizer
            .step(&self.state.params, &grads, lr, scale)?;
        self.state.step += 1;
        self.state.cursor = self.stream.cursor();
        Ok(StepReport {
            step: self.state.step,
            lr,
            grad_norm: norm,
            seconds: start.elapsed().as_secs_f64(),
            ..report
        })
    }

    /// Mean losses over the step's target tokens and their summed gradients.
    fn losses_and_gradients(
        &self,
        blocks: &[PackedBatch],
    ) -> Result<(StepReport, Gradients), TrainError> {
        let targets = blocks
            .iter()
            .map(Targets::new)
            .collect::<Result<Vec<_>, _>>()?;
        let next_total: usize = targets.iter().map(Targets::next_count).sum();
        let mtp_total: usize = targets.iter().map(Targets::mtp_count).sum();
        if next_total == 0 {
            return Err(TrainError::Invalid(
                "a training step has no target tokens (seq_len too short?)".into(),
            ));
        }
        let weight = self.config.mtp_weight();
        let model = self.state.params.model()?;
        let mut grads = Gradients::new();
        let (mut next_sum, mut mtp_sum, mut mtp_correct, mut tokens) = (0.0, 0.0, 0, 0);
        for (block, target) in blocks.iter().zip(&targets) {
            let losses = block_losses(&model, &block.tokens, target, &self.device)?;
            let mut loss = (&losses.next_sum / next_total as f64)?;
            next_sum += f64::from(losses.next_sum.to_scalar::<f32>()?);
            if let Some(mtp) = &losses.mtp_sum {
                mtp_sum += f64::from(mtp.to_scalar::<f32>()?);
                mtp_correct += losses.mtp_correct;
                if mtp_total > 0 && weight > 0.0 {
                    loss = (loss + (mtp * (weight / mtp_total as f64))?)?;
                }
            }
            tokens += block.real_tokens();
            accumulate(&mut grads, &self.state.params, &loss.backward()?)?;
        }
        let per = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        let (next_loss, mtp_loss) = (per(next_sum, next_total), per(mtp_sum, mtp_total));
        Ok((
            StepReport {
                step: 0,
                loss: next_loss + weight * mtp_loss,
                next_loss,
                mtp_loss,
                mtp_accuracy: per(mtp_correct as f64, mtp_total),
                lr: 0.0,
                grad_norm: 0.0,
                tokens,
                seconds: 0.0,
            },
            grads,
        ))
    }

    /// The objective's value on `blocks` with the current weights, without training on them.
    pub fn loss_on(&self, blocks: &[PackedBatch]) -> Result<f64, TrainError> {
        Ok(self.losses_and_gradients(blocks)?.0.loss)
    }

    /// Saves a resumable checkpoint to `config.checkpoint_path()`.
    pub fn save_checkpoint(&self) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.config.out_dir).map_err(|e| TrainError::Io {
            path: self.config.out_dir.clone(),
            message: e.to_string(),
        })?;
        checkpoint::save(&self.config.checkpoint_path(), &self.state, &self.config)
    }

    /// Writes the current model as an HF-format folder (config, weights, tokenizer files).
    pub fn export(&self, dir: &Path) -> Result<(), TrainError> {
        export(&self.state.params, &self.tokenizer_dir, dir)
    }
}

/// Writes `params` as an HF-format folder with the tokenizer files of `tokenizer_dir`, so
/// `MimoModel::load` and the worker can run it (training and RL exports).
pub fn export(params: &Parameters, tokenizer_dir: &Path, dir: &Path) -> Result<(), TrainError> {
    params.save_hf(dir)?;
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        let from = tokenizer_dir.join(file);
        std::fs::copy(&from, dir.join(file)).map_err(|e| TrainError::Io {
            path: from.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Runs (or resumes) `config` to its last step on the best device, reporting each step's metrics
/// to `sink` and `(done, total)` to `progress`; saves checkpoints as configured and exports the
/// final model to `config.final_dir()`.
pub fn run(
    config: &TrainConfig,
    sink: &mut dyn MetricsSink,
    progress: &dyn Fn(u64, u64),
) -> Result<TrainOutcome, TrainError> {
    let device = crucible_gpu::device::best_device()?;
    let mut trainer = Trainer::new(config.clone(), &device)?;
    let (mut last, mut tokens, mut seconds) = (None, 0, 0.0);
    progress(trainer.step_count(), config.steps);
    while trainer.step_count() < config.steps {
        let report = trainer.step()?;
        sink.record(report.step, &report.metrics());
        progress(report.step, config.steps);
        tokens += report.tokens;
        seconds += report.seconds;
        if config.checkpoint_every > 0 && report.step % config.checkpoint_every == 0 {
            trainer.save_checkpoint()?;
        }
        last = Some(report);
    }
    trainer.save_checkpoint()?;
    let model_dir = config.final_dir();
    trainer.export(&model_dir)?;
    Ok(TrainOutcome {
        steps: trainer.step_count(),
        last,
        tokens,
        seconds,
        model_dir,
    })
}
