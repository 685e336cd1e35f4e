//! Crucible's own small MiMo (the phases are run by the CLI, which gives each its own tracked
//! run): a tokenizer trained on the synthetic corpus, pretraining from
//! scratch with the MTP loss (weight 0.3), then SFT on chat-formatted problems with the loss on
//! the responses (MTP weight 0.1), exported as an HF-format folder that `MimoModel::load` and
//! `crucible generate` read. Sized to finish in minutes on two CPU cores.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::TrainError;
use super::params::Parameters;
use crate::data::vocab::{train_synthetic_tokenizer, write_tokenizer_files};
use crucible_types::train::Schedule;
use crucible_types::train::{
    AdamWConfig, Architecture, DataSource, ModelInit, TrainConfig, TrainKind,
};

/// Settings of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSettings {
    pub steps: u64,
    pub lr: f64,
    pub seq_len: usize,
    pub micro_batch: usize,
    pub grad_accum: usize,
    pub schedule: Schedule,
}

/// The whole recipe; [`SmallRecipe::default`] is the shipped model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmallRecipe {
    /// Seeds the tokenizer corpus, the data streams and the weight initialisation.
    pub seed: u64,
    pub vocab_size: usize,
    /// Synthetic documents the tokenizer is trained on.
    pub tokenizer_documents: u64,
    pub architecture: Architecture,
    /// Hardest training problems: steps and digits are drawn from 1 up to these.
    pub max_steps: u8,
    pub max_digits: u8,
    pub pretrain: PhaseSettings,
    pub sft: PhaseSettings,
}

impl Default for SmallRecipe {
    fn default() -> Self {
        Self {
            seed: 20250601,
            vocab_size: 384,
            tokenizer_documents: 4000,
            architecture: Architecture {
                hidden_size: 128,
                intermediate_size: 384,
                num_hidden_layers: 4,
                num_attention_heads: 4,
                num_key_value_heads: 2,
                max_position_embeddings: 512,
                rope_theta: 10_000.0,
                num_nextn_predict_layers: 1,
            },
            max_steps: 4,
            max_digits: 3,
            pretrain: PhaseSettings {
                steps: 500,
                lr: 3e-3,
                seq_len: 256,
                micro_batch: 8,
                grad_accum: 1,
                schedule: Schedule::Wsd {
                    warmup: 30,
                    decay_fraction: 0.2,
                    min_lr_ratio: 0.05,
                },
            },
            sft: PhaseSettings {
                steps: 180,
                lr: 1e-3,
                seq_len: 256,
                micro_batch: 8,
                grad_accum: 1,
                schedule: Schedule::Cosine {
                    warmup: 10,
                    min_lr_ratio: 0.1,
                },
            },
        }
    }
}

impl SmallRecipe {
    fn phase(&self, kind: TrainKind, init: ModelInit, work: &Path) -> TrainConfig {
        let (settings, name, data_seed) = match kind {
            TrainKind::Pretrain => (&self.pretrain, "pretrain", self.seed),
            TrainKind::Sft => (&self.sft, "sft", self.seed.wrapping_add(1)),
        };
        TrainConfig {
            kind,
            init,
            data: DataSource::Synthetic {
                seed: data_seed,
                max_steps: self.max_steps,
                max_digits: self.max_digits,
            },
            out_dir: work.join(name),
            seq_len: settings.seq_len,
            micro_batch: settings.micro_batch,
            grad_accum: settings.grad_accum,
            steps: settings.steps,
            optimizer: AdamWConfig {
                lr: settings.lr,
                ..AdamWConfig::default()
            },
            schedule: settings.schedule,
            grad_clip: 1.0,
            mtp_weight: None,
            seed: self.seed,
            checkpoint_every: 100,
        }
    }

    /// The pretraining phase's config, working under `work`.
    pub fn pretrain_config(&self, work: &Path) -> TrainConfig {
        let init = ModelInit::Scratch {
            architecture: self.architecture.clone(),
            tokenizer_dir: work.join("tokenizer"),
        };
        self.phase(TrainKind::Pretrain, init, work)
    }

    /// The SFT phase's config: it starts from the pretrained model.
    pub fn sft_config(&self, work: &Path) -> TrainConfig {
        let init = ModelInit::From {
            dir: self.pretrain_config(work).final_dir(),
        };
        self.phase(TrainKind::Sft, init, work)
    }

    /// Trains and writes the tokenizer to `work/tokenizer` unless it is already there.
    pub fn prepare_tokenizer(&self, work: &Path) -> Result<(), TrainError> {
        let dir = work.join("tokenizer");
        if !dir.join("tokenizer.json").exists() {
            let tok =
                train_synthetic_tokenizer(self.seed, self.tokenizer_documents, self.vocab_size)?;
            write_tokenizer_files(&tok, &dir)?;
        }
        Ok(())
    }

    /// Copies the SFT phase's final model to `out`; returns its parameter count.
    pub fn export(&self, work: &Path, out: &Path) -> Result<usize, TrainError> {
        let from = self.sft_config(work).final_dir();
        let params = Parameters::load(&from, &candle_core::Device::Cpu)?.count();
        copy_model(&from, out)?;
        Ok(params)
    }
}

/// Copies the files of an exported model folder.
fn copy_model(from: &Path, to: &Path) -> Result<(), TrainError> {
    let io = |path: &Path, e: std::io::Error| TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(from.join(file), to.join(file)).map_err(|e| io(&from.join(file), e))?;
    }
    Ok(())
}
