//! The `rl` job's configuration: GRPO with MiMo's recipe (clip-higher, token-level loss, dynamic
//! sampling, easy-data re-sampling), as plain data the server validates, the worker runs and the
//! dashboard shows.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sampling::{MAX_NEW_TOKENS, MAX_TEMPERATURE};
use crate::validate::{Invalid, finite_in, fits_int64, in_range};

/// Where RL problems come from. Rewards come from the verifiers of the problems' kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RlData {
    /// `problems` training-split problems of the synthetic generator, spread evenly over
    /// `levels` (math, graded by answer equivalence); never overlaps the held-out benchmark.
    Synthetic {
        seed: u64,
        #[cfg_attr(feature = "openapi", schema(min_items = 1))]
        levels: Vec<RlLevel>,
        #[cfg_attr(feature = "openapi", schema(minimum = 1))]
        problems: usize,
    },
    /// An imported dataset (`math`, `code` or `choice` rows) by id.
    Dataset { id: Uuid },
}

/// One difficulty of the synthetic generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RlLevel {
    /// Chained operations (1–6).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 6))]
    pub steps: u8,
    /// Digits per operand (1–4).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4))]
    pub digits: u8,
}

/// Which code reward a problem with difficulty tiers pays (MiMo §3.2); untiered problems pay the
/// fraction of tests passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CodeReward {
    /// A tier pays only when it and every easier tier fully pass.
    #[default]
    Strict,
    /// Every passing test earns its tier's share.
    Soft,
}

/// How per-token losses are averaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RlLossNormalisation {
    /// Over all response tokens of the mini-batch (MiMo, DAPO).
    #[default]
    Token,
    /// Per response, then over responses (original GRPO).
    Sequence,
}

/// How group advantages are scaled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RlAdvantage {
    /// (r − mean) / std of the group (GRPO, MiMo).
    #[default]
    GroupStd,
    /// r − mean (Dr. GRPO).
    NoStd,
}

/// How a step's rollouts are decoded (docs/rl.md, "How a step works").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RlRollout {
    /// MiMo's seamless rollout: a finished row takes the next sample of the next group at once,
    /// across dynamic-sampling rounds, until the FIFO prefix of groups fills the batch.
    #[default]
    Seamless,
    /// Naive dynamic sampling: each round decodes as one lockstep batch, and the next round
    /// starts when it ends (kept to measure the seamless engine against).
    Lockstep,
}

/// The periodic held-out eval of an RL run, through the eval harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RlEval {
    /// A built-in benchmark name (`synthetic`, `gsm8k`, …).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::benchmarks::builtin_benchmark_schema))]
    pub benchmark: String,
    /// Only the first `limit` problems.
    pub limit: Option<u32>,
    /// Samples per problem (pass@1 = avg@n).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024))]
    pub n_samples: u32,
    /// Sampling temperature (0: greedy).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 5))]
    pub temperature: f32,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 131072))]
    pub max_new_tokens: u32,
}

impl Default for RlEval {
    fn default() -> Self {
        Self {
            benchmark: "synthetic".into(),
            limit: None,
            n_samples: 4,
            temperature: 0.6,
            max_new_tokens: 160,
        }
    }
}

/// One RL run. Defaults follow MiMo §3.3 where the report gives a value (ε_low 0.2 / ε_high 0.28
/// are DAPO's, α = 0.1, rollout temperature 1, no KL); batch sizes and the learning rate are
/// scaled to a CPU-sized model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RlConfig {
    /// Where problems come from: at least one source.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, required = true))]
    pub data: Vec<RlData>,
    /// Optimizer steps (one rollout batch each).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub steps: u64,
    /// Rollouts per problem (G).
    #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 1024))]
    pub group_size: usize,
    /// Problems (groups) per rollout batch.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096))]
    pub groups_per_batch: usize,
    /// Gradient updates per rollout batch; the ratio is taken against the rollout's log-probs.
    /// At most `groups_per_batch × group_size`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub mini_batches: usize,
    /// Prompts longer than this (in tokens) are refused when the problems are loaded.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_prompt_tokens: usize,
    /// Response budget; a longer response is cut and counts as truncated.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 131072))]
    pub max_new_tokens: u32,
    /// Rollout temperature (top-p is 1, as in MiMo).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 5))]
    pub temperature: f32,
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0))]
    pub lr: f64,
    /// Linear warmup steps of the learning rate.
    pub warmup_steps: u64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub grad_clip: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, exclusive_maximum = 1))]
    pub eps_low: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub eps_high: f64,
    /// k3 KL penalty against the starting policy; off (MiMo) when absent.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub kl_coef: Option<f64>,
    pub loss: RlLossNormalisation,
    pub advantage: RlAdvantage,
    /// Drop groups whose rewards are all equal and refill (MiMo's dynamic sampling).
    pub dynamic_sampling: bool,
    /// Rollout rounds per step before training on a short batch (logged, never fatal); the
    /// seamless engine launches at most as many groups as that many rounds could.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_rounds: usize,
    pub rollout: RlRollout,
    /// Rows the seamless engine decodes at once; one batch's rollouts
    /// (`groups_per_batch × group_size`) when absent.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub rollout_rows: Option<usize>,
    /// Probability of drawing from the easy pool (problems every rollout solved).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub easy_alpha: f64,
    pub code_reward: CodeReward,
    /// Threads of the verifier pool that scores rollouts while generation runs.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 256))]
    pub reward_workers: usize,
    pub seed: u64,
    /// Save a resumable checkpoint and register it as a model every N steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Evaluate every N steps, before the first and after the last (0: only before and after).
    pub eval_every: u64,
    /// The periodic eval; none when absent.
    pub eval: Option<RlEval>,
    /// Upload every rollout of every step to the run's completions.
    pub store_rollouts: bool,
}

