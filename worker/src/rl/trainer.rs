//! One RL run in progress: the policy's weights and optimizer, the problem drawer with its easy
//! pool, and the verifier pool. A step rolls out a batch (dynamic sampling refills it), computes
//! group advantages, and takes `mini_batches` clipped-objective updates against the rollout's
//! log-probabilities. Checkpoints hold everything a resumed run needs to continue exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use crucible_types::sampling::SamplingParams;
use crucible_types::{RlAdvantage, RlConfig, RlLossNormalisation, RlRollout};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::RlError;
use super::advantage::{AdvantageConfig, AdvantageScaling, advantages_per_token, group_advantages};
use super::dynamic_sampling::{
    DrawSource, DynamicSamplingConfig, FilledBatch, ProblemDrawer, ScoredGroup, fill_batch,
    is_informative,
};
use super::objective::{LossNormalisation, PolicyLossConfig, PolicyLossInputs, policy_loss};
use super::policy::{SequenceBatch, token_logprobs};
use super::problems::level_of;
use super::rollout::{Draw, RolloutGroup, RolloutSample, RoundConfig, rollout_round};
use super::seamless::rollout_seamless;
use super::step_metrics::{RolloutTally, StepFigures, UpdateStats, step_metrics};
use crate::eval::{Problem, prompt_ids};
use crate::train::checkpoint::{self, to_json};
use crate::train::optimizer::{AdamW, Gradients, accumulate, clip_scale, grad_norm};
use crate::train::params::Parameters;
use crate::train::{AdamWConfig, Schedule};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_verify::code::{Judge, SandboxConfig};
use crucible_verify::math::MathConfig;
use crucible_verify::{Grader, Task, VerifierPool};

const FORMAT: &str = "crucible-rl-checkpoint-1";
/// A round never generates more than this many batches' worth of groups.
const MAX_OVERSAMPLE: f64 = 4.0;

/// What one step did: its metrics (already named as logged) and every group it generated.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// 1-based number of the step just taken.
    pub step: u64,
    pub metrics: Vec<(String, f64)>,
    /// All groups rolled out this step (kept, dropped and surplus), in generation order.
    pub rollouts: Vec<RolloutGroup>,
}

/// A run in progress.
pub struct RlTrainer {
    config: RlConfig,
    out_dir: PathBuf,
    start_dir: PathBuf,
    tokenizer: Tokenizer,
    problems: Vec<Problem>,
    /// Each problem's difficulty level or dataset ([`level_of`]), for per-level pass rates.
    levels: Vec<String>,
    prompts: Vec<Vec<u32>>,
    tasks: Vec<Arc<Task>>,
    params: Parameters,
    /// The starting policy, kept only when a KL penalty needs it.
    reference: Option<Parameters>,
    optimizer: AdamW,
    step: u64,
    drawer: ProblemDrawer<usize>,
    /// Running share of informative groups, used to size dynamic-sampling rounds.
    informative_rate: f64,
    pool: VerifierPool,
    /// Rewrites every rollout's sampling (see [`RlTrainer::shape_rollouts`]).
    shaper: Option<Shaper>,
}

/// A rewrite of a rollout's sampling parameters, given its seeded parameters.
pub type Shaper = Box<dyn Fn(&mut SamplingParams) + Send + Sync>;

