//! A benchmark: problems, each with the exact user message sent to the model and what grades it.
//!
//! Why the prompt is fixed at load time: the same benchmark must send the same text to every model
//! and every generator (local or remote), so the template is part of the problem, not of the run.

use crucible_verify::Task;

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
    /// What is asked and how a completion is graded.
    pub task: Task,
}

impl Benchmark {
    /// A benchmark built by the caller, e.g. the worker feeding the training branch's synthetic
    /// generator (`crate::data::synthetic`) through the same harness as the public benchmarks.
    pub fn from_problems(name: impl Into<String>, problems: Vec<Problem>) -> Benchmark {
        Benchmark {
            name: name.into(),
            problems,
        }
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
        self.problems.iter().any(|p| p.task.needs_judge())
    }
}
