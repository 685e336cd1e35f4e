//! What a training job is asked to do, as plain data: the worker receives it as JSON in a job
//! spec, the recipe builds it in code, and a checkpoint stores it to refuse a mismatched resume.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use crate::data::stream::DocumentFormat;

/// Pretraining (every token a target) or SFT (loss on response tokens only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    /// How this phase renders its documents.
    pub fn document_format(self) -> DocumentFormat {
        match self {
            TrainKind::Pretrain => DocumentFormat::Pretrain,
            TrainKind::Sft => DocumentFormat::Sft,
        }
    }
}

/// Shape of a model trained from scratch (the rest of MiMo's config is fixed: SwiGLU, q/k/v
/// bias, untied head, RMSNorm eps 1e-5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    /// MTP layers trained alongside (MiMo pretrains with one).
    pub num_nextn_predict_layers: usize,
}

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelInit {
    /// Random weights of this shape, with the tokenizer files found in `tokenizer_dir`.
    Scratch {
        architecture: Architecture,
        tokenizer_dir: PathBuf,
    },
    /// An HF-format MiMo folder (config, weights, tokenizer) to continue from.
    From { dir: PathBuf },
}

/// The training documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// [`crate::data::synthetic`] problems of the training split.
    Synthetic {
        seed: u64,
        max_steps: u8,
        max_digits: u8,
    },
}

/// AdamW hyper-parameters; the defaults are MiMo's pretraining values (β₂ 0.95, wd 0.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not norms or biases).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub kind: TrainKind,
    pub init: ModelInit,
    pub data: DataSource,
    /// Holds `checkpoint.safetensors` while running and the HF-format model in `final/` at the end.
    pub out_dir: PathBuf,
    /// Tokens per packed row.
    pub seq_len: usize,
    /// Rows per forward pass.
    pub micro_batch: usize,
    /// Forward passes per optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps of the whole run.
    pub steps: u64,
    #[serde(default)]
    pub optimizer: AdamWConfig,
    pub schedule: Schedule,
    /// Global gradient-norm clip (0 disables).
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Weight of the MTP loss; `None` takes [`TrainKind::default_mtp_weight`].
    #[serde(default)]
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
