//! Eval metrics: unbiased pass@k against the closed form, maj@k on hand-made votes, and the
//! bootstrap interval on a fixed seed.

use crucible_worker::eval::metrics::{
    BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Vote, bootstrap_ci, maj_at_k, majority_is_correct,
    pass_at_k, score,
};

/// C(n, k) exactly, for the closed form.
fn binomial(n: u64, k: u64) -> u128 {
    if k > n {
        return 0;
    }
    (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1))
}

fn closed_form(n: u32, c: u32, k: u32) -> f64 {
    let miss = binomial(u64::from(n - c), u64::from(k)) as f64;
    1.0 - miss / binomial(u64::from(n), u64::from(k)) as f64
}

#[test]
fn pass_at_k_matches_the_closed_form() {
    let cases = [
        (1, 1, 1),
        (2, 1, 1),
        (10, 3, 1),
        (10, 3, 2),
        (10, 3, 5),
        (16, 4, 8),
        (32, 1, 16),
        (32, 5, 4),
        (64, 10, 32),
        (100, 37, 10),
    ];
    for (n, c, k) in cases {
        let got = pass_at_k(n, c, k);
        let want = closed_form(n, c, k);
        assert!(
            (got - want).abs() < 1e-12,
            "pass@{k} with n={n} c={c}: {got} vs {want}"
        );
    }
    // pass@1 is the fraction correct.
    assert!((pass_at_k(8, 3, 1) - 3.0 / 8.0).abs() < 1e-15);
    // Hand-checked: n=4, c=2, k=2 → 1 − C(2,2)/C(4,2) = 1 − 1/6.
    assert!((pass_at_k(4, 2, 2) - 5.0 / 6.0).abs() < 1e-15);
}

#[test]
fn pass_at_k_edge_cases() {
    // No correct sample: 0 for every k.
    for k in 1..=8 {
        assert_eq!(pass_at_k(8, 0, k), 0.0);
    }
    // Fewer wrong samples than k: every k-subset holds a correct one.
    assert_eq!(pass_at_k(8, 5, 4), 1.0);
    assert_eq!(pass_at_k(8, 8, 1), 1.0);
    assert_eq!(pass_at_k(8, 1, 8), 1.0);
    // Just enough wrong samples for one all-wrong subset.
    assert!((pass_at_k(8, 4, 4) - (1.0 - 1.0 / 70.0)).abs() < 1e-12);
}

fn votes(answers: &[(Option<&str>, bool)]) -> Vec<Vote> {
    answers
        .iter()
        .map(|(a, c)| Vote {
            answer: a.map(str::to_string),
            correct: *c,
        })
        .collect()
}

fn same_text(a: &str, b: &str) -> bool {
    a == b
}

#[test]
fn majority_vote_on_hand_made_votes() {
    // "7" wins 3–2 over the correct "5".
    let v = votes(&[
        (Some("5"), true),
        (Some("7"), false),
        (Some("7"), false),
        (None, false),
        (Some("5"), true),
        (Some("7"), false),
    ]);
    assert!(!majority_is_correct(&v, &same_text));
    // Abstentions do not vote: the single answer wins.
    let v = votes(&[(None, false), (None, false), (Some("5"), true)]);
    assert!(majority_is_correct(&v, &same_text));
    // A tie goes to the answer seen first.
    let v = votes(&[(Some("5"), true), (Some("7"), false)]);
    assert!(majority_is_correct(&v, &same_text));
    let v = votes(&[(Some("7"), false), (Some("5"), true)]);
    assert!(!majority_is_correct(&v, &same_text));
    // No answers at all: wrong.
    assert!(!majority_is_correct(&votes(&[(None, false)]), &same_text));
    // An equivalence merges spellings: "0.5" + "1/2" outvote "3".
    let half = |a: &str, b: &str| {
        let v = |s: &str| {
            if s == "1/2" {
                "0.5".to_string()
            } else {
                s.to_string()
            }
        };
        v(a) == v(b)
    };
    let v = votes(&[(Some("3"), false), (Some("1/2"), true), (Some("0.5"), true)]);
    assert!(majority_is_correct(&v, &half));
    assert!(!majority_is_correct(&v, &same_text));
}

#[test]
fn maj_at_k_averages_disjoint_blocks() {
    // Block 1 (samples 0–2): "5","5","7" → correct. Block 2 (3–5): "7","7","5" → wrong.
    let v = votes(&[
        (Some("5"), true),
        (Some("5"), true),
        (Some("7"), false),
        (Some("7"), false),
        (Some("7"), false),
        (Some("5"), true),
    ]);
    assert_eq!(maj_at_k(&v, 3, &same_text), 0.5);
    // k = n: one majority over all six (3–3 tie, "5" first) → correct.
    assert_eq!(maj_at_k(&v, 6, &same_text), 1.0);
    // k = 1: the fraction correct.
    assert_eq!(maj_at_k(&v, 1, &same_text), 0.5);
    // k = 4 with n = 6: one block of four ("5","5","7","7" → "5" first) → correct.
    assert_eq!(maj_at_k(&v, 4, &same_text), 1.0);
}

/// A fixed pattern of per-problem scores, repeated to make larger benchmarks.
fn scores_of(problems: usize) -> Vec<f64> {
    let pattern = [1.0, 0.0, 0.5, 1.0, 0.25, 0.0, 0.75, 1.0, 0.0, 0.5];
    (0..problems).map(|i| pattern[i % pattern.len()]).collect()
}

#[test]
fn bootstrap_interval_is_deterministic_contains_the_mean_and_shrinks() {
    let small = scores_of(20);
    let a = bootstrap_ci(&small, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED).unwrap();
    let b = bootstrap_ci(&small, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED).unwrap();
    assert_eq!(a, b, "same seed, same interval");
    // Spread-out values, so that another seed's percentiles cannot land on the same means.
    let spread: Vec<f64> = (0..20)
        .map(|i| f64::from((i * 7919) % 101) / 100.0)
        .collect();
    assert_ne!(
        bootstrap_ci(&spread, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
        bootstrap_ci(&spread, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED + 1),
        "the seed is actually used"
    );

    let mut widths = Vec::new();
    for problems in [20, 200, 2000] {
        let s = score("pass@1", &scores_of(problems));
        let (low, high) = (s.ci_low.unwrap(), s.ci_high.unwrap());
        assert!(
            low < s.value && s.value < high,
            "{problems} problems: {low} < {} < {high}",
            s.value
        );
        assert!((0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high));
        assert_eq!(s.n as usize, problems);
        widths.push(high - low);
    }
    assert!(
        widths[0] > widths[1] && widths[1] > widths[2],
        "widths {widths:?}"
    );
    // The standard error falls as 1/√problems: ten times the problems, about a third the width.
    let ratio = widths[0] / widths[1];
    assert!((2.2..4.2).contains(&ratio), "ratio {ratio}");

    // No spread, no interval width; no problems, no interval.
    assert_eq!(
        bootstrap_ci(&[1.0; 5], BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
        Some((1.0, 1.0))
    );
    assert_eq!(bootstrap_ci(&[], BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED), None);
}
