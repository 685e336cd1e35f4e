//! GRPO with MiMo's recipe (see docs/rl.md): the policy objective, group advantages, dynamic
//! sampling and the easy-problem pool (pure, tested parts), the rollout engine with rewards scored
//! in the verifier pool while generation runs, the trainer that ties them to the candle training
//! stack, and the run loop the `rl` job and `crucible train rl` call.

pub mod advantage;
pub mod dynamic_sampling;
pub mod objective;
pub mod policy;
pub mod problems;
pub mod rollout;
pub mod run;
pub mod seamless;
pub mod step_metrics;
pub mod trainer;

pub use run::{RlHooks, RlOutcome, run};
pub use trainer::{RlTrainer, StepReport};

use std::path::PathBuf;

/// Why an RL computation refused its input; each variant names the offending argument so a bad job
/// config or a malformed rollout batch is diagnosable without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum RlError {
    #[error("{name} has shape {found:?}, expected {expected:?}")]
    Shape {
        name: &'static str,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("invalid {name}: {reason}")]
    Config { name: String, reason: String },
    #[error("invalid {name}: {reason}")]
    Input { name: &'static str, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] crucible_gpu::model::ModelError),
    #[error(transparent)]
    Generate(#[from] crucible_gpu::engine::GenerateError),
    #[error(transparent)]
    Tokenizer(#[from] crucible_gpu::tokenizer::TokenizerError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Pool(#[from] crucible_verify::pool::PoolError),
    #[error(transparent)]
    Judge(#[from] crucible_verify::code::JudgeError),
    /// A file could not be written or read.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}
