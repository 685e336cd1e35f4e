//! Code rewards from per-test results: MiMo's test-difficulty-driven reward (strict and soft),
//! the plain pass fraction, and all-or-nothing.
//!
//! MiMo report §4.2: tests are grouped by pass rate into levels ordered easy → hard, level k has
//! test set T_k and score s_k (the report gives no values; we default to s_k = 1/K).
//! Strict: `R = Σ_k s_k · 1[every test in T_1 ∪ … ∪ T_k passes]`.
//! Soft:   `R = Σ_k (s_k / |T_k|) · #{passed tests in T_k}`.

use serde::{Deserialize, Serialize};

/// Errors building a tier layout.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TierError {
    #[error("tier layout: {tiers} tiers but {scores} scores")]
    ScoreCount { tiers: usize, scores: usize },
    #[error("tier layout: tier {0} is empty")]
    EmptyTier(usize),
    #[error("tier layout: test {0} is in more than one tier")]
    Duplicate(usize),
    #[error("tier layout: score {0} is negative or not finite")]
    BadScore(f64),
    #[error("tier layout: test {test} does not exist ({tests} tests)")]
    UnknownTest { test: usize, tests: usize },
    #[error("tier layout: {labels} tier labels for {tests} tests")]
    LabelCount { labels: usize, tests: usize },
}

/// Tests grouped into difficulty tiers, easiest first, each with its score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierLayout {
    tiers: Vec<Vec<usize>>,
    scores: Vec<f64>,
}

/// Every reward of one solution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeRewards {
    pub strict: f64,
    pub soft: f64,
    pub pass_fraction: f64,
    pub all_or_nothing: f64,
}

impl TierLayout {
    /// A layout from explicit tiers (lists of test indices, easiest first) and scores.
    pub fn new(
        tiers: Vec<Vec<usize>>,
        scores: Vec<f64>,
        test_count: usize,
    ) -> Result<TierLayout, TierError> {
        if tiers.len() != scores.len() {
            return Err(TierError::ScoreCount {
                tiers: tiers.len(),
                scores: scores.len(),
            });
        }
        let mut seen = vec![false; test_count];
        for (k, tier) in tiers.iter().enumerate() {
            if tier.is_empty() {
                return Err(TierError::EmptyTier(k));
            }
            for &t in tier {
                let slot = seen.get_mut(t).ok_or(TierError::UnknownTest {
                    test: t,
                    tests: test_count,
                })?;
                if *slot {
                    return Err(TierError::Duplicate(t));
                }
                *slot = true;
            }
        }
        if let Some(&bad) = scores.iter().find(|s| !s.is_finite() || **s < 0.0) {
            return Err(TierError::BadScore(bad));
        }
        Ok(TierLayout { tiers, scores })
    }

    /// Tiers from a label per test (0 = easiest), with equal scores summing to 1.
    pub fn from_labels(labels: &[usize]) -> Result<TierLayout, TierError> {
        let count = labels.iter().max().map_or(0, |m| m + 1);
        let mut tiers = vec![Vec::new(); count];
        for (test, &label) in labels.iter().enumerate() {
            tiers[label].push(test);
        }
        tiers.retain(|t| !t.is_empty());
        let scores = vec![1.0 / tiers.len().max(1) as f64; tiers.len()];
        Self::new(tiers, scores, labels.len())
    }

    /// Tiers computed from each test's pass rate across rollouts: the optimal 1-D clustering into
    /// at most `k` groups (least within-group squared error; equal rates always share a tier),
    /// ordered from the highest pass rate (easy) to the lowest (hard), equal scores summing to 1.
    pub fn from_pass_rates(rates: &[f64], k: usize) -> Result<TierLayout, TierError> {
        let mut distinct: Vec<f64> = rates.iter().copied().filter(|r| r.is_finite()).collect();
        distinct.sort_by(|a, b| b.total_cmp(a));
        distinct.dedup();
        let counts: Vec<f64> = distinct
            .iter()
            .map(|d| rates.iter().filter(|r| *r == d).count() as f64)
            .collect();
        let groups = jenks_breaks(&distinct, &counts, k.max(1).min(distinct.len().max(1)));
        let labels: Vec<usize> = rates
            .iter()
            .map(|r| {
                let idx = distinct
                    .iter()
                    .position(|d| d == r)
                    .unwrap_or(distinct.len().saturating_sub(1));
                groups
                    .iter()
                    .position(|&end| idx < end)
                    .unwrap_or(groups.len().saturating_sub(1))
            })
            .collect();
        Self::from_labels(&labels)
    }

    /// The tiers (test indices, easiest first).
    pub fn tiers(&self) -> &[Vec<usize>] {
        &self.tiers
    }

