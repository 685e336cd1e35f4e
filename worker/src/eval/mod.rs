//! The evaluation harness: benchmarks (loaders + prompt templates), generators (the local MiMo
//! engine or an OpenAI-compatible endpoint), grading through [`crucible_verify`], and scores
//! (pass@1 = avg@n, unbiased pass@k, maj@k, each with a bootstrap CI over problems).
//!
//! Why one library: the worker, the CLI and tests all run the same `run_eval`, so a score means
//! the same thing wherever it was computed. See `docs/eval.md`.

pub mod benchmark;
pub mod compare;
pub mod generator;
mod loaders;
pub mod local;
pub mod metrics;
pub mod openai;
mod prompts;
mod rows;
pub mod run;

use std::path::PathBuf;

pub use benchmark::{Benchmark, Problem};
pub use generator::{Completion, Generator};
pub use loaders::{BENCHMARKS, load_benchmark};
pub use local::{LocalGenerator, prompt_ids};
pub use openai::{OpenAiConfig, OpenAiGenerator};
pub use run::{EvalReport, run_eval};

/// Why an eval could not run; each variant names the file, row, field or request at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A benchmark name that no loader knows.
    #[error("unknown benchmark {name:?}; known: {}", BENCHMARKS.join(", "))]
    UnknownBenchmark { name: String },
    /// A file-backed benchmark was asked for without a data folder.
    #[error("benchmark {benchmark} needs the data folder: set CRUCIBLE_DATA_DIR")]
    NoDataDir { benchmark: String },
    /// A data file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A row of a data file (or of imported dataset rows) is malformed.
    #[error("{source_name} row {row}: {message}")]
    BadRow {
        source_name: String,
        row: usize,
        message: String,
    },
    /// The GPQA zip could not be opened or decrypted.
    #[error("{}: {message}", path.display())]
    Archive { path: PathBuf, message: String },
    /// Arguments of `run_eval` that make no sense (n = 0, k > n …).
    #[error("{0}")]
    InvalidArgs(String),
    /// The local engine failed.
    #[error(transparent)]
    Generate(#[from] crucible_gpu::engine::GenerateError),
    /// The chat template or tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] crucible_gpu::tokenizer::TokenizerError),
    /// The OpenAI-compatible endpoint failed after all retries.
    #[error("{url}: {message}")]
    Endpoint { url: String, message: String },
    /// The code judge could not run (no Python, sandbox failure) — not a wrong program.
    #[error(transparent)]
    Judge(#[from] crucible_verify::code::JudgeError),
    /// A completion could not be graded (the grader's fault, not the completion's).
    #[error(transparent)]
    Grade(#[from] crucible_verify::GradeError),
    /// The grading pool stopped.
    #[error(transparent)]
    Pool(#[from] crucible_verify::PoolError),
    /// `should_stop` asked the run to end; samples of finished chunks were already handed over.
    #[error("eval stopped after {done} of {total} problems")]
    Stopped { done: u64, total: u64 },
    /// The caller's `on_samples` refused a chunk (e.g. the upload failed for good).
    #[error("sample sink: {0}")]
    Sink(String),
}
