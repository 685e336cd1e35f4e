//! The pure parts of GRPO with MiMo's recipe: the policy objective, group advantages, dynamic sampling
//! and the easy-problem pool. The rollout engine and the `rl` job kind build on these (see docs/rl.md).

pub mod advantage;
pub mod objective;
pub mod sampling;

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
    Config { name: &'static str, reason: String },
    #[error("invalid {name}: {reason}")]
    Input { name: &'static str, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