/// A seed derived from the run's seed and a path of indices (step, round, group, sample …), so
/// every random choice is reproducible and independent of the others.
pub fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &p| {
        let mut z = (h ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The fields a resume may change: length, checkpoint/eval cadence, rollout storage, and the
/// resources (reward threads, rollout rows), which change timing but never what is kept.
fn comparable(c: &RlConfig) -> RlConfig {
    RlConfig {
        rollout_rows: None,
        steps: 0,
        checkpoint_every: 0,
        eval_every: 0,
        eval: None,
        store_rollouts: false,
        reward_workers: 0,
        ..c.clone()
    }
}

impl RlTrainer {
    /// Starts the run from the HF-format policy in `start_dir`, or resumes it from
    /// `out_dir/checkpoint.safetensors`; `problems` are the run's problems in config order.
    pub fn new(
        config: RlConfig,
        start_dir: &Path,
        problems: Vec<Problem>,
        out_dir: &Path,
        device: &Device,
    ) -> Result<Self, RlError> {
        config.validate().map_err(|e| RlError::Config {
            name: e.field,
            reason: e.message,
        })?;
        let tokenizer = Tokenizer::load(start_dir)?;
        let mut prompts = Vec::with_capacity(problems.len());
        let mut tasks = Vec::with_capacity(problems.len());
        for p in &problems {
            let ids = prompt_ids(&tokenizer, &p.prompt)?;
            if ids.len() > config.max_prompt_tokens {
                return Err(RlError::Input {
                    name: "problems",
                    reason: format!(
                        "{}: prompt of {} tokens exceeds max_prompt_tokens ({})",
                        p.id,
                        ids.len(),
                        config.max_prompt_tokens
                    ),
                });
            }
            prompts.push(ids);
            if !p.task.has_reward() {
                return Err(RlError::Input {
                    name: "problems",
                    reason: format!("{}: free-text answers have no RL verifier", p.id),
                });
            }
            tasks.push(Arc::new(p.task.clone()));
        }
        let judge = if tasks.iter().any(|t| t.needs_judge()) {
            Some(Judge::new(SandboxConfig::default())?)
        } else {
            None
        };
        let grader = Grader::new(MathConfig::default(), judge, config.code_reward);
        let pool = VerifierPool::new(
            config.reward_workers,
            // Room for every rollout of a round, so submitting never blocks decoding.
            config.groups_per_batch * config.group_size * (MAX_OVERSAMPLE as usize + 1),
            Arc::new(grader),
        )?;
        let optimizer_config = adamw(&config);
        let checkpoint_path = out_dir.join("checkpoint.safetensors");
        let (params, optimizer, step, drawer, informative_rate) = if checkpoint_path.exists() {
            let snap = checkpoint::read(&checkpoint_path, FORMAT, optimizer_config, device)?;
            let saved: RlConfig = snap.json("config")?;
            if comparable(&saved) != comparable(&config) {
                return Err(RlError::Config {
                    name: "config".into(),
                    reason: format!(
                        "{} was written by a run with a different configuration; use a fresh out_dir",
                        checkpoint_path.display()
                    ),
                });
            }
            let (main, easy): (Vec<usize>, Vec<usize>) = snap.json("drawer")?;
            if main.iter().chain(&easy).any(|&i| i >= problems.len()) {
                return Err(RlError::Config {
                    name: "data".into(),
                    reason: "the checkpoint's problems do not match the run's".into(),
                });
            }
            let drawer = ProblemDrawer::restore(main, easy, config.easy_alpha, 1.0, config.seed)?;
            let step = snap.number("step")?;
            let rate: f64 = snap.json("informative_rate")?;
            tracing::info!(step, path = %checkpoint_path.display(), "resuming RL run");
            (snap.params, snap.optimizer, step, drawer, rate)
        } else {
            let params = Parameters::load(start_dir, device)?;
            let optimizer = AdamW::new(optimizer_config, &params)?;
            let drawer = ProblemDrawer::new(
                (0..problems.len()).collect(),
                config.easy_alpha,
                1.0,
                config.seed,
            )?;
            (params, optimizer, 0, drawer, 0.5)
        };
        let reference = match config.kl_coef {
            Some(_) => Some(Parameters::load(start_dir, device)?),
            None => None,
        };
        Ok(Self {
            config,
            out_dir: out_dir.to_path_buf(),
            start_dir: start_dir.to_path_buf(),
            tokenizer,
            levels: problems
                .iter()
                .map(|p| level_of(&p.id).to_string())
                .collect(),
            problems,
            prompts,
            tasks,
            params,
            reference,
            optimizer,
            step,
            drawer,
            informative_rate,
            pool,
            shaper: None,
        })
    }

    /// Rewrites the sampling of every rollout from now on (after the run's own settings and the
    /// sample's seed are set). Why: `crucible bench rollout` replays the same steps on workloads
    /// the shipped model does not produce by itself, e.g. long-tailed lengths with EOS ignored.
    pub fn shape_rollouts(&mut self, shaper: Shaper) {
        self.shaper = Some(shaper);
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The run's problems (rollouts name them by index).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The tokenizer of the policy.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The current weights.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// Rolls out one batch and updates the policy on it.
    pub fn step(&mut self) -> Result<StepReport, RlError> {
        let started = Instant::now();
        let step = self.step;
        let (mut batch, generated, tally) = self.roll_out_batch()?;
        let train_started = Instant::now();
        let groups: Vec<RolloutGroup> = std::mem::take(&mut batch.groups)
            .into_iter()
            .map(|g| g.problem)
            .collect();
        let update = if groups.is_empty() {
            tracing::warn!(
                step = step + 1,
                "no usable group this step; the policy is not updated"
            );
            UpdateStats::default()
        } else {
            self.update(&groups)?
        };
        let t_train = train_started.elapsed();
        self.step += 1;

        let metrics = step_metrics(&StepFigures {
            generated: &generated,
            batch: &batch,
            kept: &groups,
            levels: &self.levels,
            easy_pool: self.drawer.easy().len(),
            tally: &tally,
            update: &update,
            train: t_train,
            step: started.elapsed(),
        });
        Ok(StepReport {
            step: self.step,
            metrics,
            rollouts: generated,
        })
    }

    /// The step's rollouts: draws the step's launch order of groups, decodes and scores them
    /// (round by round in lockstep, or as one continuous batch) until dynamic sampling has
    /// filled the batch. Returns the batch, every group rolled out (kept or not) and the step's
    /// rollout costs. The easy pool learns from the rolled-out groups once the batch is full.
    fn roll_out_batch(
        &mut self,
    ) -> Result<(FilledBatch<RolloutGroup>, Vec<RolloutGroup>, RolloutTally), RlError> {
        let c = self.config.clone();
        let step = self.step;
        let started = Instant::now();
        self.drawer.reseed(derive_seed(&[c.seed, step, 0]));
        let policy = self.params.inference_model()?;
        let seamless = c.rollout == RlRollout::Seamless;
        let ds = DynamicSamplingConfig {
            groups_per_batch: c.groups_per_batch,
            // The seamless engine's one continuous batch launches as many groups as the rounds.
            max_rounds: if seamless { 1 } else { c.max_rounds },
            drop_uniform_groups: c.dynamic_sampling,
        };
        let most_per_round = (c.groups_per_batch as f64 * MAX_OVERSAMPLE) as usize;
        let launchable = if c.dynamic_sampling {
            most_per_round * c.max_rounds
        } else {
            c.groups_per_batch
        };
        // The launch order is fixed before decoding, so it never depends on what finished when.
        let mut order = Vec::with_capacity(launchable);
        for _ in 0..launchable {
            order.push(self.drawer.draw().ok_or(RlError::Input {
                name: "data",
                reason: "no problems to draw".into(),
            })?);
        }
        let draws: Vec<Draw> = order
            .iter()
            .map(|&(problem, _)| Draw {
                problem,
                prompt_ids: &self.prompts[problem],
                task: &self.tasks[problem],
            })
            .collect();
        let rows = c.rollout_rows.unwrap_or(c.groups_per_batch * c.group_size);
        let mut generated: Vec<RolloutGroup> = Vec::new();
        let mut tally = RolloutTally {
            rows,
            ..RolloutTally::default()
        };
        let mut launched = 0;
        let batch = {
            let (pool, rate, shaper) = (&mut self.pool, &mut self.informative_rate, &self.shaper);
            let tokenizer = &self.tokenizer;
            fill_batch(ds, |_, needed| -> Result<_, RlError> {
                let n = if seamless {
                    draws.len()
                } else if c.dynamic_sampling {
                    let want = (needed as f64 / rate.max(1.0 / MAX_OVERSAMPLE)).ceil() as usize;
                    want.clamp(needed, most_per_round)
                } else {
                    needed
                };
                let round = &draws[launched..(launched + n).min(draws.len())];
                let first = launched;
                launched += round.len();
                // A sample's seed is fixed by its place in the launch order, not by its round
                // or its row.
                let sampling = |g: usize, j: usize| {
                    let mut params = SamplingParams {
                        temperature: c.temperature,
                        seed: derive_seed(&[c.seed, step, 1, (first + g) as u64, j as u64]),
                        max_new_tokens: c.max_new_tokens,
                        ..SamplingParams::default()
                    };
                    if let Some(shape) = shaper {
                        shape(&mut params);
                    }
                    params
                };
                let round_config = RoundConfig {
                    group_size: c.group_size,
                    stop_after_informative: c.dynamic_sampling.then_some(needed),
                    sampling: &sampling,
                };
                let (groups, stats) = if seamless {
                    rollout_seamless(&policy, tokenizer, pool, round, &round_config, rows, *rate)?
                } else {
                    rollout_round(&policy, tokenizer, pool, round, &round_config)?
                };
                tally.add(&stats);
                tally.easy_draws += order[first..first + groups.len()]
                    .iter()
                    .filter(|(_, source)| *source == DrawSource::Easy)
                    .count();
                if !groups.is_empty() {
                    let informative = groups
                        .iter()
                        .filter(|g| is_informative(&g.rewards()))
                        .count();
                    let observed = informative as f64 / groups.len() as f64;
                    *rate = 0.7 * *rate + 0.3 * observed;
                }
                generated.extend(groups.iter().cloned());
                Ok(groups
                    .into_iter()
                    .map(|group| ScoredGroup {
                        rewards: group.rewards(),
                        problem: group,
                    })
                    .collect())
            })?
        };
        for group in &generated {
            self.drawer.record(&ScoredGroup {
                problem: group.problem,
                rewards: group.rewards(),
            });
        }
        tally.rollout = started.elapsed();
        Ok((batch, generated, tally))
    }

    /// `mini_batches` updates on the kept groups; rows are shuffled from (seed, step).
    fn update(&mut self, groups: &[RolloutGroup]) -> Result<UpdateStats, RlError> {
        let c = &self.config;
        let rewards: Vec<f32> = groups.iter().flat_map(RolloutGroup::rewards).collect();
        let scaling = match c.advantage {
            RlAdvantage::GroupStd => AdvantageScaling::GroupStd,
            RlAdvantage::NoStd => AdvantageScaling::NoStd,
        };
        let advantages = group_advantages(
            &rewards,
            c.group_size,
            AdvantageConfig {
                scaling,
                ..AdvantageConfig::default()
            },
        )?;
        let mut rows: Vec<(&RolloutGroup, &RolloutSample, f32)> = groups
            .iter()
            .flat_map(|g| g.samples.iter().map(move |s| (g, s)))
            .zip(advantages)
            .map(|((g, s), a)| (g, s, a))
            .collect();
        rows.shuffle(&mut StdRng::seed_from_u64(derive_seed(&[
            c.seed, self.step, 2,
        ])));
        let loss_config = PolicyLossConfig {
            eps_low: c.eps_low,
            eps_high: c.eps_high,
            normalisation: match c.loss {
                RlLossNormalisation::Token => LossNormalisation::Token,
                RlLossNormalisation::Sequence => LossNormalisation::Sequence,
            },
            kl_coef: c.kl_coef,
        };
        let lr = Schedule::Constant {
            warmup: c.warmup_steps,
        }
        .lr(c.lr, self.step, c.steps);
        let per = rows.len().div_ceil(c.mini_batches);
        let device = self
            .params
            .iter()
            .next()
            .map_or(Device::Cpu, |(_, v)| v.device().clone());
        let mut stats = UpdateStats {
            lr,
            ..UpdateStats::default()
        };
        let mut updates = 0;
        for chunk in rows.chunks(per) {
            let pairs: Vec<(&[u32], &[u32])> = chunk
                .iter()
                .map(|(g, s, _)| (g.prompt_ids.as_slice(), s.token_ids.as_slice()))
                .collect();
            let batch = SequenceBatch::new(&pairs)?;
            let logps: Vec<&[f32]> = chunk
                .iter()
                .map(|(_, s, _)| s.logprobs.as_slice())
                .collect();
            let adv: Vec<f32> = chunk.iter().map(|(_, _, a)| *a).collect();
            let logp_old = batch.spread(&logps, &device)?;
            let advantages = advantages_per_token(&adv, batch.len, &device)?;
            let mask = batch.mask_tensor(&device)?;
            let model = self.params.model()?;
            let new = token_logprobs(&model, &batch, c.temperature)?;
            let logp_ref = match &self.reference {
                Some(r) => Some(
                    token_logprobs(&r.model()?, &batch, c.temperature)?
                        .logp
                        .detach(),
                ),
                None => None,
            };
            let out = policy_loss(
                &PolicyLossInputs {
                    logp_new: &new.logp,
                    logp_old: &logp_old,
                    advantages: &advantages,
                    mask: &mask,
                    logp_ref: logp_ref.as_ref(),
                },
                &loss_config,
            )?;
            let mut grads = Gradients::new();
            accumulate(&mut grads, &self.params, &out.loss.backward()?)?;
            let norm = grad_norm(&grads)?;
            let loss = f64::from(out.loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            if !norm.is_finite() || !loss.is_finite() {
                return Err(RlError::Input {
                    name: "update",
                    reason: format!(
                        "step {}: loss {loss} / gradient norm {norm} is not finite",
                        self.step + 1
                    ),
                });
            }
            self.optimizer
                .step(&self.params, &grads, lr, clip_scale(norm, c.grad_clip))?;
            let tokens = batch.response_tokens();
            stats.loss += loss;
            stats.grad_norm += norm;
            stats.clip_fraction += f64::from(out.stats.clip_fraction);
            stats.approx_kl += f64::from(out.stats.approx_kl);
            stats.mean_ratio += f64::from(out.stats.mean_ratio);
            stats.entropy += masked_mean(&new.entropy, &mask)?;
            stats.tokens += tokens;
            updates += 1;
        }
        let n = f64::from(updates);
        for v in [
            &mut stats.loss,
            &mut stats.grad_norm,
            &mut stats.clip_fraction,
            &mut stats.approx_kl,
            &mut stats.mean_ratio,
            &mut stats.entropy,
        ] {
            *v /= n;
        }
        Ok(stats)
    }

    /// Saves a resumable checkpoint to `out_dir/checkpoint.safetensors`.
    pub fn save_checkpoint(&self) -> Result<(), RlError> {
        std::fs::create_dir_all(&self.out_dir).map_err(|e| RlError::Io {
            path: self.out_dir.clone(),
            message: e.to_string(),
        })?;
        checkpoint::write(
            &self.out_dir.join("checkpoint.safetensors"),
            FORMAT,
            &self.params,
            &self.optimizer,
            vec![
                ("step".into(), self.step.to_string()),
                ("config".into(), to_json(&self.config)),
                (
                    "drawer".into(),
                    to_json(&(self.drawer.main().to_vec(), self.drawer.easy().to_vec())),
                ),
                ("informative_rate".into(), to_json(&self.informative_rate)),
            ],
        )?;
        Ok(())
    }

    /// Writes the current policy as an HF-format folder (the tokenizer comes from the start).
    pub fn export(&self, dir: &Path) -> Result<(), RlError> {
        Ok(crate::train::trainer::export(
            &self.params,
            &self.start_dir,
            dir,
        )?)
    }
}

fn masked_mean(values: &Tensor, mask: &Tensor) -> Result<f64, RlError> {
    let total = f64::from(mask.sum_all()?.to_scalar::<f32>()?);
    let sum = f64::from((values * mask)?.sum_all()?.to_scalar::<f32>()?);
    Ok(if total > 0.0 { sum / total } else { 0.0 })
}

fn adamw(c: &RlConfig) -> AdamWConfig {
    AdamWConfig {
        lr: c.lr,
        weight_decay: c.weight_decay,
        ..AdamWConfig::default()
    }
}