    /// The score of each tier.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Strict reward: a tier pays only if it and every easier tier pass completely.
    pub fn strict(&self, passed: &[bool]) -> f64 {
        let mut total = 0.0;
        for (tier, score) in self.tiers.iter().zip(&self.scores) {
            if !tier
                .iter()
                .all(|&t| passed.get(t).copied().unwrap_or(false))
            {
                break;
            }
            total += score;
        }
        total
    }

    /// Soft reward: each tier's score is shared equally by its tests; every passed test earns its share.
    pub fn soft(&self, passed: &[bool]) -> f64 {
        self.tiers
            .iter()
            .zip(&self.scores)
            .map(|(tier, score)| {
                let n = tier
                    .iter()
                    .filter(|&&t| passed.get(t).copied().unwrap_or(false))
                    .count();
                score * n as f64 / tier.len() as f64
            })
            .sum()
    }

    /// All four rewards.
    pub fn rewards(&self, passed: &[bool]) -> CodeRewards {
        CodeRewards {
            strict: self.strict(passed),
            soft: self.soft(passed),
            pass_fraction: pass_fraction(passed),
            all_or_nothing: all_or_nothing(passed),
        }
    }
}

/// Exclusive end indices of each group of the optimal partition of `values` (sorted) into `k`
/// contiguous groups, weighting value i by `weights[i]` (dynamic programming, O(k·n²)).
fn jenks_breaks(values: &[f64], weights: &[f64], k: usize) -> Vec<usize> {
    let n = values.len();
    if n == 0 {
        return vec![0];
    }
    // Prefix sums for O(1) within-group squared error.
    let mut w = vec![0.0; n + 1];
    let mut s = vec![0.0; n + 1];
    let mut q = vec![0.0; n + 1];
    for i in 0..n {
        w[i + 1] = w[i] + weights[i];
        s[i + 1] = s[i] + weights[i] * values[i];
        q[i + 1] = q[i] + weights[i] * values[i] * values[i];
    }
    let cost = |a: usize, b: usize| {
        let (ww, ss, qq) = (w[b] - w[a], s[b] - s[a], q[b] - q[a]);
        if ww > 0.0 { qq - ss * ss / ww } else { 0.0 }
    };
    let mut best = vec![vec![f64::INFINITY; n + 1]; k + 1];
    let mut cut = vec![vec![0usize; n + 1]; k + 1];
    best[0][0] = 0.0;
    for g in 1..=k {
        for end in g..=n {
            for start in (g - 1)..end {
                let c = best[g - 1][start] + cost(start, end);
                if c < best[g][end] - 1e-15 {
                    best[g][end] = c;
                    cut[g][end] = start;
                }
            }
        }
    }
    let mut ends = Vec::with_capacity(k);
    let mut end = n;
    for g in (1..=k).rev() {
        ends.push(end);
        end = cut[g][end];
    }
    ends.reverse();
    ends
}

/// Fraction of tests passed (0 when there are none).
pub fn pass_fraction(passed: &[bool]) -> f64 {
    if passed.is_empty() {
        return 0.0;
    }
    passed.iter().filter(|p| **p).count() as f64 / passed.len() as f64
}

/// 1 when every test passes (MiMo's "vanilla" code reward), else 0.
pub fn all_or_nothing(passed: &[bool]) -> f64 {
    if !passed.is_empty() && passed.iter().all(|p| *p) {
        1.0
    } else {
        0.0
    }
}

