//! What a training job is asked to do, as plain data: a `pretrain`/`sft` job carries it, the
//! worker's recipe builds it in code, and a checkpoint stores it to refuse a mismatched resume.
//! Typed here (like [`crate::RlConfig`]) so the server validates it at submission.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::validate::{Invalid, finite_in, fits_int64, in_range};

/// Pretraining (every token a target) or SFT (loss on response tokens only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TrainKind {
    Pretrain,
    Sft,
}

impl TrainKind {
    /// The job-kind spelling (`pretrain`, `sft`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrainKind::Pretrain => "pretrain",
            TrainKind::Sft => "sft",
        }
    }

    /// The report's MTP loss weight for this phase (0.3 early pretraining, 0.1 after).
    pub fn default_mtp_weight(self) -> f64 {
        match self {
            TrainKind::Pretrain => 0.3,
            TrainKind::Sft => 0.1,
        }
    }
}

/// Shape of a model trained from scratch (the rest of MiMo's config is fixed: SwiGLU, q/k/v
/// bias, untied head, RMSNorm eps 1e-5).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// A multiple of `num_attention_heads`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65536))]
    pub hidden_size: usize,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 262144))]
    pub intermediate_size: usize,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 256))]
    pub num_hidden_layers: usize,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 256))]
    pub num_attention_heads: usize,
    /// Divides `num_attention_heads`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 256))]
    pub num_key_value_heads: usize,
    /// At least the config's `seq_len`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_position_embeddings: usize,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1e12))]
    pub rope_theta: f64,
    /// MTP layers trained alongside (MiMo pretrains with one).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 8))]
    pub num_nextn_predict_layers: usize,
}

/// Where the weights come from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelInit {
    /// Random weights of this shape, with the tokenizer files found in `tokenizer_dir`.
    Scratch {
        architecture: Architecture,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        tokenizer_dir: PathBuf,
    },
    /// An HF-format MiMo folder (config, weights, tokenizer) to continue from.
    From {
        #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1))]
        dir: PathBuf,
    },
}

/// The training documents.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// The workers' synthetic problems of the training split.
    Synthetic {
        seed: u64,
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 6))]
        max_steps: u8,
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4))]
        max_digits: u8,
    },
}

/// AdamW hyper-parameters; the defaults are MiMo's pretraining values (β₂ 0.95, wd 0.1).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    pub lr: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 0.999999))]
    pub beta1: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 0.999999999))]
    pub beta2: f64,
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0))]
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not norms or biases).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10))]
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// One training run (a `pretrain` or `sft` job).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub kind: TrainKind,
    pub init: ModelInit,
    pub data: DataSource,
    /// Holds `checkpoint.safetensors` while running and the HF-format model in `final/` at the end.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1))]
    pub out_dir: PathBuf,
    /// Tokens per packed row.
    #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 1048576))]
    pub seq_len: usize,
    /// Rows per forward pass.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096))]
    pub micro_batch: usize,
    /// Forward passes per optimizer step.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096))]
    pub grad_accum: usize,
    /// Optimizer steps of the whole run.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000000))]
    pub steps: u64,
    #[serde(default)]
    pub optimizer: AdamWConfig,
    pub schedule: Schedule,
    /// Global gradient-norm clip (0 disables).
    #[serde(default = "default_grad_clip")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e6))]
    pub grad_clip: f64,
    /// Weight of the MTP loss; `None` takes [`TrainKind::default_mtp_weight`].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10))]
    pub mtp_weight: Option<f64>,
    /// Seed of the weight initialisation.
    #[serde(default)]
    pub seed: u64,
    /// Save a resumable checkpoint every this many steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
}

fn default_grad_clip() -> f64 {
    1.0
}

impl TrainConfig {
    /// The MTP loss weight in effect.
    pub fn mtp_weight(&self) -> f64 {
        self.mtp_weight
            .unwrap_or_else(|| self.kind.default_mtp_weight())
    }

    /// Path of the resumable checkpoint.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.out_dir.join("checkpoint.safetensors")
    }

    /// Folder of the exported HF-format model.
    pub fn final_dir(&self) -> PathBuf {
        self.out_dir.join("final")
    }
}

