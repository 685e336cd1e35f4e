//! Training MiMo models in candle: pretraining and SFT with the MTP auxiliary loss, AdamW with a
//! warmup + cosine/WSD schedule, gradient clipping and accumulation, exact-resume checkpoints.
//!
//! The worker's `pretrain` and `sft` jobs call [`run`] with a [`TrainConfig`] taken from the job
//! spec; the CLI's `crucible train recipe small` chains both phases ([`recipe`]).

pub mod checkpoint;
pub mod heldout;
pub mod metrics;
pub mod objective;
pub mod optimizer;
pub mod params;
pub mod recipe;

pub mod trainer;

use std::path::PathBuf;

pub use crucible_types::train::{
    AdamWConfig, Architecture, DataSource, ModelInit, Schedule, TrainConfig, TrainKind,
};
pub use metrics::{MemorySink, MetricsSink, NoopSink, StdoutSink};
pub use trainer::{StepReport, TrainOutcome, Trainer, run};

/// Why training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] crucible_gpu::model::ModelError),
    #[error(transparent)]
    Tokenizer(#[from] crucible_gpu::tokenizer::TokenizerError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Generate(#[from] crucible_gpu::engine::GenerateError),
    /// A file could not be written or read.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// A checkpoint is unreadable or belongs to another run.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// The configuration cannot be trained (zero batch, NaN loss …).
    #[error("{0}")]
    Invalid(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
