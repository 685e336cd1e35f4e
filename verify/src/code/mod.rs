//! Code judging: problems and tests in the public formats, a sandbox for untrusted programs,
//! per-test verdicts, and the test-difficulty-driven rewards built on them.

pub mod formats;
pub mod isolation;
pub mod judge;
pub mod sandbox;
pub mod tiers;

pub use formats::{CodeProblem, FormatError, TestCase};
pub use isolation::{ALLOW_MISSING_LAYERS_ENV, Isolation, Layer};
pub use judge::{Judge, JudgeError, JudgeReport, Language, Solution, TestResult, Verdict};
pub use sandbox::{Limits, Sandbox, SandboxConfig, SandboxError, WorkDirAccess};
pub use tiers::{CodeRewards, TierLayout, all_or_nothing, pass_fraction, pass_rates};