impl Default for RlConfig {
    fn default() -> Self {
        Self {
            data: Vec::new(),
            steps: 100,
            group_size: 8,
            groups_per_batch: 16,
            mini_batches: 2,
            max_prompt_tokens: 256,
            max_new_tokens: 128,
            temperature: 1.0,
            lr: 1e-4,
            warmup_steps: 0,
            weight_decay: 0.0,
            grad_clip: 1.0,
            eps_low: 0.2,
            eps_high: 0.28,
            kl_coef: None,
            loss: RlLossNormalisation::Token,
            advantage: RlAdvantage::GroupStd,
            dynamic_sampling: true,
            max_rounds: 4,
            rollout: RlRollout::Seamless,
            rollout_rows: None,
            easy_alpha: 0.1,
            code_reward: CodeReward::Strict,
            reward_workers: 2,
            seed: 0,
            checkpoint_every: 0,
            eval_every: 0,
            eval: Some(RlEval::default()),
            store_rollouts: true,
        }
    }
}

impl RlConfig {
    /// The first setting that cannot run, as `(field, reason)`; the server refuses such a job at
    /// submission and the worker before it loads anything.
    pub fn validate(&self) -> Result<(), Invalid> {
        let positive = [
            ("steps", self.steps as usize),
            ("group_size", self.group_size),
            ("groups_per_batch", self.groups_per_batch),
            ("mini_batches", self.mini_batches),
            ("max_prompt_tokens", self.max_prompt_tokens),
            ("max_new_tokens", self.max_new_tokens as usize),
            ("max_rounds", self.max_rounds),
            ("reward_workers", self.reward_workers),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Invalid::new(*name, "must be at least 1".to_string()));
        }
        if self.rollout_rows == Some(0) {
            return Err(Invalid::new(
                "rollout_rows",
                "must be at least 1".to_string(),
            ));
        }
        if self.group_size < 2 {
            return Err(Invalid::new(
                "group_size",
                "GRPO needs at least 2 rollouts per problem".to_string(),
            ));
        }
        if self.mini_batches > self.groups_per_batch * self.group_size {
            return Err(Invalid::new(
                "mini_batches",
                "cannot exceed the rollouts per batch (groups_per_batch × group_size)".to_string(),
            ));
        }
        if self.data.is_empty() {
            return Err(Invalid::new(
                "data",
                "name at least one problem source".to_string(),
            ));
        }
        for (name, value) in [
            ("steps", self.steps),
            ("warmup_steps", self.warmup_steps),
            ("seed", self.seed),
            ("checkpoint_every", self.checkpoint_every),
            ("eval_every", self.eval_every),
        ] {
            fits_int64(name, value)?;
        }
        for d in &self.data {
            if let RlData::Synthetic {
                seed,
                levels,
                problems,
            } = d
            {
                fits_int64("data", *seed)?;
                if levels.is_empty() || *problems == 0 {
                    return Err(Invalid::new(
                        "data",
                        "a synthetic source needs levels and problems > 0",
                    ));
                }
                if levels
                    .iter()
                    .any(|l| !(1..=6).contains(&l.steps) || !(1..=4).contains(&l.digits))
                {
                    return Err(Invalid::new(
                        "data",
                        "levels need steps in 1–6 and digits in 1–4".to_string(),
                    ));
                }
            }
        }
        let finite_non_negative = [
            ("lr", self.lr),
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
            ("eps_low", self.eps_low),
            ("eps_high", self.eps_high),
            ("kl_coef", self.kl_coef.unwrap_or(0.0)),
        ];
        if let Some((name, v)) = finite_non_negative
            .iter()
            .find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            return Err(Invalid::new(
                *name,
                format!("must be a finite number ≥ 0, got {v}"),
            ));
        }
        if self.lr == 0.0 {
            return Err(Invalid::new("lr", "must be positive".to_string()));
        }
        if self.eps_low >= 1.0 {
            return Err(Invalid::new("eps_low", "must be below 1".to_string()));
        }
        if !(0.0..=1.0).contains(&self.easy_alpha) {
            return Err(Invalid::new(
                "easy_alpha",
                "must be a probability in [0, 1]".to_string(),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Invalid::new(
                "temperature",
                "must be positive: the ratio needs the sampling policy's log-probabilities"
                    .to_string(),
            ));
        }
        if let Some(e) = &self.eval
            && (e.n_samples == 0 || e.max_new_tokens == 0 || e.benchmark.trim().is_empty())
        {
            return Err(Invalid::new(
                "eval",
                "needs a benchmark, n_samples ≥ 1 and max_new_tokens ≥ 1".to_string(),
            ));
        }
        in_range("group_size", self.group_size, 2..=1024)?;
        in_range("groups_per_batch", self.groups_per_batch, 1..=4096)?;
        in_range("max_new_tokens", self.max_new_tokens, 1..=MAX_NEW_TOKENS)?;
        in_range("reward_workers", self.reward_workers, 1..=256)?;
        if self.temperature > MAX_TEMPERATURE {
            return Err(Invalid::new(
                "temperature",
                format!("must be at most {MAX_TEMPERATURE}"),
            ));
        }
        if let Some(e) = &self.eval {
            if !crate::benchmarks::BENCHMARKS.contains(&e.benchmark.as_str()) {
                return Err(Invalid::new(
                    "eval.benchmark",
                    format!(
                        "unknown benchmark {:?}; known: {}",
                        e.benchmark,
                        crate::benchmarks::BENCHMARKS.join(", ")
                    ),
                ));
            }
            in_range(
                "eval.n_samples",
                e.n_samples,
                1..=crate::presets::MAX_SAMPLES,
            )?;
            in_range("eval.max_new_tokens", e.max_new_tokens, 1..=MAX_NEW_TOKENS)?;
            finite_in(
                "eval.temperature",
                f64::from(e.temperature),
                0.0..=f64::from(MAX_TEMPERATURE),
            )?;
        }
        Ok(())
    }

    /// The imported datasets the run trains on, with the field that names each.
    pub fn dataset_ids(&self) -> Vec<(String, Uuid)> {
        self.data
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                RlData::Dataset { id } => Some((format!("config.data[{i}].id"), *id)),
                RlData::Synthetic { .. } => None,
            })
            .collect()
    }
}

