//! Scores from graded samples: unbiased pass@k, maj@k, and a percentile-bootstrap 95% interval
//! over problems.
//!
//! Why per-problem values then a mean: every metric here is a mean over problems of a per-problem
//! estimate, so one bootstrap (resampling problems) gives every metric its interval, and the
//! interval reflects the benchmark's size rather than the number of samples.

use crucible_types::eval::EvalScore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bootstrap resamples per interval: enough for stable 2.5/97.5 percentiles (±~0.1 point).
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Fixed seed, so the same samples always give the same interval.
pub const BOOTSTRAP_SEED: u64 = 0x5EED_0E7A;

/// Unbiased pass@k of one problem with `c` correct of `n` samples (Chen et al., 2021):
/// `1 − C(n−c, k) / C(n, k)`, the chance that k samples drawn without replacement hold a correct
/// one. Computed as a product to stay exact-ish for large n. Expects `k ≤ n` and `c ≤ n`.
pub fn pass_at_k(n: u32, c: u32, k: u32) -> f64 {
    if c == 0 {
        return 0.0;
    }
    if n.saturating_sub(c) < k {
        return 1.0;
    }
    // C(n−c, k)/C(n, k) = Π_{i=n−c+1}^{n} (1 − k/i)
    let miss: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    1.0 - miss
}

/// One sample's vote: its extracted answer (in a form [`majority_is_correct`] can compare) and
/// whether that answer was graded correct.
#[derive(Clone, Debug, PartialEq)]
pub struct Vote {
    pub answer: Option<String>,
    pub correct: bool,
}

/// Whether the most frequent answer among `votes` is correct. Answers are grouped with `same`
/// (a group is represented by its first answer; e.g. math equivalence, so `1/2` and `0.5` count
/// together). Samples without an answer do not vote; ties go to the answer seen first; no
/// answer at all counts as wrong.
pub fn majority_is_correct(votes: &[Vote], same: &dyn Fn(&str, &str) -> bool) -> bool {
    // (representative answer, count, correct)
    let mut groups: Vec<(&str, usize, bool)> = Vec::new();
    for vote in votes {
        let Some(answer) = vote.answer.as_deref() else {
            continue;
        };
        match groups.iter_mut().find(|(rep, ..)| same(rep, answer)) {
            Some(group) => group.1 += 1,
            None => groups.push((answer, 1, vote.correct)),
        }
    }
    let mut best: Option<(usize, bool)> = None;
    for &(_, count, correct) in &groups {
        if best.is_none_or(|(c, _)| count > c) {
            best = Some((count, correct));
        }
    }
    best.is_some_and(|(_, correct)| correct)
}

/// maj@k of one problem from its n votes (in sample order): the mean majority correctness over
/// the ⌊n/k⌋ disjoint blocks of k consecutive samples — the plain majority of all samples when
/// k = n, and a lower-variance estimate of the same quantity when n holds several blocks.
/// Expects `1 ≤ k ≤ votes.len()`.
pub fn maj_at_k(votes: &[Vote], k: usize, same: &dyn Fn(&str, &str) -> bool) -> f64 {
    let blocks: Vec<&[Vote]> = votes.chunks_exact(k.max(1)).collect();
    if blocks.is_empty() {
        return 0.0;
    }
    let hits = blocks
        .iter()
        .filter(|b| majority_is_correct(b, same))
        .count();
    hits as f64 / blocks.len() as f64
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The q-quantile of sorted values, interpolating linearly between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// 95% percentile-bootstrap interval of the mean of `per_problem`: resample the problems with
/// replacement `resamples` times from `seed`, take the 2.5th and 97.5th percentiles of the means.
/// `None` for no problems.
pub fn bootstrap_ci(per_problem: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    if per_problem.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let n = per_problem.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            (0..n)
                .map(|_| per_problem[rng.random_range(0..n)])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Some((quantile(&means, 0.025), quantile(&means, 0.975)))
}

/// A named score: the mean of `per_problem` with its bootstrap interval (fixed seed).
pub fn score(metric: impl Into<String>, per_problem: &[f64]) -> EvalScore {
    let ci = bootstrap_ci(per_problem, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    EvalScore {
        metric: metric.into(),
        value: if per_problem.is_empty() {
            0.0
        } else {
            mean(per_problem)
        },
        ci_low: ci.map(|c| c.0),
        ci_high: ci.map(|c| c.1),
        n: i32::try_from(per_problem.len()).unwrap_or(i32::MAX),
    }
}