/// Each test's pass rate across rollouts (`rollouts[r][t]` = rollout r passed test t).
pub fn pass_rates(rollouts: &[Vec<bool>]) -> Vec<f64> {
    let tests = rollouts.iter().map(Vec::len).max().unwrap_or(0);
    (0..tests)
        .map(|t| {
            let hits = rollouts
                .iter()
                .filter(|r| r.get(t).copied().unwrap_or(false))
                .count();
            hits as f64 / rollouts.len().max(1) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn three_tiers_with_report_style_scores() {
        // Easy {0,1}, medium {2,3,4}, hard {5}; scores 0.2 / 0.3 / 0.5.
        let layout = TierLayout::new(
            vec![vec![0, 1], vec![2, 3, 4], vec![5]],
            vec![0.2, 0.3, 0.5],
            6,
        )
        .unwrap();
        let p = [true, true, true, false, true, false];
        // Strict: easy passes fully (0.2); medium fails → stop.
        assert!(close(layout.strict(&p), 0.2));
        // Soft: 0.2·2/2 + 0.3·2/3 + 0.5·0/1 = 0.4.
        assert!(close(layout.soft(&p), 0.4));
        let all = [true; 6];
        assert!(close(layout.strict(&all), 1.0) && close(layout.soft(&all), 1.0));
        // Hard passes but easy fails: strict pays nothing, soft pays for what passed.
        let q = [false, true, true, true, true, true];
        assert!(close(layout.strict(&q), 0.0));
        assert!(close(layout.soft(&q), 0.1 + 0.3 + 0.5));
        let r = layout.rewards(&p);
        assert!(close(r.pass_fraction, 4.0 / 6.0) && close(r.all_or_nothing, 0.0));
    }

    #[test]
    fn single_tier_strict_is_all_or_nothing_and_soft_is_pass_fraction() {
        let layout = TierLayout::from_labels(&[0, 0, 0, 0]).unwrap();
        let p = [true, false, true, true];
        assert!(close(layout.strict(&p), 0.0));
        assert!(close(layout.soft(&p), 0.75));
        assert!(close(layout.strict(&[true; 4]), 1.0));
    }

    #[test]
    fn two_equal_tiers_from_labels() {
        // Labels: tests 0,2 easy; 1,3,4 hard; s = 0.5 each.
        let layout = TierLayout::from_labels(&[0, 1, 0, 1, 1]).unwrap();
        assert_eq!(layout.tiers(), &[vec![0, 2], vec![1, 3, 4]]);
        let p = [true, true, true, false, true];
        assert!(close(layout.strict(&p), 0.5));
        assert!(close(layout.soft(&p), 0.5 + 0.5 * 2.0 / 3.0));
        let easy_fail = [false, true, true, true, true];
        assert!(close(layout.strict(&easy_fail), 0.0));
        assert!(close(layout.soft(&easy_fail), 0.25 + 0.5));
    }

    #[test]
    fn four_tiers_strict_stops_at_first_gap() {
        let layout = TierLayout::new(
            vec![vec![3], vec![0], vec![1], vec![2]],
            vec![0.1, 0.2, 0.3, 0.4],
            4,
        )
        .unwrap();
        // Tiers 1,2 pass, tier 3 (test 1) fails, tier 4 passes.
        let p = [true, false, true, true];
        assert!(close(layout.strict(&p), 0.3));
        assert!(close(layout.soft(&p), 0.1 + 0.2 + 0.4));
    }

    #[test]
    fn tiers_from_pass_rates_cluster_easy_first() {
        let rollouts = vec![
            vec![true, true, true, false, false, true],
            vec![true, true, false, false, false, true],
            vec![true, true, true, true, false, true],
            vec![true, false, true, false, false, true],
        ];
        let rates = pass_rates(&rollouts);
        assert_eq!(rates, vec![1.0, 0.75, 0.75, 0.25, 0.0, 1.0]);
        let layout = TierLayout::from_pass_rates(&rates, 3).unwrap();
        // Distinct rates 1.0 (×2), 0.75 (×2), 0.25, 0.0: for k = 3 the least within-tier squared
        // error is {1.0} {0.75} {0.25, 0.0} (0.03125, against 0.0625 for {1.0, 0.75} {0.25} {0.0}).
        assert_eq!(layout.tiers(), &[vec![0, 5], vec![1, 2], vec![3, 4]]);
        let p = [true, true, true, false, false, true];
        assert!(close(layout.strict(&p), 2.0 / 3.0));
        assert!(close(layout.soft(&p), 2.0 / 3.0));
        let p = [true, false, true, true, false, true];
        assert!(close(layout.strict(&p), 1.0 / 3.0));
        assert!(close(layout.soft(&p), 1.0 / 3.0 + 1.0 / 6.0 + 1.0 / 6.0));
        let two = TierLayout::from_pass_rates(&rates, 2).unwrap();
        assert_eq!(two.tiers(), &[vec![0, 1, 2, 5], vec![3, 4]]);
    }

    #[test]
    fn bad_layouts_are_rejected() {
        assert_eq!(
            TierLayout::new(vec![vec![0]], vec![], 1),
            Err(TierError::ScoreCount {
                tiers: 1,
                scores: 0
            })
        );
        assert_eq!(
            TierLayout::new(vec![vec![0], vec![0]], vec![0.5, 0.5], 1),
            Err(TierError::Duplicate(0))
        );
        assert_eq!(
            TierLayout::new(vec![vec![]], vec![1.0], 1),
            Err(TierError::EmptyTier(0))
        );
        assert!(matches!(
            TierLayout::new(vec![vec![5]], vec![1.0], 2),
            Err(TierError::UnknownTest { .. })
        ));
        assert_eq!(
            TierLayout::new(vec![vec![0]], vec![-1.0], 1),
            Err(TierError::BadScore(-1.0))
        );
    }
}