/// An `rl` job: start from a registered model, train with `config`, register checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RlSpec {
    /// The starting policy (a local HF folder or checkpoint model).
    pub model_id: Uuid,
    pub config: RlConfig,
    /// Checkpoints are registered as `<model_name>-step<N>` (default `rl-<job id prefix>`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::optional_name_schema))]
    pub model_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> RlConfig {
        RlConfig {
            data: vec![RlData::Synthetic {
                seed: 1,
                levels: vec![RlLevel {
                    steps: 1,
                    digits: 1,
                }],
                problems: 10,
            }],
            ..RlConfig::default()
        }
    }

    #[test]
    fn defaults_are_mimo_and_validate() {
        let c = valid();
        assert_eq!((c.eps_low, c.eps_high, c.easy_alpha), (0.2, 0.28, 0.1));
        assert!(c.kl_coef.is_none() && c.dynamic_sampling);
        assert_eq!(c.rollout, RlRollout::Seamless);
        assert_eq!(c.validate(), Ok(()));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(serde_json::from_value::<RlConfig>(json).unwrap(), c);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |c: RlConfig| c.validate().unwrap_err().field;
        assert_eq!(field(RlConfig::default()), "data");
        assert_eq!(
            field(RlConfig {
                rollout_rows: Some(0),
                ..valid()
            }),
            "rollout_rows"
        );
        assert_eq!(
            field(RlConfig {
                group_size: 1,
                ..valid()
            }),
            "group_size"
        );
        assert_eq!(
            field(RlConfig {
                temperature: 0.0,
                ..valid()
            }),
            "temperature"
        );
        assert_eq!(
            field(RlConfig {
                easy_alpha: 1.5,
                ..valid()
            }),
            "easy_alpha"
        );
        assert_eq!(
            field(RlConfig {
                mini_batches: 1000,
                ..valid()
            }),
            "mini_batches"
        );
        assert!(serde_json::from_str::<RlConfig>(r#"{"group_sise": 4}"#).is_err());
    }
}