/// The learning rate as a function of the optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Warmup, then a half cosine from the peak down to `min_lr_ratio` × peak at the last step.
    Cosine {
        /// At most the config's `steps`.
        warmup: u64,
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
        min_lr_ratio: f64,
    },
    /// Warmup, a flat stretch at the peak, then a linear decay to `min_lr_ratio` × peak over the
    /// last `decay_fraction` of the run.
    Wsd {
        /// At most the config's `steps`.
        warmup: u64,
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
        decay_fraction: f64,
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
        min_lr_ratio: f64,
    },
    /// Warmup, then the peak until the end.
    Constant {
        /// At most the config's `steps`.
        warmup: u64,
    },
}

impl Schedule {
    /// Learning rate of update `step` (0-based) of a `total`-update run with peak rate `peak`.
    pub fn lr(&self, peak: f64, step: u64, total: u64) -> f64 {
        let warmup = match *self {
            Schedule::Cosine { warmup, .. }
            | Schedule::Wsd { warmup, .. }
            | Schedule::Constant { warmup } => warmup,
        };
        if step < warmup {
            return peak * (step + 1) as f64 / warmup as f64;
        }
        let last = total.saturating_sub(1).max(warmup);
        match *self {
            Schedule::Constant { .. } => peak,
            Schedule::Cosine { min_lr_ratio, .. } => {
                let span = (last - warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                let min = peak * min_lr_ratio;
                min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Wsd {
                decay_fraction,
                min_lr_ratio,
                ..
            } => {
                let decay_steps = ((total as f64) * decay_fraction).round() as u64;
                let decay_start = last.saturating_sub(decay_steps).max(warmup);
                if step <= decay_start {
                    return peak;
                }
                let progress =
                    ((step - decay_start) as f64 / (last - decay_start).max(1) as f64).min(1.0);
                peak * (1.0 - progress * (1.0 - min_lr_ratio))
            }
        }
    }
}

impl TrainConfig {
    /// The first setting that cannot train, named by its path; the server refuses such a job at
    /// submission and the worker before it loads anything.
    pub fn validate(&self) -> Result<(), Invalid> {
        in_range("steps", self.steps, 1..=10_000_000)?;
        fits_int64("seed", self.seed)?;
        fits_int64("checkpoint_every", self.checkpoint_every)?;
        in_range("seq_len", self.seq_len, 2..=1 << 20)?;
        in_range("micro_batch", self.micro_batch, 1..=4096)?;
        in_range("grad_accum", self.grad_accum, 1..=4096)?;
        if self.out_dir.as_os_str().is_empty() {
            return Err(Invalid::new("out_dir", "must name a folder"));
        }
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0 && o.lr <= 1.0) {
            return Err(Invalid::new(
                "optimizer.lr",
                format!("must be in (0, 1], got {}", o.lr),
            ));
        }
        finite_in("optimizer.beta1", o.beta1, 0.0..=0.999_999)?;
        finite_in("optimizer.beta2", o.beta2, 0.0..=0.999_999_999)?;
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(Invalid::new("optimizer.eps", "must be a positive number"));
        }
        finite_in("optimizer.weight_decay", o.weight_decay, 0.0..=10.0)?;
        finite_in("grad_clip", self.grad_clip, 0.0..=1e6)?;
        if let Some(w) = self.mtp_weight {
            finite_in("mtp_weight", w, 0.0..=10.0)?;
        }
        self.schedule
            .validate(self.steps)
            .map_err(|e| e.under("schedule"))?;
        match &self.init {
            ModelInit::Scratch { architecture, .. } => architecture
                .validate(self.seq_len)
                .map_err(|e| e.under("init.scratch.architecture"))?,
            ModelInit::From { dir } if dir.as_os_str().is_empty() => {
                return Err(Invalid::new("init.from.dir", "must name a model folder"));
            }
            ModelInit::From { .. } => {}
        }
        let DataSource::Synthetic {
            seed,
            max_steps,
            max_digits,
        } = self.data;
        fits_int64("data.synthetic.seed", seed)?;
        in_range("data.synthetic.max_steps", max_steps, 1..=6)?;
        in_range("data.synthetic.max_digits", max_digits, 1..=4)?;
        Ok(())
    }
}

impl Architecture {
    /// Shapes a decoder can be built with, and a context that holds a training row.
    fn validate(&self, seq_len: usize) -> Result<(), Invalid> {
        in_range("hidden_size", self.hidden_size, 1..=65_536)?;
        in_range("intermediate_size", self.intermediate_size, 1..=262_144)?;
        in_range("num_hidden_layers", self.num_hidden_layers, 1..=256)?;
        in_range("num_attention_heads", self.num_attention_heads, 1..=256)?;
        in_range("num_key_value_heads", self.num_key_value_heads, 1..=256)?;
        in_range(
            "num_nextn_predict_layers",
            self.num_nextn_predict_layers,
            0..=8,
        )?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Invalid::new(
                "hidden_size",
                "must be a multiple of num_attention_heads",
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(Invalid::new(
                "num_key_value_heads",
                "must divide num_attention_heads",
            ));
        }
        if self.max_position_embeddings < seq_len {
            return Err(Invalid::new(
                "max_position_embeddings",
                format!("must hold a training row of seq_len {seq_len}"),
            ));
        }
        finite_in("rope_theta", self.rope_theta, 1.0..=1e12)
    }
}

