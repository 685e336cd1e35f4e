//! Crucible's verifiers (pure CPU, no candle): math answer equivalence, a sandboxed code judge with
//! MiMo's test-difficulty tiers, multiple-choice and short-text answers — behind one task type,
//! one [`Grader::grade`], and one [`VerifierPool`] that runs it for evals and RL rollouts alike.
//!
//! Why a crate of its own: an eval score and an RL reward must judge a completion identically,
//! and the judge runs untrusted programs, so it stays small, auditable and free of GPU code.

pub mod choice;
#[cfg(feature = "cli")]
pub mod cli;
pub mod code;
pub mod math;
pub mod pool;
pub mod task;
pub mod text;

pub use pool::{PoolError, TimedGrade, VerifierPool};
pub use task::{Grade, GradeError, Grader, Task};
