//! The hand-labelled hard pairs (`verify/tests/data/math_hard_pairs.jsonl`): a gold answer, a
//! completion tail, and the verdict a careful human grader gives, with a category and a reason.
//!
//! Why in the library: the accuracy test and `crucible bench verify` must score the same pairs
//! the same way, so both read them from here.

use serde::{Deserialize, Serialize};

/// The corpus, compiled in.
pub const HARD_PAIRS_JSONL: &str = include_str!("../../tests/data/math_hard_pairs.jsonl");

/// One hand-labelled pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledPair {
    /// The kind of equivalence (or near miss) the pair tests: `fraction`, `interval` …
    pub category: String,
    /// The reference answer, as a dataset writes it.
    pub gold: String,
    /// A realistic completion tail whose final answer is graded.
    pub completion: String,
    /// The careful grader's verdict.
    pub correct: bool,
    /// Why, in one line.
    pub reason: String,
}

/// A line of a corpus that is not a [`LabelledPair`].
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct CorpusError {
    /// 1-based line number.
    pub line: usize,
    /// What serde could not read.
    #[source]
    pub source: serde_json::Error,
}

/// Reads a JSONL corpus (blank lines skipped).
pub fn parse_pairs(jsonl: &str) -> Result<Vec<LabelledPair>, CorpusError> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| CorpusError {
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// The compiled-in hard pairs.
pub fn hard_pairs() -> Result<Vec<LabelledPair>, CorpusError> {
    parse_pairs(HARD_PAIRS_JSONL)
}