impl Schedule {
    /// Warmup within the run, ratios in [0, 1].
    fn validate(&self, steps: u64) -> Result<(), Invalid> {
        let (warmup, ratio, fraction) = match *self {
            Schedule::Cosine {
                warmup,
                min_lr_ratio,
            } => (warmup, min_lr_ratio, 0.0),
            Schedule::Wsd {
                warmup,
                decay_fraction,
                min_lr_ratio,
            } => (warmup, min_lr_ratio, decay_fraction),
            Schedule::Constant { warmup } => (warmup, 0.0, 0.0),
        };
        in_range("warmup", warmup, 0..=steps)?;
        finite_in("min_lr_ratio", ratio, 0.0..=1.0)?;
        finite_in("decay_fraction", fraction, 0.0..=1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TrainConfig {
        serde_json::from_value(serde_json::json!({
            "kind": "sft",
            "init": {"from": {"dir": "models/crucible-mimo-small"}},
            "data": {"synthetic": {"seed": 1, "max_steps": 2, "max_digits": 2}},
            "out_dir": "sft",
            "seq_len": 128,
            "micro_batch": 4,
            "grad_accum": 1,
            "steps": 10,
            "schedule": {"kind": "cosine", "warmup": 2, "min_lr_ratio": 0.1}
        }))
        .unwrap()
    }

    #[test]
    fn a_training_config_is_refused_with_the_field_at_fault() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.steps = 0;
        assert_eq!(c.validate().unwrap_err().field, "steps");
        let mut c = config();
        c.optimizer.lr = f64::NAN;
        assert_eq!(c.validate().unwrap_err().field, "optimizer.lr");
        let mut c = config();
        c.schedule = Schedule::Constant { warmup: 11 };
        assert_eq!(c.validate().unwrap_err().field, "schedule.warmup");
        let mut c = config();
        c.init = ModelInit::Scratch {
            architecture: Architecture {
                hidden_size: 30,
                intermediate_size: 64,
                num_hidden_layers: 1,
                num_attention_heads: 4,
                num_key_value_heads: 2,
                max_position_embeddings: 128,
                rope_theta: 10_000.0,
                num_nextn_predict_layers: 1,
            },
            tokenizer_dir: "tok".into(),
        };
        assert_eq!(
            c.validate().unwrap_err().field,
            "init.scratch.architecture.hidden_size"
        );
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_is_linear_and_cosine_ends_at_the_floor() {
        let s = Schedule::Cosine {
            warmup: 4,
            min_lr_ratio: 0.1,
        };
        assert!(close(s.lr(1.0, 0, 20), 0.25));
        assert!(close(s.lr(1.0, 3, 20), 1.0));
        assert!(close(s.lr(1.0, 4, 20), 1.0));
        assert!(close(s.lr(1.0, 19, 20), 0.1));
        // Halfway through the decay the cosine is at the midpoint.
        let mid = s.lr(1.0, 4 + 15 / 2, 20);
        assert!(mid < 0.6 && mid > 0.5, "{mid}");
        let mut prev = f64::INFINITY;
        for step in 4..20 {
            let lr = s.lr(1.0, step, 20);
            assert!(lr <= prev);
            prev = lr;
        }
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let s = Schedule::Wsd {
            warmup: 2,
            decay_fraction: 0.4,
            min_lr_ratio: 0.0,
        };
        // 11 steps: warmup 0–1, flat through step 6, linear decay over steps 7–10.
        assert!(close(s.lr(2.0, 0, 11), 1.0));
        assert!(close(s.lr(2.0, 6, 11), 2.0));
        assert!(close(s.lr(2.0, 8, 11), 1.0));
        assert!(close(s.lr(2.0, 10, 11), 0.0));
        let c = Schedule::Constant { warmup: 0 };
        assert!(close(c.lr(3e-5, 0, 10), 3e-5) && close(c.lr(3e-5, 9, 10), 3e-5));
    }
}
