//! A benchmark: problems, each with the exact user message sent to the model and what grades it.
//!
//! Why the prompt is fixed at load time: the same benchmark must send the same text to every model
//! and every generator (local or remote), so the template is part of the problem, not of the run.

use crucible_types::dataset::DatasetKind;
use serde_json::Value;

use super::EvalError;
use super::rows;
use crate::reward::code::CodeProblem;

/// A named list of problems, ready for `run_eval`.
#[derive(Clone, Debug, PartialEq)]
pub struct Benchmark {
    pub name: String,
    pub problems: Vec<Problem>,
}

/// One problem of a benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The benchmark's own id (`gsm8k-test-0`, `HumanEval/0` …), kept in every sample.
    pub id: String,
    /// The user message, template applied (the generator adds the chat template).
    pub prompt: String,
    pub kind: ProblemKind,
}

/// How a completion is graded.
#[derive(Clone, Debug, PartialEq)]
pub enum ProblemKind {
    /// Free-form math answer, compared by [`crate::reward::math::verify`].
    Math { gold: String },
    /// A lettered option, extracted by [`crate::reward::choice::extract_choice`].
    Choice { labels: Vec<char>, answer: char },
    /// A program judged in the sandbox on the problem's tests.
    Code { problem: Box<CodeProblem> },
    /// A short answer compared as text, case- and space-insensitively (BBH's free-form tasks:
    /// `True`, `valid`, `] ) }`, a sorted word list), where math normalisation would mangle it.
    Exact { gold: String },
}

impl Benchmark {
    /// A benchmark built by the caller, e.g. the worker feeding the training branch's synthetic
    /// generator (`gpu::data::synthetic`) through the same harness as the public benchmarks.
    pub fn from_problems(name: impl Into<String>, problems: Vec<Problem>) -> Benchmark {
        Benchmark {
            name: name.into(),
            problems,
        }
    }

    /// A benchmark from imported dataset rows (`crucible dataset import`), in the JSONL shapes the
    /// server accepts: math `problem`/`answer`; code `prompt|problem|question|text` +
    /// `tests|test|test_list`; choice `question`/`choices`/`answer`/optional `labels`.
    pub fn from_rows(
        name: &str,
        kind: DatasetKind,
        rows: &[Value],
    ) -> Result<Benchmark, EvalError> {
        let problems = rows
            .iter()
            .enumerate()
            .map(|(i, row)| rows::problem_from_row(name, kind, i, row))
            .collect::<Result<_, _>>()?;
        Ok(Benchmark::from_problems(name, problems))
    }

    /// The first `limit` problems (all when `None`).
    pub fn truncated(mut self, limit: Option<usize>) -> Benchmark {
        if let Some(limit) = limit {
            self.problems.truncate(limit);
        }
        self
    }

    /// True when some problem is graded by the code judge (which needs Python in a sandbox).
    pub fn has_code(&self) -> bool {
        self.problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::Code { .. }))
    }
}
