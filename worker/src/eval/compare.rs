//! Paired comparison of two evals of the same problems: is model B really better than model A?
//!
//! Why paired: two models share the benchmark's easy and hard problems, so their separate
//! intervals overlap long after the difference is clear. Resampling the per-problem differences
//! (the same problems for both) gives the interval of the difference itself. Benchmarks made of
//! subsets (the synthetic levels, BBH tasks) are also compared per subset, because a gain on one
//! level is diluted in the overall mean.

use crucible_types::eval::EvalScore;

use super::metrics::score;

/// One problem's result in an eval: how many of its samples were correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemResult {
    /// The benchmark's problem id (pairs the two evals).
    pub id: String,
    pub correct: u32,
    pub samples: u32,
}

impl ProblemResult {
    fn pass_rate(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            f64::from(self.correct) / f64::from(self.samples)
        }
    }
}

/// pass@1 (avg@n) of A and B on a set of problems, and the paired difference B − A.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    /// `all`, or the subset's id prefix (e.g. `synthetic-s1d1`).
    pub subset: String,
    pub a: EvalScore,
    pub b: EvalScore,
    pub difference: EvalScore,
}

/// Why two evals cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompareError {
    #[error("the evals cover different problems: {only_a} only in A, {only_b} only in B")]
    DifferentProblems { only_a: usize, only_b: usize },
    #[error("problem {id} appears twice in one eval")]
    DuplicateProblem { id: String },
    #[error("no problems to compare")]
    Empty,
}

/// The subset a problem id belongs to: the id without its trailing `-<number>`; `None` for ids
/// without one (`HumanEval/3`), which are not broken down.
fn subset_of(id: &str) -> Option<&str> {
    match id.rsplit_once('-') {
        Some((prefix, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Some(prefix),
        _ => None,
    }
}

/// Compares `a` and `b` problem by problem: the whole benchmark first, then every subset when
/// there are several (in order of first appearance in `a`).
pub fn compare(
    a: &[ProblemResult],
    b: &[ProblemResult],
) -> Result<Vec<ComparisonRow>, CompareError> {
    if a.is_empty() {
        return Err(CompareError::Empty);
    }
    let mut by_id = std::collections::HashMap::with_capacity(b.len());
    for p in b {
        if by_id.insert(p.id.as_str(), p).is_some() {
            return Err(CompareError::DuplicateProblem { id: p.id.clone() });
        }
    }
    let mut pairs = Vec::with_capacity(a.len());
    let mut seen = std::collections::HashSet::with_capacity(a.len());
    for p in a {
        if !seen.insert(p.id.as_str()) {
            return Err(CompareError::DuplicateProblem { id: p.id.clone() });
        }
        if let Some(q) = by_id.get(p.id.as_str()) {
            pairs.push((p, *q));
        }
    }
    if pairs.len() != a.len() || pairs.len() != b.len() {
        return Err(CompareError::DifferentProblems {
            only_a: a.len() - pairs.len(),
            only_b: b.len() - pairs.len(),
        });
    }
    let row = |subset: &str, pairs: &[(&ProblemResult, &ProblemResult)]| {
        let rates_a: Vec<f64> = pairs.iter().map(|(p, _)| p.pass_rate()).collect();
        let rates_b: Vec<f64> = pairs.iter().map(|(_, q)| q.pass_rate()).collect();
        let diffs: Vec<f64> = rates_a.iter().zip(&rates_b).map(|(x, y)| y - x).collect();
        ComparisonRow {
            subset: subset.to_string(),
            a: score("pass@1", &rates_a),
            b: score("pass@1", &rates_b),
            difference: score("pass@1 difference", &diffs),
        }
    };
    let mut rows = vec![row("all", &pairs)];
    let mut subsets: Vec<Option<&str>> = Vec::new();
    for (p, _) in &pairs {
        let s = subset_of(&p.id);
        if !subsets.contains(&s) {
            subsets.push(s);
        }
    }
    if subsets.len() > 1 && !subsets.contains(&None) {
        for s in subsets.into_iter().flatten() {
            let members: Vec<_> = pairs
                .iter()
                .filter(|(p, _)| subset_of(&p.id) == Some(s))
                .copied()
                .collect();
            rows.push(row(s, &members));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(level: &str, correct: &[u32]) -> Vec<ProblemResult> {
        correct
            .iter()
            .enumerate()
            .map(|(i, &c)| ProblemResult {
                id: format!("{level}-{i}"),
                correct: c,
                samples: 4,
            })
            .collect()
    }

    #[test]
    fn paired_interval_is_narrower_than_the_separate_ones() {
        // B solves one more sample of every problem than A, on problems of very different
        // difficulty: the separate intervals overlap, the paired one is exactly +0.25.
        let a = results("x", &[0, 3, 0, 3, 1, 2, 0, 3, 1, 2]);
        let b = results("x", &[1, 4, 1, 4, 2, 3, 1, 4, 2, 3]);
        let rows = compare(&a, &b).unwrap();
        assert_eq!(rows.len(), 1, "one subset: no breakdown");
        let r = &rows[0];
        assert!((r.a.value - 0.375).abs() < 1e-12 && (r.b.value - 0.625).abs() < 1e-12);
        assert!(
            r.a.ci_high.unwrap() > r.b.ci_low.unwrap(),
            "separate intervals overlap"
        );
        assert_eq!(
            (r.difference.ci_low, r.difference.ci_high),
            (Some(0.25), Some(0.25))
        );
        assert!((r.difference.value - 0.25).abs() < 1e-12);
    }

    #[test]
    fn subsets_are_compared_separately_and_problems_pair_by_id() {
        let mut a = results("bench-s1", &[0, 0, 0, 0]);
        a.extend(results("bench-s2", &[2, 2]));
        let mut b = results("bench-s2", &[2, 2]);
        b.extend(results("bench-s1", &[4, 4, 4, 4]));
        let rows = compare(&a, &b).unwrap();
        let subsets: Vec<&str> = rows.iter().map(|r| r.subset.as_str()).collect();
        assert_eq!(subsets, ["all", "bench-s1", "bench-s2"]);
        assert!((rows[0].difference.value - 4.0 / 6.0).abs() < 1e-12);
        assert!((rows[1].difference.value - 1.0).abs() < 1e-12);
        assert_eq!(rows[2].difference.value, 0.0);
        assert_eq!(rows[1].a.n, 4);
    }

    #[test]
    fn different_problem_sets_are_refused() {
        let a = results("x", &[1, 2, 3]);
        let b = results("x", &[1, 2]);
        assert_eq!(
            compare(&a, &b),
            Err(CompareError::DifferentProblems {
                only_a: 1,
                only_b: 0
            })
        );
        let mut twice = results("x", &[1, 2]);
        twice.push(twice[0].clone());
        assert!(matches!(
            compare(&twice, &a),
            Err(CompareError::DuplicateProblem { .. })
        ));
        assert_eq!(compare(&[], &[]), Err(CompareError::Empty));
        assert_eq!(subset_of("gsm8k-12"), Some("gsm8k"));
        assert_eq!(subset_of("HumanEval/3"), None);
        assert_eq!(subset_of("a-b"), None);
    }
}
